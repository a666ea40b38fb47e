using LibBpf.Net;

namespace EbpfProxy.Datapath.Maps;

/// <summary>
/// The NetworkPolicy maps, typed (layouts in bpf/lib/policy_types.h): the daemon's writer opens
/// them through the loaded object, the CLI from their pins.
/// </summary>
public sealed class PolicyMaps : IDisposable
{
    public const string IpcacheMap = "pol_ipcache";
    public const string EndpointsMap = "pol_endpoints";
    public const string RulesMap = "pol_rules";
    public const string EndpointNamesMap = "pol_ep_names";
    public const string IdentityNamesMap = "pol_id_names";
    public const string ConntrackMap = "pol_ct4";

    private readonly IReadOnlyList<IDisposable> _owned;

    private PolicyMaps(Func<string, BpfMap> open, IReadOnlyList<IDisposable>? owned = null)
    {
        Ipcache = open(IpcacheMap).As<PolIpcacheKey, PolIpcacheEntry>();
        Endpoints = open(EndpointsMap).As<Be32Address, PolEndpoint>();
        Rules = open(RulesMap).As<PolRuleKey, PolRule>();
        EndpointNames = open(EndpointNamesMap).As<Be32Address, PolEpName>();
        IdentityNames = open(IdentityNamesMap).As<uint, PolIdName>();
        Conntrack = open(ConntrackMap).As<Ct4Key, PolCtEntry>();
        _owned = owned ?? [];
    }

    /// <summary>Address prefix -> identity (LPM trie: a lookup returns the longest matching prefix).</summary>
    public BpfMap<PolIpcacheKey, PolIpcacheEntry> Ipcache { get; }

    /// <summary>Local pod address -> endpoint id, identity, isolation.</summary>
    public BpfMap<Be32Address, PolEndpoint> Endpoints { get; }

    /// <summary>What isolated endpoints admit (LPM trie over endpoint, identity, direction, protocol, port).</summary>
    public BpfMap<PolRuleKey, PolRule> Rules { get; }

    /// <summary>For the CLI only: local pod address -> endpoint id and "namespace/name" (every local pod).</summary>
    public BpfMap<Be32Address, PolEpName> EndpointNames { get; }

    /// <summary>For the CLI only: allocated identity -> what it stands for.</summary>
    public BpfMap<uint, PolIdName> IdentityNames { get; }

    /// <summary>Connections local pods' policies admitted (LRU, written by the datapath only).</summary>
    public BpfMap<Ct4Key, PolCtEntry> Conntrack { get; }

    /// <summary>The maps of a loaded object.</summary>
    public static PolicyMaps FromObject(BpfObject obj) => new(name => obj.GetMap(name).Map);

    /// <summary>The maps pinned under <paramref name="pinPath"/>.</summary>
    public static PolicyMaps OpenPinned(string pinPath) => PinnedMapSet.Open(pinPath, (open, owned) => new PolicyMaps(open, owned));

    public void Dispose()
    {
        foreach (var d in _owned)
            d.Dispose();
    }
}
