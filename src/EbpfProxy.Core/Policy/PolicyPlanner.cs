using System.Net;

namespace EbpfProxy.Core.Policy;

/// <summary>One write to the NetworkPolicy maps.</summary>
public abstract record PolicyOp
{
    private PolicyOp()
    {
    }

    public bool IsDelete => this is DeleteIpcache or DeleteEndpoint or DeleteRule;

    public sealed record UpsertIpcache(IPNetwork Prefix, uint Identity) : PolicyOp;

    public sealed record DeleteIpcache(IPNetwork Prefix) : PolicyOp;

    public sealed record UpsertEndpoint(IPAddress Address, EndpointEntry Endpoint) : PolicyOp;

    public sealed record DeleteEndpoint(IPAddress Address) : PolicyOp;

    public sealed record UpsertRule(PolicyRule Rule) : PolicyOp;

    public sealed record DeleteRule(PolicyRule Rule) : PolicyOp;
}

/// <summary>
/// Orders the writes that take the NetworkPolicy maps from one state to another so that the
/// kernel, which reads them between any two writes, never admits a packet that neither the old
/// nor the new state admits, and in the usual changes (a pod isolated or released, a peer
/// relabelled, a pod added or removed, rules added or removed) never denies one that both admit.
/// </summary>
/// <remarks>
/// <para>
/// A packet between local pod E and peer X is judged by E's endpoint entry (its endpoint id e and
/// isolation), X's identity (longest ipcache prefix) and the rules (e, identity) and (e, any).
/// Rules are harmless while nothing resolves to their endpoint id and identity, so the plan
/// writes new rules before anything points at them and removes stale ones after nothing does.
/// Two kinds of write move things: ipcache writes move addresses between identities, endpoint
/// writes move pods between endpoint ids (and flip isolation). The sets that matter are the
/// identities that lose addresses (L) and gain them (G), and the endpoint ids that lose pods
/// (Lep) and gain them (Gep). The order:
/// </para>
/// <list type="number">
/// <item>Release: a pod that stops being isolated in a direction loses that flag first (its entry
/// otherwise unchanged): the new state admits everything there, and its rules may go later.</item>
/// <item>New rules (e, id) with e not in Lep and id not in L: whatever uses them now still does
/// after the pass, so they admit only what the new state admits.</item>
/// <item>Stale rules with e in Gep or id in G: something is about to resolve to them that the
/// old state did not admit through them. Also, for the one crossing the two moves allow (a pod
/// still on its old endpoint id while a peer already has its new identity), rules kept by both
/// states with e in Lep and id in G are removed here and written again in step 7.</item>
/// <item>ipcache: upserts longest prefix first, then deletes shortest prefix first. Written in
/// that order, every address resolves at every moment to its old or its new identity, never to
/// a third one (a shorter prefix's new value, or a longer prefix about to go).</item>
/// <item>New rules (e, id) with id in L and e not in Lep: the peers that left id have left.</item>
/// <item>Endpoints: each pod's entry (endpoint id and isolation together, one write). A pod
/// becomes isolated only now, when the rules it needs are there (open before, as the old state
/// was).</item>
/// <item>New rules with e in Lep (the pods that left e have left), and the crossing rules of
/// step 3.</item>
/// <item>The remaining stale rules.</item>
/// </list>
/// <para>
/// A relabelled peer (its /32 moves from identity a to b, rule (e, b) new, (e, a) stale) thus
/// gets (e, b) in step 2, moves in step 4 and loses (e, a) in step 8: admitted throughout, as
/// both states admit it. The transient denials the order accepts (fail closed) are the crossing
/// rules (steps 3 to 7), the rules of a shared endpoint id that some pods leave while others join
/// (until step 7), and a peer moving into an identity that others leave (steps 4 to 5).
/// </para>
/// </remarks>
public static class PolicyPlanner
{
    public static IReadOnlyList<PolicyOp> Plan(PolicyState current, PolicyState desired)
    {
        var (lostIds, gainedIds) = IdentityMoves(current.Ipcache, desired.Ipcache);
        var (lostEps, gainedEps) = EndpointMoves(current.Endpoints, desired.Endpoints);

        var added = desired.Rules.Where(r => !current.Rules.Contains(r)).ToList();
        var stale = current.Rules.Where(r => !desired.Rules.Contains(r)).ToList();
        var crossing = current.Rules.Where(r => desired.Rules.Contains(r) && lostEps.Contains(r.EndpointId) && gainedIds.Contains(r.RemoteIdentity)).ToList();

        var ops = new List<PolicyOp>();
        // 1. Release isolation that goes away.
        var released = new Dictionary<IPAddress, EndpointEntry>();
        foreach (var (address, old) in current.Endpoints.OrderBy(kv => kv.Key.ToString(), StringComparer.Ordinal))
        {
            var keep = desired.Endpoints.TryGetValue(address, out var ep) ? old.Isolation & ep.Isolation : PolicyIsolation.None;
            if (keep == old.Isolation)
                continue;
            released[address] = old with { Isolation = keep };
            ops.Add(new PolicyOp.UpsertEndpoint(address, old with { Isolation = keep }));
        }
        // 2. New rules nothing moves away from.
        ops.AddRange(Sorted(added.Where(r => !lostEps.Contains(r.EndpointId) && !lostIds.Contains(r.RemoteIdentity))).Select(r => new PolicyOp.UpsertRule(r)));
        // 3. Stale rules something moves into, and the crossing rules.
        ops.AddRange(Sorted(stale.Where(r => gainedEps.Contains(r.EndpointId) || gainedIds.Contains(r.RemoteIdentity)).Concat(crossing)).Select(r => new PolicyOp.DeleteRule(r)));
        // 4. ipcache: upserts longest prefix first, deletes shortest first.
        ops.AddRange(desired.Ipcache
            .Where(kv => !current.Ipcache.TryGetValue(kv.Key, out var id) || id != kv.Value)
            .OrderByDescending(kv => kv.Key.PrefixLength).ThenBy(kv => kv.Key.ToString(), StringComparer.Ordinal)
            .Select(kv => new PolicyOp.UpsertIpcache(kv.Key, kv.Value)));
        ops.AddRange(current.Ipcache.Keys
            .Where(p => !desired.Ipcache.ContainsKey(p))
            .OrderBy(p => p.PrefixLength).ThenBy(p => p.ToString(), StringComparer.Ordinal)
            .Select(p => new PolicyOp.DeleteIpcache(p)));
        // 5. New rules for identities that peers have left.
        ops.AddRange(Sorted(added.Where(r => !lostEps.Contains(r.EndpointId) && lostIds.Contains(r.RemoteIdentity))).Select(r => new PolicyOp.UpsertRule(r)));
        // 6. Endpoints.
        foreach (var (address, ep) in desired.Endpoints.OrderBy(kv => kv.Key.ToString(), StringComparer.Ordinal))
        {
            if (!(released.TryGetValue(address, out var now) || current.Endpoints.TryGetValue(address, out now)) || now != ep)
                ops.Add(new PolicyOp.UpsertEndpoint(address, ep));
        }
        ops.AddRange(current.Endpoints.Keys.Where(a => !desired.Endpoints.ContainsKey(a)).OrderBy(a => a.ToString(), StringComparer.Ordinal).Select(a => new PolicyOp.DeleteEndpoint(a)));
        // 7. New rules of endpoint ids that pods have left, and the crossing rules again.
        ops.AddRange(Sorted(added.Where(r => lostEps.Contains(r.EndpointId)).Concat(crossing)).Select(r => new PolicyOp.UpsertRule(r)));
        // 8. The remaining stale rules.
        ops.AddRange(Sorted(stale.Where(r => !gainedEps.Contains(r.EndpointId) && !gainedIds.Contains(r.RemoteIdentity))).Select(r => new PolicyOp.DeleteRule(r)));
        return ops;
    }

