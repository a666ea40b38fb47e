using System.Buffers.Binary;
using System.Net;
using EbpfProxy.Core.Planning;
using EbpfProxy.Core.Policy;
using EbpfProxy.Datapath.Maps;
using LibBpf.Net;

namespace EbpfProxy.Datapath.Sync;

/// <summary>The kernel's maps (the loaded object's, or opened from their pins) behind <see cref="IDatapathMaps"/>.</summary>
public sealed class PinnedDatapathMaps(LbMaps lb, PolicyMaps policy) : IDatapathMaps
{
    public LbMaps Lb { get; } = lb;
    public PolicyMaps Policy { get; } = policy;

    public LbConfig ReadConfig() => Lb.Config.TryLookup(0u, out var v) ? v : default;
    public void WriteConfig(LbConfig config) => Lb.Config.Update(0u, config);
    public LbNatConfig ReadNatConfig() => Lb.NatConfig.TryLookup(0u, out var v) ? v : default;
    public void WriteNatConfig(LbNatConfig config) => Lb.NatConfig.Update(0u, config);
    public LbHostConfig ReadHostConfig() => Lb.HostConfig.TryLookup(0u, out var v) ? v : default;
    public void WriteHostConfig(LbHostConfig config) => Lb.HostConfig.Update(0u, config);

    public LbLimits? ServiceLimits => LbMapIo.Limits(Lb);

    public LbState ReadServices() => LbMapIo.Read(Lb);
    public void Apply(LbOp op) => LbMapIo.Apply(Lb, op);
    public void ApplyBatch(IReadOnlyList<LbOp> ops, int start, int end) => LbMapIo.ApplyBatch(Lb, ops, start, end);

    public IReadOnlyCollection<Lb4SrcRangeKey> ReadSourceRanges() => [.. Lb.SourceRanges.Keys()];
    public void UpsertSourceRange(Lb4SrcRangeKey key) => Lb.SourceRanges.Update(key, 1u);
    public void DeleteSourceRange(Lb4SrcRangeKey key) => Lb.SourceRanges.Delete(key);

    public int DeleteConntrack(Func<Ct4Key, CtEntry, bool> staleFlow, Func<Lb4AffinityKey, LbAffinityValue, bool> stalePin) =>
        DeleteWhere(Lb.Ct4, staleFlow) + DeleteWhere(Lb.Affinity, stalePin);

    /// <summary>One scan, then the deletes (deleting while walking a hash map can restart the walk).</summary>
    private static int DeleteWhere<TKey, TValue>(BpfMap<TKey, TValue> map, Func<TKey, TValue, bool> stale)
        where TKey : unmanaged
        where TValue : unmanaged
    {
        var doomed = new List<TKey>();
        foreach (var (k, v) in map.Entries())
            if (stale(k, v))
                doomed.Add(k);
        int deleted = 0;
        foreach (var key in doomed)
            if (map.Delete(key))
                deleted++;
        return deleted;
    }

    public PolicyState ReadPolicy() => ReadPolicy(Policy);

    /// <summary>What the NetworkPolicy maps hold.</summary>
    public static PolicyState ReadPolicy(PolicyMaps maps)
    {
        var ipcache = new Dictionary<IPNetwork, uint>();
        foreach (var (k, v) in maps.Ipcache.Entries())
            ipcache[ToPrefix(k)] = v.Identity;
        var endpoints = new Dictionary<IPAddress, EndpointEntry>();
        foreach (var (k, v) in maps.Endpoints.Entries())
            endpoints[k.ToAddress()] = new EndpointEntry(v.EndpointId, v.Identity, v.Flags);
        var rules = new HashSet<PolicyRule>();
        foreach (var k in maps.Rules.Keys())
            rules.Add(FromKey(k));
        return new PolicyState { Ipcache = ipcache, Endpoints = endpoints, Rules = rules };
    }

