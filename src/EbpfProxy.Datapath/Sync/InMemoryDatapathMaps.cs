using System.Net;
using EbpfProxy.Core.Planning;
using EbpfProxy.Core.Policy;
using EbpfProxy.Datapath.Maps;
using LibBpf.Net;

namespace EbpfProxy.Datapath.Sync;

/// <summary>
/// <see cref="IDatapathMaps"/> in dictionaries: what a node's pinned maps hold, without a kernel.
/// Tests start it with a predecessor's content (pinned state), run the daemon's sync against it
/// and check what was written, in which order (<see cref="Writes"/>), and what happens when a
/// write fails (<see cref="FailWrites"/>). Thread-safe: the sync and a test may touch it at once.
/// </summary>
public sealed class InMemoryDatapathMaps : IDatapathMaps
{
    private readonly Lock _gate = new();
    private LbConfig _config;
    private LbNatConfig _nat;
    private LbHostConfig _host;
    private LbState _services = new();
    private readonly HashSet<Lb4SrcRangeKey> _sourceRanges = [];
    private PolicyState _policy = new();
    private readonly Dictionary<IPAddress, PolEndpointName> _endpointNames = [];
    private readonly Dictionary<uint, string> _identityNames = [];
    private readonly List<string> _writes = [];

    /// <summary>
    /// Sizes of the service maps, enforced as the kernel does: an upsert of a new key into a full
    /// map fails with E2BIG before anything changes (overwrites and deletes always succeed). Null: unlimited.
    /// </summary>
    public LbLimits? Capacity { get; init; }

    public LbLimits? ServiceLimits => Capacity;

    /// <summary>Conntrack entries (tests put flows here to see them purged).</summary>
    public Dictionary<Ct4Key, CtEntry> Conntrack { get; } = [];

    /// <summary>Session-affinity pins.</summary>
    public Dictionary<Lb4AffinityKey, LbAffinityValue> Affinity { get; } = [];

    /// <summary>
    /// Called with the map's name before each write or delete; true fails it with ENOSPC (as a
    /// full map does), before anything changes.
    /// </summary>
    public Func<string, bool>? FailWrites { get; set; }

    /// <summary>The name of the map of every write and delete so far, in order.</summary>
    public IReadOnlyList<string> Writes
    {
        get
        {
            lock (_gate)
                return [.. _writes];
        }
    }

    /// <summary>Forgets the write log (after setting up pinned state).</summary>
    public void ClearWrites()
    {
        lock (_gate)
            _writes.Clear();
    }

    private void Write(string map, Action change)
    {
        lock (_gate)
        {
            if (FailWrites?.Invoke(map) == true)
                throw new BpfException(28 /* ENOSPC */, "map update", "map", map);
            change();
            _writes.Add(map);
        }
    }

    private T Read<T>(Func<T> read)
    {
        lock (_gate)
            return read();
    }

    public LbConfig ReadConfig() => Read(() => _config);
    public void WriteConfig(LbConfig config) => Write(LbMaps.ConfigMap, () => _config = config);
    public LbNatConfig ReadNatConfig() => Read(() => _nat);
    public void WriteNatConfig(LbNatConfig config) => Write(LbMaps.NatConfigMap, () => _nat = config);
    public LbHostConfig ReadHostConfig() => Read(() => _host);
    public void WriteHostConfig(LbHostConfig config) => Write(LbMaps.HostConfigMap, () => _host = config);

    public LbState ReadServices() => Read(() =>
    {
        var copy = _services.Clone();
        copy.BackendIdHighWater = 0;
        copy.RevNatIdHighWater = 0;
        copy.AdoptHighWater();
        return copy;
    });

    public void Apply(LbOp op) => Write(MapOf(op), () =>
    {
        if (Capacity is { } cap && Grows(op, cap))
            throw new BpfException(7 /* E2BIG */, "map update", "map", MapOf(op));
        _services.Apply(op);
    });

