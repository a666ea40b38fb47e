using System.Net;
using EbpfProxy.Core.Planning;
using EbpfProxy.Core.Policy;
using EbpfProxy.Datapath.Maps;

namespace EbpfProxy.Datapath.Sync;

/// <summary>
/// Every map the daemon writes, as the one writer (<see cref="DatapathSync"/>) sees them: the
/// config maps, the service maps (in Core's model: <see cref="LbState"/>, <see cref="LbOp"/>),
/// source ranges, conntrack and affinity (deletes only), the NetworkPolicy maps (<see cref="PolicyState"/>,
/// <see cref="PolicyOp"/>) and the CLI's names. <see cref="PinnedDatapathMaps"/> is the kernel's
/// maps; <see cref="InMemoryDatapathMaps"/> holds the same content in dictionaries, so the whole
/// daemon cycle runs in unit tests (as Cilium tests its load balancer against in-memory maps).
/// Reads return what the maps hold; a write that the kernel refuses throws
/// <see cref="LibBpf.Net.BpfException"/>.
/// </summary>
public interface IDatapathMaps
{
    /// <summary>lb_config[0] (zero when never written).</summary>
    LbConfig ReadConfig();
    void WriteConfig(LbConfig config);

    /// <summary>lb_nat_config[0] (zero when never written: masquerade off).</summary>
    LbNatConfig ReadNatConfig();
    void WriteNatConfig(LbNatConfig config);

    /// <summary>lb_host_config[0] (zero when never written: the socket hooks translate nothing).</summary>
    LbHostConfig ReadHostConfig();
    void WriteHostConfig(LbHostConfig config);

    /// <summary>
    /// What the service maps have room for (their max_entries; a map pinned by a predecessor keeps
    /// its size), which the planner fits every service into whole. Null: unlimited (the planner's defaults).
    /// </summary>
    LbLimits? ServiceLimits { get; }

    /// <summary>The service maps (lb4_services, lb4_backends, lb4_reverse_nat, lb_names) in model form.</summary>
    LbState ReadServices();

    /// <summary>Performs one planned write.</summary>
    void Apply(LbOp op);

    /// <summary>Performs <paramref name="ops"/>[start..end), consecutive upserts into one map (<see cref="LbMapIo.Batchable"/>), in order.</summary>
    void ApplyBatch(IReadOnlyList<LbOp> ops, int start, int end);

    /// <summary>lb4_src_range's keys.</summary>
    IReadOnlyCollection<Lb4SrcRangeKey> ReadSourceRanges();
    void UpsertSourceRange(Lb4SrcRangeKey key);
    void DeleteSourceRange(Lb4SrcRangeKey key);

    /// <summary>Deletes the conntrack entries and affinity pins the predicates call stale (one scan each, then the deletes). Returns how many went.</summary>
    int DeleteConntrack(Func<Ct4Key, CtEntry, bool> staleFlow, Func<Lb4AffinityKey, LbAffinityValue, bool> stalePin);

    /// <summary>pol_ipcache, pol_endpoints, pol_rules in model form.</summary>
    PolicyState ReadPolicy();

    /// <summary>Performs one planned policy write.</summary>
    void Apply(PolicyOp op);

    /// <summary>One pol_endpoints entry.</summary>
    bool TryReadEndpoint(IPAddress address, out EndpointEntry endpoint);

    /// <summary>pol_ep_names (CLI only): local pod address -> endpoint id and "namespace/name".</summary>
    Dictionary<IPAddress, PolEndpointName> ReadEndpointNames();
    void WriteEndpointName(IPAddress address, PolEndpointName name);
    void DeleteEndpointName(IPAddress address);

    /// <summary>pol_id_names (CLI only): identity -> its text.</summary>
    Dictionary<uint, string> ReadIdentityNames();
    void WriteIdentityName(uint identity, string text);
    void DeleteIdentityName(uint identity);
}