    public void Apply(PolicyOp op)
    {
        switch (op)
        {
            case PolicyOp.UpsertIpcache u:
                Policy.Ipcache.Update(ToKey(u.Prefix), new PolIpcacheEntry { Identity = u.Identity });
                break;
            case PolicyOp.DeleteIpcache d:
                Policy.Ipcache.Delete(ToKey(d.Prefix));
                break;
            case PolicyOp.UpsertEndpoint u:
                Policy.Endpoints.Update(Be32Address.FromAddress(u.Address), new PolEndpoint { EndpointId = u.Endpoint.EndpointId, Identity = u.Endpoint.Identity, Flags = u.Endpoint.Isolation });
                break;
            case PolicyOp.DeleteEndpoint d:
                Policy.Endpoints.Delete(Be32Address.FromAddress(d.Address));
                break;
            case PolicyOp.UpsertRule u:
                Policy.Rules.Update(ToKey(u.Rule), default);
                break;
            case PolicyOp.DeleteRule d:
                Policy.Rules.Delete(ToKey(d.Rule));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op, "unknown operation");
        }
    }

    public bool TryReadEndpoint(IPAddress address, out EndpointEntry endpoint)
    {
        if (Policy.Endpoints.TryLookup(Be32Address.FromAddress(address), out var v))
        {
            endpoint = new EndpointEntry(v.EndpointId, v.Identity, v.Flags);
            return true;
        }
        endpoint = default;
        return false;
    }

    public Dictionary<IPAddress, PolEndpointName> ReadEndpointNames() => ReadEndpointNames(Policy);

    /// <summary>pol_ep_names: local pod address -> endpoint id and "namespace/name".</summary>
    public static Dictionary<IPAddress, PolEndpointName> ReadEndpointNames(PolicyMaps maps)
    {
        var names = new Dictionary<IPAddress, PolEndpointName>();
        foreach (var (k, v) in maps.EndpointNames.Entries())
            names[k.ToAddress()] = new PolEndpointName(v.EndpointId, v.NameText());
        return names;
    }

    public void WriteEndpointName(IPAddress address, PolEndpointName name) =>
        Policy.EndpointNames.Update(Be32Address.FromAddress(address), PolEpName.From(name.EndpointId, name.Name));

    public void DeleteEndpointName(IPAddress address) => Policy.EndpointNames.Delete(Be32Address.FromAddress(address));

    public Dictionary<uint, string> ReadIdentityNames() => ReadIdentityNames(Policy);

    /// <summary>pol_id_names: identity -> its text.</summary>
    public static Dictionary<uint, string> ReadIdentityNames(PolicyMaps maps)
    {
        var names = new Dictionary<uint, string>();
        foreach (var (id, v) in maps.IdentityNames.Entries())
            names[id] = v.ToString();
        return names;
    }

    public void WriteIdentityName(uint identity, string text) => Policy.IdentityNames.Update(identity, PolIdName.From(text));
    public void DeleteIdentityName(uint identity) => Policy.IdentityNames.Delete(identity);

    public static PolIpcacheKey ToKey(IPNetwork prefix) =>
        new() { PrefixLen = (uint)prefix.PrefixLength, AddrBe = Be32Address.FromAddress(prefix.BaseAddress) };

    /// <summary>The prefix a key read from the trie stands for (bits beyond the length, which the trie ignores, cleared).</summary>
    public static IPNetwork ToPrefix(PolIpcacheKey key)
    {
        Span<byte> bytes = stackalloc byte[4];
        key.AddrBe.ToAddress().TryWriteBytes(bytes, out _);
        int len = (int)Math.Min(key.PrefixLen, 32);
        uint masked = len == 0 ? 0 : BinaryPrimitives.ReadUInt32BigEndian(bytes) & (uint.MaxValue << (32 - len));
        BinaryPrimitives.WriteUInt32BigEndian(bytes, masked);
        return new IPNetwork(new IPAddress(bytes), len);
    }

    public static PolRuleKey ToKey(PolicyRule rule) => new()
    {
        PrefixLen = rule.PrefixLen,
        EndpointId = rule.EndpointId,
        Identity = rule.RemoteIdentity,
        Dir = rule.Direction,
        Proto = (byte)rule.Protocol,
        PortBe = Be16.FromHost(rule.Port),
    };

    /// <summary>The rule a key read from the map stands for (bits beyond the prefix, which the trie ignores, are cleared).</summary>
    public static PolicyRule FromKey(PolRuleKey key)
    {
        if (key.PrefixLen is < PolRuleKey.PrefixAll or > PolRuleKey.PrefixFull)
            throw new InvalidDataException($"pol_rules holds a key with prefix length {key.PrefixLen}, outside {PolRuleKey.PrefixAll}..{PolRuleKey.PrefixFull}");
        if (key.PrefixLen < PolRuleKey.PrefixProto)
            return PolicyRule.AllTraffic(key.EndpointId, key.Identity, key.Dir);
        byte bits = (byte)(key.PrefixLen - PolRuleKey.PrefixProto);
        ushort port = bits == 0 ? (ushort)0 : (ushort)(key.PortBe.ToHost() & ~(0xffff >> bits));
        return new PolicyRule(key.EndpointId, key.Identity, key.Dir, (Core.Model.L4Protocol)key.Proto, port, bits);
    }
}

/// <summary>A pol_ep_names entry: the pod a local address belongs to ("namespace/name") and its endpoint id.</summary>
public readonly record struct PolEndpointName(uint EndpointId, string Name);