    /// <summary>Whether <paramref name="op"/> adds a key to a map that is already full.</summary>
    private bool Grows(LbOp op, LbLimits cap) => op switch
    {
        LbOp.UpsertBackend b => !_services.Backends.ContainsKey(b.Id) && _services.Backends.Count >= cap.MaxBackends,
        LbOp.UpsertRevNat r => !_services.RevNat.ContainsKey(r.Id) && _services.RevNat.Count >= cap.MaxRevNat,
        LbOp.UpsertName n => !_services.Names.ContainsKey(n.Id) && _services.Names.Count >= cap.MaxRevNat,
        LbOp.UpsertService s => _services.Frontends.GetValueOrDefault(s.Key)?.Service is null && _services.ServiceEntryCount >= cap.MaxServiceEntries,
        LbOp.UpsertSlot s => !(_services.Frontends.GetValueOrDefault(s.Key)?.Slots.ContainsKey(s.Slot) ?? false) && _services.ServiceEntryCount >= cap.MaxServiceEntries,
        _ => false,
    };

    public void ApplyBatch(IReadOnlyList<LbOp> ops, int start, int end)
    {
        for (int i = start; i < end; i++)
            Apply(ops[i]);
    }

    private static string MapOf(LbOp op) => op switch
    {
        LbOp.UpsertBackend or LbOp.DeleteBackend => LbMaps.Backends,
        LbOp.UpsertRevNat or LbOp.DeleteRevNat => LbMaps.ReverseNat,
        LbOp.UpsertName or LbOp.DeleteName => LbMaps.NamesMap,
        _ => LbMaps.Services,
    };

    public IReadOnlyCollection<Lb4SrcRangeKey> ReadSourceRanges() => Read(() => (IReadOnlyCollection<Lb4SrcRangeKey>)[.. _sourceRanges]);
    public void UpsertSourceRange(Lb4SrcRangeKey key) => Write(LbMaps.SourceRangeMap, () => _sourceRanges.Add(key));
    public void DeleteSourceRange(Lb4SrcRangeKey key) => Write(LbMaps.SourceRangeMap, () => _sourceRanges.Remove(key));

    public int DeleteConntrack(Func<Ct4Key, CtEntry, bool> staleFlow, Func<Lb4AffinityKey, LbAffinityValue, bool> stalePin)
    {
        lock (_gate)
        {
            int n = 0;
            foreach (var k in Conntrack.Where(kv => staleFlow(kv.Key, kv.Value)).Select(kv => kv.Key).ToList())
                n += Conntrack.Remove(k) ? 1 : 0;
            foreach (var k in Affinity.Where(kv => stalePin(kv.Key, kv.Value)).Select(kv => kv.Key).ToList())
                n += Affinity.Remove(k) ? 1 : 0;
            return n;
        }
    }

    public PolicyState ReadPolicy() => Read(() => _policy.Copy());

    public void Apply(PolicyOp op) => Write(op switch
    {
        PolicyOp.UpsertIpcache or PolicyOp.DeleteIpcache => PolicyMaps.IpcacheMap,
        PolicyOp.UpsertEndpoint or PolicyOp.DeleteEndpoint => PolicyMaps.EndpointsMap,
        _ => PolicyMaps.RulesMap,
    }, () => _policy.Apply(op));

    public bool TryReadEndpoint(IPAddress address, out EndpointEntry endpoint)
    {
        lock (_gate)
            return _policy.Endpoints.TryGetValue(address, out endpoint);
    }

    public Dictionary<IPAddress, PolEndpointName> ReadEndpointNames() => Read(() => new Dictionary<IPAddress, PolEndpointName>(_endpointNames));
    public void WriteEndpointName(IPAddress address, PolEndpointName name) => Write(PolicyMaps.EndpointNamesMap, () => _endpointNames[address] = name);
    public void DeleteEndpointName(IPAddress address) => Write(PolicyMaps.EndpointNamesMap, () => _endpointNames.Remove(address));
    public Dictionary<uint, string> ReadIdentityNames() => Read(() => new Dictionary<uint, string>(_identityNames));
    public void WriteIdentityName(uint identity, string text) => Write(PolicyMaps.IdentityNamesMap, () => _identityNames[identity] = text);
    public void DeleteIdentityName(uint identity) => Write(PolicyMaps.IdentityNamesMap, () => _identityNames.Remove(identity));
}