    /// <summary>
    /// The identities that some address leaves and enters. For every prefix whose entry changes,
    /// the addresses whose longest match it is (or was) go from the old longest match of the
    /// prefix to the new one; every address whose identity changes is covered by such a prefix.
    /// (An over-approximation when longer prefixes cover all of it: that only moves writes to a
    /// safer step.)
    /// </summary>
    private static (HashSet<uint> Lost, HashSet<uint> Gained) IdentityMoves(IReadOnlyDictionary<IPNetwork, uint> old, IReadOnlyDictionary<IPNetwork, uint> @new)
    {
        var lost = new HashSet<uint>();
        var gained = new HashSet<uint>();
        foreach (var prefix in old.Keys.Concat(@new.Keys).Distinct())
        {
            bool inOld = old.TryGetValue(prefix, out var a), inNew = @new.TryGetValue(prefix, out var b);
            if (inOld && inNew && a == b)
                continue;
            var from = LongestMatch(old, prefix);
            var to = LongestMatch(@new, prefix);
            if (from != to)
            {
                lost.Add(from);
                gained.Add(to);
            }
        }
        return (lost, gained);
    }

    /// <summary>The identity of the longest prefix in <paramref name="ipcache"/> that contains <paramref name="prefix"/> (world when none does), as the trie resolves its addresses.</summary>
    public static uint LongestMatch(IReadOnlyDictionary<IPNetwork, uint> ipcache, IPNetwork prefix)
    {
        Span<byte> bytes = stackalloc byte[4];
        prefix.BaseAddress.TryWriteBytes(bytes, out _);
        uint addr = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes);
        for (int len = prefix.PrefixLength; len >= 0; len--)
        {
            uint masked = len == 0 ? 0 : addr & (uint.MaxValue << (32 - len));
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes, masked);
            if (ipcache.TryGetValue(new IPNetwork(new IPAddress(bytes), len), out var id))
                return id;
        }
        return ReservedIdentity.World;
    }

    /// <summary>The endpoint ids that some pod leaves and joins (a pod without an entry is on none).</summary>
    private static (HashSet<uint> Lost, HashSet<uint> Gained) EndpointMoves(IReadOnlyDictionary<IPAddress, EndpointEntry> old, IReadOnlyDictionary<IPAddress, EndpointEntry> @new)
    {
        var lost = new HashSet<uint>();
        var gained = new HashSet<uint>();
        foreach (var address in old.Keys.Concat(@new.Keys).Distinct())
        {
            uint? from = old.TryGetValue(address, out var a) ? a.EndpointId : null;
            uint? to = @new.TryGetValue(address, out var b) ? b.EndpointId : null;
            if (from == to)
                continue;
            if (from is { } f)
                lost.Add(f);
            if (to is { } t)
                gained.Add(t);
        }
        return (lost, gained);
    }

    private static IEnumerable<PolicyRule> Sorted(IEnumerable<PolicyRule> rules) =>
        rules.Distinct().OrderBy(r => r.EndpointId).ThenBy(r => r.RemoteIdentity).ThenBy(r => r.Direction).ThenBy(r => r.Protocol).ThenBy(r => r.Port).ThenBy(r => r.PortBits);
}
