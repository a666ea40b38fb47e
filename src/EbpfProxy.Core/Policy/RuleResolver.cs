using System.Numerics;
using EbpfProxy.Core.Model;

namespace EbpfProxy.Core.Policy;

/// <summary>An identity in use in one computation, with one prefix that stands for its signature (any address that has it).</summary>
internal sealed record Identity(uint Id, IdentityKey Key, Ipv4Prefix Representative);

/// <summary>
/// A policy's rules for one direction with peers resolved to identities: keys with endpoint id 0
/// (stamped per selected endpoint), named ingress ports (resolved per endpoint on its own
/// containers), and every identity these name (to know when a removed identity invalidates them).
/// </summary>
internal sealed record ResolvedRules(
    List<PolicyRuleKey> Keys,
    List<(uint[] Peers, string Name, L4Protocol Protocol)> IngressNamed,
    HashSet<uint> Identities);

/// <summary>
/// Resolves policy rules to rule keys: peers to identities (podSelector in the policy's namespace,
/// namespaceSelector over namespace labels, both AND-ed, ipBlock by CIDR signature), ports to
/// protocol, port blocks or named ports. Resolutions are cached per compiled policy and direction
/// across computations, and dropped only when an identity they name went away, a new identity
/// matches one of their peers, or this node's addresses changed: a pod relabel re-resolves the few
/// policies that select the old or new label set.
/// </summary>
internal sealed class RuleResolver
{
    private sealed class Entry
    {
        public ResolvedRules? Ingress;
        public ResolvedRules? Egress;
    }

    private Dictionary<CompiledPolicy, Entry> _cache = new(ReferenceEqualityComparer.Instance);
    private Dictionary<string, List<Identity>> _podIdentities = new(StringComparer.Ordinal);
    private List<Identity> _identities = [];
    private HashSet<uint> _nodeAddresses = [];

    /// <summary>Resolutions reused from the previous computation, and made, since <see cref="Begin"/>.</summary>
    public (int Reused, int Resolved) Counts { get; private set; }

    /// <summary>
    /// Starts a computation over <paramref name="identities"/> (pod ones also grouped by namespace
    /// in <paramref name="podIdentities"/>), keeping the cached resolutions of
    /// <paramref name="policies"/> that the identity changes cannot alter.
    /// </summary>
    public void Begin(
        IReadOnlyCollection<CompiledPolicy> policies,
        Dictionary<string, List<Identity>> podIdentities,
        List<Identity> identities,
        HashSet<uint> nodeAddresses,
        IReadOnlyCollection<uint> removed,
        IReadOnlyCollection<Identity> added)
    {
        bool nodeChanged = !nodeAddresses.SetEquals(_nodeAddresses);
        _podIdentities = podIdentities;
        _identities = identities;
        _nodeAddresses = nodeAddresses;
        var cache = new Dictionary<CompiledPolicy, Entry>(policies.Count, ReferenceEqualityComparer.Instance);
        if (!nodeChanged)
        {
            foreach (var policy in policies)
            {
                if (!_cache.TryGetValue(policy, out var entry))
                    continue;
                entry.Ingress = Keep(entry.Ingress, policy, PolicyDirection.Ingress, removed, added);
                entry.Egress = Keep(entry.Egress, policy, PolicyDirection.Egress, removed, added);
                cache[policy] = entry;
            }
        }
        _cache = cache;
        Counts = (0, 0);
    }

    private ResolvedRules? Keep(ResolvedRules? resolved, CompiledPolicy policy, PolicyDirection direction, IReadOnlyCollection<uint> removed, IReadOnlyCollection<Identity> added)
    {
        if (resolved is null)
            return null;
        foreach (var id in removed)
            if (resolved.Identities.Contains(id))
                return null;
        foreach (var identity in added)
            if (Affects(policy, direction, identity))
                return null;
        return resolved;
    }

    /// <summary>Whether <paramref name="identity"/> would appear in the policy's resolution for <paramref name="direction"/>.</summary>
    private static bool Affects(CompiledPolicy policy, PolicyDirection direction, Identity identity)
    {
        foreach (var rule in RulesOf(policy, direction))
        {
            if (rule.Peers.IsEmpty)
            {
                // Every peer is identity 0, except for egress named ports, which list the pods declaring them.
                if (direction == PolicyDirection.Egress && identity.Key.NamedPorts.Length > 0 && rule.Ports.Any(p => p.Name is not null))
                    return true;
                continue;
            }
            foreach (var peer in rule.Peers)
                if (Matches(policy, peer, identity))
                    return true;
        }
        return false;
    }

    public ResolvedRules Resolve(CompiledPolicy policy, PolicyDirection direction)
    {
        if (!_cache.TryGetValue(policy, out var entry))
            _cache[policy] = entry = new Entry();
        var cached = direction == PolicyDirection.Ingress ? entry.Ingress : entry.Egress;
        if (cached is not null)
        {
            Counts = (Counts.Reused + 1, Counts.Resolved);
            return cached;
        }
        var resolved = ResolveNow(policy, direction);
        if (direction == PolicyDirection.Ingress)
            entry.Ingress = resolved;
        else
            entry.Egress = resolved;
        Counts = (Counts.Reused, Counts.Resolved + 1);
        return resolved;
    }

    private static IEnumerable<CompiledRule> RulesOf(CompiledPolicy policy, PolicyDirection direction) =>
        direction == PolicyDirection.Ingress ? policy.Ingress : policy.Egress;

