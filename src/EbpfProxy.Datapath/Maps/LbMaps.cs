using LibBpf.Net;

namespace EbpfProxy.Datapath.Maps;

/// <summary>
/// The datapath's maps, typed: the one definition of every layout on the C# side, shared by the
/// daemon (opened through the loaded object) and the CLI (opened from their pins).
/// </summary>
public sealed class LbMaps : IDisposable
{
    public const string Services = "lb4_services";
    public const string Backends = "lb4_backends";
    public const string ReverseNat = "lb4_reverse_nat";
    public const string NamesMap = "lb_names";
    public const string Conntrack = "ct4";
    public const string MetricsMap = "metrics";
    public const string ConfigMap = "lb_config";
    public const string AffinityMap = "lb4_affinity";
    public const string TraceMap = "trace_out";
    public const string NatConfigMap = "lb_nat_config";
    public const string SourceRangeMap = "lb4_src_range";
    public const string SnatMap = "snat4";
    public const string HostConfigMap = "lb_host_config";
    public const string SockRevNatMap = "lb4_sock_revnat";
    public const string DropEventsMap = "drop_events";
    public const string FlowEventsMap = "flow_events";
    public const string FlowConfigMap = "flow_config";
    public const string FlowRateMap = "flow_rate";
    /// <summary>Per-CPU new-connection counters by rev-NAT id (read by the daemon's metrics, not by this family).</summary>
    public const string ServiceConnectionsMap = "lb_svc_conns";
    public const string FragmentMap = "frag4";


    private readonly IReadOnlyList<IDisposable> _owned;

    private LbMaps(Func<string, BpfMap> open, IReadOnlyList<IDisposable>? owned = null)
    {
        Lb4Services = open(Services).As<Lb4Key, Lb4Service>();
        Lb4Backends = open(Backends).As<uint, Lb4Backend>();
        Lb4ReverseNat = open(ReverseNat).As<ushort, Lb4ReverseNat>();
        Names = open(NamesMap).As<ushort, LbName>();
        Ct4 = open(Conntrack).As<Ct4Key, CtEntry>();
        Metrics = open(MetricsMap).AsPerCpu<uint, MetricsValue>();
        Config = open(ConfigMap).As<uint, LbConfig>();
        Affinity = open(AffinityMap).As<Lb4AffinityKey, LbAffinityValue>();
        TraceOut = open(TraceMap).As<uint, TraceRecord>();
        NatConfig = open(NatConfigMap).As<uint, LbNatConfig>();
        SourceRanges = open(SourceRangeMap).As<Lb4SrcRangeKey, uint>();
        Snat4 = open(SnatMap).As<Ct4Key, Snat4Entry>();
        HostConfig = open(HostConfigMap).As<uint, LbHostConfig>();
        SockRevNat = open(SockRevNatMap).As<Lb4SockKey, Lb4SockValue>();
        DropEvents = open(DropEventsMap);
        _owned = owned ?? [];
    }

    public BpfMap<Lb4Key, Lb4Service> Lb4Services { get; }
    public BpfMap<uint, Lb4Backend> Lb4Backends { get; }
    public BpfMap<ushort, Lb4ReverseNat> Lb4ReverseNat { get; }
    public BpfMap<ushort, LbName> Names { get; }
    public BpfMap<Ct4Key, CtEntry> Ct4 { get; }
    public BpfPerCpuMap<uint, MetricsValue> Metrics { get; }
    public BpfMap<uint, LbConfig> Config { get; }
    public BpfMap<Lb4AffinityKey, LbAffinityValue> Affinity { get; }
    public BpfMap<uint, TraceRecord> TraceOut { get; }
    public BpfMap<uint, LbNatConfig> NatConfig { get; }
    public BpfMap<Lb4SrcRangeKey, uint> SourceRanges { get; }
    public BpfMap<Ct4Key, Snat4Entry> Snat4 { get; }
    public BpfMap<uint, LbHostConfig> HostConfig { get; }
    public BpfMap<Lb4SockKey, Lb4SockValue> SockRevNat { get; }

    /// <summary>The drop_events ring buffer (records are <see cref="DropEvent"/>); read it with a <see cref="BpfRingBuffer"/>.</summary>
    public BpfMap DropEvents { get; }

    /// <summary>The maps of a loaded object.</summary>
    public static LbMaps FromObject(BpfObject obj) => new(name => obj.GetMap(name).Map);

    /// <summary>The maps pinned under <paramref name="pinPath"/>, for readers such as the CLI.</summary>
    public static LbMaps OpenPinned(string pinPath) => PinnedMapSet.Open(pinPath, (open, owned) => new LbMaps(open, owned));

    public void Dispose()
    {
        foreach (var d in _owned)
            d.Dispose();
    }
}
