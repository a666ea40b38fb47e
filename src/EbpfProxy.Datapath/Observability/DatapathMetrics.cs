using System.Diagnostics;
using System.Diagnostics.Metrics;
using EbpfProxy.Core.Metrics;
using EbpfProxy.Datapath.Maps;
using LibBpf.Net;

namespace EbpfProxy.Datapath.Observability;

/// <summary>
/// The datapath's side of <c>/metrics</c>, read from the pinned maps (so it needs no handle on the
/// loaded object and sees whatever maps the datapath pins, including ones added later):
/// <list type="bullet">
/// <item>per-reason packet counters and per-service new connections, read on each collection
/// (a few dozen per-CPU lookups plus one per programmed frontend);</item>
/// <item>every pinned map's entries and capacity, and the conntrack tables' fill, from a walk done by
/// <see cref="Refresh"/> in the background (a full 512K-entry conntrack map takes a batch walk of
/// hundreds of milliseconds, too much for a scrape) and served from its last result.</item>
/// </list>
/// Label sets follow kube-proxy's conventions where one exists (docs/metrics.md).
/// </summary>
public sealed class DatapathMetrics : IDisposable
{
    public const string MeterName = "EbpfProxy.Datapath";

    /// <summary>Pinned map name -> the conntrack table it holds (<c>ebpfproxy_conntrack_entries{table}</c>).</summary>
    public static IReadOnlyDictionary<string, string> ConntrackTables { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        [LbMaps.Conntrack] = "service",
        [LbMaps.SnatMap] = "masquerade",
        ["pol_ct4"] = "policy",
    };

    private readonly string _pinPath;
    private readonly Meter _meter;
    private readonly ProxyMetrics? _proxyMetrics;
    private readonly Lock _gate = new();
    private BpfPerCpuMap<uint, MetricsValue>? _counters;
    private BpfPerCpuMap<uint, ulong>? _serviceConnections;
    private MapUsageSnapshot _usage = MapUsageSnapshot.Empty;
    private readonly HashSet<string> _failureSeries = new(StringComparer.Ordinal);

    public DatapathMetrics(string pinPath, IMeterFactory? factory = null, ProxyMetrics? proxyMetrics = null)
    {
        _pinPath = pinPath;
        _proxyMetrics = proxyMetrics;
        _meter = factory?.Create(MeterName) ?? new Meter(MeterName);
        _meter.CreateObservableCounter("ebpfproxy_drops", () => ReasonMeasurements(drops: true),
            description: "Packets the datapath dropped or rejected, by reason and direction (the kernel's per-CPU counters, summed)");
        _meter.CreateObservableCounter("ebpfproxy_forwarded_packets", () => ReasonMeasurements(drops: false),
            description: "Packets the datapath let go on, by outcome and direction (translated, reverse-translated, or passed untouched)");
        _meter.CreateObservableCounter("ebpfproxy_service_connections", ServiceConnectionMeasurements,
            description: "New connections per service port, counted in the kernel per frontend (ClusterIP, NodePort, external and load-balancer addresses summed)");
        _meter.CreateObservableGauge("ebpfproxy_conntrack_entries", () => Volatile.Read(ref _usage).Conntrack,
            description: "Entries in each conntrack table (a service connection holds two: its own and its reply's)");
        _meter.CreateObservableGauge("ebpfproxy_map_entries", () => Volatile.Read(ref _usage).Entries,
            description: "Entries in each pinned BPF map (arrays are always full)");
        _meter.CreateObservableGauge("ebpfproxy_map_capacity", () => Volatile.Read(ref _usage).Capacity,
            description: "max_entries of each pinned BPF map");
        _meter.CreateObservableGauge("ebpfproxy_map_usage_walk_duration_seconds", () => Volatile.Read(ref _usage).WalkSeconds, "s",
            "How long the last background walk of the pinned maps took");
    }

    /// <summary>The last walk's result (for /status).</summary>
    public MapUsageSnapshot Usage => Volatile.Read(ref _usage);

    /// <summary>
    /// Walks every pinned map: entries, capacity, conntrack fill; and the frontends' names for the
    /// connection counter. Called in the background (the daemon's interval, --metrics-map-interval).
    /// </summary>
    public MapUsageSnapshot Refresh()
    {
        var sw = Stopwatch.StartNew();
        var maps = new List<MapUsage>();
        if (Directory.Exists(_pinPath))
        {
            foreach (var path in Directory.EnumerateFiles(_pinPath).Order(StringComparer.Ordinal))
            {
                try
                {
                    using var map = BpfMap.OpenPinned(path);
                    if (map.Type == BpfMapType.RingBuf)
                        continue;
                    maps.Add(new MapUsage(Path.GetFileName(path), map.Type.ToString(), map.CountEntries(), map.MaxEntries));
                }
                catch (BpfException)
                {
                    // Not a map (or removed meanwhile): nothing to report.
                }
            }
        }
        var names = ReadServiceNames();
        var usage = new MapUsageSnapshot(maps, names, sw.Elapsed.TotalSeconds, DateTimeOffset.UtcNow);
        lock (_gate)
        {
            // Every map gets its failure series at 0, so an alert's rate() has a baseline.
            foreach (var m in maps)
            {
                if (_proxyMetrics is not null && _failureSeries.Add(m.Name))
                    _proxyMetrics.MapUpdateFailures.Add(0, new KeyValuePair<string, object?>("map", m.Name));
            }
        }
        Volatile.Write(ref _usage, usage);
        return usage;
    }