    private ResolvedRules ResolveNow(CompiledPolicy policy, PolicyDirection direction)
    {
        var keys = new List<PolicyRuleKey>();
        var named = new List<(uint[], string, L4Protocol)>();
        var identities = new HashSet<uint>();
        foreach (var rule in RulesOf(policy, direction))
        {
            var peerSet = rule.Peers.IsEmpty ? null : Peers(policy, rule);
            uint[]? peers = peerSet?.ToArray();
            if (peerSet is not null)
                identities.UnionWith(peerSet);
            if (rule.Ports.IsEmpty)
            {
                foreach (var peer in peers ?? [ReservedIdentity.Any])
                    keys.Add(PolicyRuleKey.AnyPort(0, peer, direction));
                continue;
            }
            foreach (var port in rule.Ports)
            {
                if (port.Name is null)
                {
                    foreach (var peer in peers ?? [ReservedIdentity.Any])
                        AddPorts(keys, peer, direction, port);
                }
                else if (direction == PolicyDirection.Ingress)
                {
                    named.Add((peers ?? [ReservedIdentity.Any], port.Name, port.Protocol));
                }
                else
                {
                    // Egress: the name resolves on each remote pod; peers that are not pods have no ports.
                    IEnumerable<Identity> candidates = peerSet is null ? _identities : _identities.Where(i => peerSet.Contains(i.Id));
                    foreach (var identity in candidates)
                    {
                        foreach (var np in identity.Key.NamedPorts)
                        {
                            if (np.Protocol != port.Protocol || !string.Equals(np.Name, port.Name, StringComparison.Ordinal))
                                continue;
                            keys.Add(PolicyRuleKey.PortBlock(0, identity.Id, direction, np.Protocol, np.Port, 16));
                            identities.Add(identity.Id);
                        }
                    }
                }
            }
        }
        return new ResolvedRules(keys, named, identities);
    }

    private static void AddPorts(List<PolicyRuleKey> keys, uint peer, PolicyDirection direction, CompiledPort port)
    {
        if (port.Port == 0)
        {
            keys.Add(PolicyRuleKey.AllPortsOf(0, peer, direction, port.Protocol));
            return;
        }
        foreach (var (first, bits) in PortBlocks(port.Port, port.EndPort))
            keys.Add(PolicyRuleKey.PortBlock(0, peer, direction, port.Protocol, first, bits));
    }

    /// <summary>The identities one rule's peers match (peers OR).</summary>
    private HashSet<uint> Peers(CompiledPolicy policy, CompiledRule rule)
    {
        var result = new HashSet<uint>();
        foreach (var peer in rule.Peers)
        {
            if (peer.Block is { } block)
            {
                foreach (var identity in _identities)
                    if (InBlock(block, identity.Representative))
                        result.Add(identity.Id);
                foreach (var address in _nodeAddresses)
                    if (InBlock(block, Ipv4Prefix.Host(address)))
                        result.Add(ReservedIdentity.Host);
                continue;
            }
            if (!peer.IsPodPeer)
                continue; // an IPv6 ipBlock: nothing on this datapath
            if (peer.Namespaces is null)
            {
                AddPods(result, peer, _podIdentities.GetValueOrDefault(policy.Namespace));
                continue;
            }
            foreach (var (_, identities) in _podIdentities)
                if (peer.Namespaces.Matches(identities[0].Key.NamespaceLabels))
                    AddPods(result, peer, identities);
        }
        return result;
    }

    private static void AddPods(HashSet<uint> result, CompiledPeer peer, List<Identity>? identities)
    {
        foreach (var identity in identities ?? [])
            if (peer.Pods is null || peer.Pods.Matches(identity.Key.PodLabels))
                result.Add(identity.Id);
    }

    /// <summary>Whether one peer matches one identity (the per-identity form of <see cref="Peers"/>).</summary>
    private static bool Matches(CompiledPolicy policy, CompiledPeer peer, Identity identity)
    {
        if (peer.Block is { } block)
            return InBlock(block, identity.Representative);
        if (!peer.IsPodPeer || identity.Key.Namespace is not { } ns)
            return false;
        bool inNamespace = peer.Namespaces is null
            ? string.Equals(ns, policy.Namespace, StringComparison.Ordinal)
            : peer.Namespaces.Matches(identity.Key.NamespaceLabels);
        return inNamespace && (peer.Pods is null || peer.Pods.Matches(identity.Key.PodLabels));
    }

    /// <summary>
    /// Whether the addresses of a prefix are in cidr minus except. Exact for every identity: the
    /// ipcache gives an address the identity of its longest match, and each except prefix has its
    /// own entry, so the representative of an identity decides for all of its addresses.
    /// </summary>
    private static bool InBlock(CidrBlock block, Ipv4Prefix prefix)
    {
        if (!block.Cidr.Contains(prefix))
            return false;
        foreach (var e in block.Except)
            if (e.Contains(prefix))
                return false;
        return true;
    }

    /// <summary>The fewest aligned port blocks (first port, leading bits) that cover first..last exactly.</summary>
    internal static IEnumerable<(ushort First, int Bits)> PortBlocks(int first, int last)
    {
        int lo = first;
        while (lo <= last)
        {
            int size = lo == 0 ? 1 << 16 : lo & -lo;
            while (lo + size - 1 > last)
                size >>= 1;
            yield return ((ushort)lo, 16 - BitOperations.Log2((uint)size));
            lo += size;
        }
    }
}