    /// <summary>rev-NAT id -> the service port and protocol its frontend belongs to (lb_names, lb4_services' slot-0 entries).</summary>
    private Dictionary<ushort, ServiceLabels> ReadServiceNames()
    {
        var result = new Dictionary<ushort, ServiceLabels>();
        var names = Path.Combine(_pinPath, LbMaps.NamesMap);
        var services = Path.Combine(_pinPath, LbMaps.Services);
        if (!File.Exists(names) || !File.Exists(services))
            return result;
        try
        {
            using var namesMap = BpfMap.OpenPinned(names);
            using var servicesMap = BpfMap.OpenPinned(services);
            var protocols = new Dictionary<ushort, byte>();
            foreach (var (key, svc) in servicesMap.As<Lb4Key, Lb4Service>().Entries())
            {
                if (key.Slot == 0 && svc.RevNatId != 0 && key.Proto != 0)
                    protocols.TryAdd(svc.RevNatId, key.Proto);
            }
            foreach (var (id, name) in namesMap.As<ushort, LbName>().Entries())
            {
                if (protocols.TryGetValue(id, out var proto))
                    result[id] = ServiceLabels.Parse(name.ToString(), proto);
            }
        }
        catch (BpfException)
        {
        }
        return result;
    }

    private IEnumerable<Measurement<long>> ReasonMeasurements(bool drops)
    {
        var map = Counters();
        if (map is null)
            return [];
        return KernelCounters.Read(map).Where(r => r.Drop == drops).Select(r => new Measurement<long>((long)r.Packets,
            new KeyValuePair<string, object?>("reason", r.Reason), new KeyValuePair<string, object?>("direction", r.Direction)));
    }

    private IEnumerable<Measurement<long>> ServiceConnectionMeasurements()
    {
        var map = ServiceConnections();
        var names = Volatile.Read(ref _usage).Services;
        if (map is null || names.Count == 0)
            return [];
        var perCpu = new ulong[map.CpuCount];
        var sums = new Dictionary<ServiceLabels, long>();
        foreach (var (id, labels) in names)
        {
            long n = 0;
            if (map.TryLookup(id, perCpu))
            {
                foreach (var v in perCpu)
                    n += (long)v;
            }
            sums[labels] = sums.GetValueOrDefault(labels) + n;
        }
        return sums.Select(kv => new Measurement<long>(kv.Value,
            new KeyValuePair<string, object?>("namespace", kv.Key.Namespace),
            new KeyValuePair<string, object?>("service", kv.Key.Service),
            new KeyValuePair<string, object?>("port", kv.Key.Port),
            new KeyValuePair<string, object?>("protocol", kv.Key.Protocol)));
    }

    private BpfPerCpuMap<uint, MetricsValue>? Counters()
    {
        lock (_gate)
            return _counters ??= TryOpen(LbMaps.MetricsMap)?.AsPerCpu<uint, MetricsValue>();
    }

    private BpfPerCpuMap<uint, ulong>? ServiceConnections()
    {
        lock (_gate)
            return _serviceConnections ??= TryOpen(LbMaps.ServiceConnectionsMap)?.AsPerCpu<uint, ulong>();
    }

    /// <summary>A pinned map, or null while the datapath has not pinned it yet.</summary>
    private BpfMap? TryOpen(string name)
    {
        var path = Path.Combine(_pinPath, name);
        if (!File.Exists(path))
            return null;
        try
        {
            return BpfMap.OpenPinned(path);
        }
        catch (BpfException)
        {
            return null;
        }
    }

    public void Dispose()
    {
        _meter.Dispose();
        lock (_gate)
        {
            _counters?.Map.Dispose();
            _serviceConnections?.Map.Dispose();
        }
    }
}

/// <summary>One pinned map's fill.</summary>
public sealed record MapUsage(string Name, string Type, long Entries, uint Capacity);

/// <summary>A service port's labels on the connection counter.</summary>
public readonly record struct ServiceLabels(string Namespace, string Service, string Port, string Protocol)
{
    /// <summary>From an lb_names entry ("namespace/name:port" or "namespace/name").</summary>
    public static ServiceLabels Parse(string name, byte proto)
    {
        var slash = name.IndexOf('/', StringComparison.Ordinal);
        var ns = slash < 0 ? "" : name[..slash];
        var rest = slash < 0 ? name : name[(slash + 1)..];
        var colon = rest.IndexOf(':', StringComparison.Ordinal);
        return new ServiceLabels(ns, colon < 0 ? rest : rest[..colon], colon < 0 ? "" : rest[(colon + 1)..], ProtocolName(proto));
    }

    public static string ProtocolName(byte proto) => proto switch { 6 => "TCP", 17 => "UDP", 132 => "SCTP", var n => n.ToString(System.Globalization.CultureInfo.InvariantCulture) };
}

/// <summary>The result of one background walk of the pinned maps.</summary>
public sealed record MapUsageSnapshot(IReadOnlyList<MapUsage> Maps, IReadOnlyDictionary<ushort, ServiceLabels> Services, double WalkSeconds, DateTimeOffset? At)
{
    public static MapUsageSnapshot Empty { get; } = new([], new Dictionary<ushort, ServiceLabels>(), 0, null);

    internal IEnumerable<Measurement<long>> Entries =>
        Maps.Select(m => new Measurement<long>(m.Entries, new KeyValuePair<string, object?>("map", m.Name)));

    internal IEnumerable<Measurement<long>> Capacity =>
        Maps.Select(m => new Measurement<long>(m.Capacity, new KeyValuePair<string, object?>("map", m.Name)));

    internal IEnumerable<Measurement<long>> Conntrack =>
        Maps.Where(m => DatapathMetrics.ConntrackTables.ContainsKey(m.Name))
            .Select(m => new Measurement<long>(m.Entries, new KeyValuePair<string, object?>("table", DatapathMetrics.ConntrackTables[m.Name])));
}
