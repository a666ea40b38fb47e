using System.Collections.Immutable;
using System.Net;
using System.Runtime.InteropServices;
using EbpfProxy.Core.Model;

namespace EbpfProxy.Core.Planning;

/// <summary>
/// Capacities of the maps the plan must fit in: backend ids (lb4_backends), rev-NAT ids (one per
/// frontend: lb4_reverse_nat, lb_names) and lb4_services entries (slot 0 plus one per backend slot
/// of every frontend).
/// </summary>
public sealed record LbLimits(uint MaxBackends = 262144, ushort MaxRevNat = 65535, uint MaxServiceEntries = 262144)
{
    public static LbLimits Default { get; } = new();
}

/// <summary>An ordered list of map writes that turns the current state into the desired one.</summary>
/// <param name="LeftOut">Frontends of services the plan left at their previous state for lack of room (to be planned again when room is made).</param>
public sealed record LbPlan(IReadOnlyList<LbOp> Ops, ImmutableArray<TranslationError> Errors)
{
    public IReadOnlyCollection<FrontendKey> LeftOut { get; init; } = [];

    /// <summary>The state after the plan: a copy of <paramref name="current"/> with every op applied (for tests and tools).</summary>
    public LbState ApplyTo(LbState current)
    {
        var next = current.Clone();
        foreach (var op in Ops)
            next.Apply(op);
        return next;
    }
}

/// <summary>
/// Diffs the desired state against what the maps hold and orders the writes make-before-break,
/// so a packet in flight sees the old backend set or the new one, never a half-written one:
/// <list type="number">
/// <item>frontends that are gone: slot 0 first (unpublish), then their slots, rev-NAT and name,
/// then the backends only they named — deletions come first, so what they free (entries, backend
/// and rev-NAT ids) is usable by the rest of the same plan;</item>
/// <item>backends that are new or changed;</item>
/// <item>rev-NAT entries and names of new frontends (replies must translate before requests do);</item>
/// <item>per frontend: backend slots, then slot 0 publishing the new counts, then slots past the
/// new end — frontends that shrink before those that grow, so the service map never holds more
/// than it does at the end of the plan;</item>
/// <item>backends no published slot names any more, last.</item>
/// </list>
/// Backends that stay keep their slot where they can, so a change rewrites few slots. Ids are
/// never reused while another id is free above the highest one handed out, so a conntrack entry
/// that still names a removed backend does not silently reach a new one.
/// <para>
/// Capacity (issue 14 item 1): a service — all its frontends, with their backend ids, rev-NAT ids
/// and lb4_services entries — is planned whole or not at all. Services are admitted against what
/// the maps have room for after the deletions: changes before additions (a change that shrinks
/// first), each in frontend order. One that does not fit is left exactly as the maps hold it (an
/// addition: absent), named once in <see cref="LbPlan.Errors"/> and listed in
/// <see cref="LbPlan.LeftOut"/>; it never stops those after it. So the kernel never refuses a
/// write for lack of room (E2BIG), which would leave a service half-written and fail every later
/// pass, deletions included.
/// </para>
/// <para>
/// With <c>changed</c> the plan covers only those frontends (the others are known to be
/// unchanged), so one EndpointSlice update costs work proportional to its service, not to the
/// cluster. Without it, everything is diffed, including strays left in the maps (periodic resync).
/// </para>
/// The planner reads <paramref name="current"/> and never modifies it, except for advancing the
/// id high-water marks; the caller applies the ops to the maps and to the state.
/// </summary>
public static class LbPlanner
{
    public static LbPlan Plan(LbState current, DesiredLbState desired, LbLimits? limits = null, IReadOnlyCollection<FrontendKey>? changed = null)
    {
        limits ??= LbLimits.Default;
        bool full = changed is null;
        var errors = ImmutableArray.CreateBuilder<TranslationError>();

        IEnumerable<FrontendKey> keys = full ? desired.Frontends.Keys.Concat(current.Frontends.Keys).Distinct() : changed!;
        var keyList = keys.OrderBy(k => AddressOrder.Key(k.Frontend.Address)).ThenBy(k => k.Frontend.Port)
            .ThenBy(k => k.Frontend.Protocol).ThenBy(k => k.Scope).ToList();
        var candidates = new List<FrontendState>();
        var removed = new List<FrontendKey>();
        foreach (var k in keyList)
        {
            if (desired.Frontends.TryGetValue(k, out var fe))
                candidates.Add(fe);
            else if (current.Frontends.ContainsKey(k))
                removed.Add(k);
        }
        var ops = new List<LbOp>(full ? 4 * candidates.Count + 16 : 16);
        var released = new HashSet<uint>(); // backend ids some slot stopped naming
        var refsDropped = new Dictionary<uint, int>(); // slot references the plan takes away, by backend id

        // 1. Frontends that are gone: unpublish, then clear. First, so their room is free for the rest.
        var freedRevNat = new HashSet<ushort>();
        long freedEntries = 0;
        foreach (var key in removed)
        {
            var have = current.Frontends[key];
            if (have.Service is { } svc)
            {
                ops.Add(new LbOp.DeleteService(key));
                freedEntries++;
                if (current.RevNat.ContainsKey(svc.RevNatId))
                    ops.Add(new LbOp.DeleteRevNat(svc.RevNatId));
                if (current.Names.ContainsKey(svc.RevNatId))
                    ops.Add(new LbOp.DeleteName(svc.RevNatId));
                freedRevNat.Add(svc.RevNatId);
            }
            foreach (var (slot, id) in have.Slots.OrderBy(kv => kv.Key))
            {
                ops.Add(new LbOp.DeleteSlot(key, slot));
                freedEntries++;
                released.Add(id);
                refsDropped[id] = refsDropped.GetValueOrDefault(id) + 1;
            }
        }

        // Every backend some remaining frontend wants (admitted or not: a backend kept for a
        // service left at its previous state is not deleted under it).
        // Sized up front: a first full plan handles every backend of the cluster, and growing
        // dictionaries of that size one doubling at a time is most of the garbage it would make.
        int slotCount = 0;
        foreach (var fe in candidates)
            slotCount += fe.Active.Length + fe.Terminating.Length;
        var wantedAll = new HashSet<BackendAddress>(slotCount);
        foreach (var fe in candidates)
        {
            foreach (var b in fe.Active)
                wantedAll.Add(b.Address);
            foreach (var b in fe.Terminating)
                wantedAll.Add(b.Address);
        }
        // Backends only removed frontends named go now, freeing their ids for this plan.
        var freedBackends = new HashSet<uint>();
        foreach (var id in released.Order())
        {
            if (current.Backends.TryGetValue(id, out var be) && !wantedAll.Contains(be.Address)
                && current.SlotReferences(id) - refsDropped.GetValueOrDefault(id) <= 0)
            {
                ops.Add(new LbOp.DeleteBackend(id));
                freedBackends.Add(id);
            }
        }

        // 2. Admission: which services fit, whole.
        var present = Admit(current, candidates, limits, freedEntries, freedRevNat, freedBackends, errors, out var leftOut);

        // 3. Backend ids: re-adopt what the maps hold, allocate the rest.
        var wanted = new Dictionary<BackendAddress, BackendFlags>(present.Count == candidates.Count ? wantedAll.Count : 16);
        foreach (var fe in present)
        {
            foreach (var b in fe.Active)
                CollectionsMarshal.GetValueRefOrAddDefault(wanted, b.Address, out _) |= b.Flags;
            foreach (var b in fe.Terminating)
                CollectionsMarshal.GetValueRefOrAddDefault(wanted, b.Address, out _) |= b.Flags;
        }
        var backendIds = new IdAllocator(id => current.Backends.ContainsKey(id) && !freedBackends.Contains(id),
            current.Backends.Count - freedBackends.Count, limits.MaxBackends, current.BackendIdHighWater);
        var idOf = new Dictionary<BackendAddress, uint>(wanted.Count);
        foreach (var (address, flags) in InAddressOrder(wanted))
        {
            if (!current.BackendIds.TryGetValue(address, out var id) || freedBackends.Contains(id))
            {
                if (!backendIds.TryAllocate(out id))
                {
                    // Admission counted the room: only damaged maps get here.
                    errors.Add(new TranslationError("Backend", address.ToString(), $"backends map is full ({limits.MaxBackends} entries); backend not programmed"));
                    continue;
                }
            }
            idOf[address] = id;
            var entry = new BackendEntry(address, flags);
            if (!current.Backends.TryGetValue(id, out var have) || have != entry || freedBackends.Contains(id))
                ops.Add(new LbOp.UpsertBackend(id, entry));
        }
        current.BackendIdHighWater = backendIds.HighWater;

        // 4. Rev-NAT ids: one per frontend entry, kept for as long as the frontend exists.
        var revNatIds = new IdAllocator(id => !freedRevNat.Contains((ushort)id) && current.RevNatIdInUse((ushort)id),
            current.RevNat.Count - freedRevNat.Count(id => current.RevNat.ContainsKey(id)), limits.MaxRevNat, current.RevNatIdHighWater);
        var revNatOf = new Dictionary<FrontendKey, ushort>(present.Count);
        var nameOps = new List<LbOp>();
        foreach (var fe in present)
        {
            ushort revNat;
            if (current.Frontends.TryGetValue(fe.Key, out var have) && have.Service is { RevNatId: not 0 } svc)
                revNat = svc.RevNatId;
            else if (revNatIds.TryAllocate(out var fresh))
                revNat = (ushort)fresh;
            else
            {
                errors.Add(new TranslationError("Service", fe.Service.ToString(), $"rev-NAT map is full ({limits.MaxRevNat} entries); frontend {fe.Key} not programmed"));
                continue;
            }
            revNatOf[fe.Key] = revNat;
            var rn = new RevNatEntry(fe.Key.Frontend.Address, fe.Key.Frontend.Port);
            if (!current.RevNat.TryGetValue(revNat, out var haveRn) || haveRn != rn)
                ops.Add(new LbOp.UpsertRevNat(revNat, rn));
            var name = fe.Service.ToString();
            if (!current.Names.TryGetValue(revNat, out var haveName) || haveName != name)
                nameOps.Add(new LbOp.UpsertName(revNat, name));
        }
        // Names after the rev-NAT entries rather than interleaved: each kind is one run of writes
        // into one map, which the executor can batch.
        ops.AddRange(nameOps);
        current.RevNatIdHighWater = revNatIds.HighWater;

        // 5. Slots, then the service entry, then the slots past the new end: frontends that do
        // not grow first, so the service map's peak is its size at the end of the plan.
        foreach (bool growing in (ReadOnlySpan<bool>)[false, true])
        {
            foreach (var fe in present)
            {
                if (!revNatOf.TryGetValue(fe.Key, out var revNat))
                    continue;
                current.Frontends.TryGetValue(fe.Key, out var have);
                if ((EntriesOf(fe) > EntriesOf(have)) != growing)
                    continue;
                int oldCount = have?.Service?.Count ?? 0;
                int oldTerm = have?.Service?.TerminatingCount ?? 0;
                // A new frontend has no slots to keep: its backends go in in the translator's order.
                var active = have is null ? IdsOf(fe.Active, idOf) : StableAssign(SlotRange(have, 1, oldCount), IdsOf(fe.Active, idOf));
                var tail = have is null ? IdsOf(fe.Terminating, idOf) : StableAssign(SlotRange(have, oldCount + 1, oldTerm), IdsOf(fe.Terminating, idOf));
                int total = active.Count + tail.Count;
                for (int i = 0; i < total; i++)
                {
                    var slot = (ushort)(i + 1);
                    var id = i < active.Count ? active[i] : tail[i - active.Count];
                    if (have is null || !have.Slots.TryGetValue(slot, out var old) || old != id)
                    {
                        if (have is not null && have.Slots.TryGetValue(slot, out var replaced))
                            released.Add(replaced);
                        ops.Add(new LbOp.UpsertSlot(fe.Key, slot, id));
                    }
                }
                var entry = new ServiceEntry(revNat, (ushort)active.Count, (ushort)tail.Count, fe.Flags, fe.AffinityTimeoutSeconds);
                if (have?.Service != entry)
                    ops.Add(new LbOp.UpsertService(fe.Key, entry));
                if (have is not null)
                {
                    foreach (var (slot, id) in have.Slots.OrderBy(kv => kv.Key))
                    {
                        if (slot > total || slot == 0)
                        {
                            ops.Add(new LbOp.DeleteSlot(fe.Key, slot));
                            released.Add(id);
                        }
                    }
                }
            }
        }

        if (full && (current.RevNat.Count > 0 || current.Names.Count > 0))
        {
            // Strays: rev-NAT entries and names that no remaining frontend uses.
            var live = new HashSet<ushort>(revNatOf.Values);
            foreach (var fe in candidates)
                if (!revNatOf.ContainsKey(fe.Key) && current.Frontends.TryGetValue(fe.Key, out var kept) && kept.Service is { } s)
                    live.Add(s.RevNatId);
            var deletedRevNat = ops.OfType<LbOp.DeleteRevNat>().Select(o => o.Id).ToHashSet();
            var deletedNames = ops.OfType<LbOp.DeleteName>().Select(o => o.Id).ToHashSet();
            foreach (var id in current.RevNat.Keys.Where(id => !live.Contains(id) && !deletedRevNat.Contains(id)).Order())
                ops.Add(new LbOp.DeleteRevNat(id));
            foreach (var id in current.Names.Keys.Where(id => !live.Contains(id) && !deletedNames.Contains(id)).Order())
                ops.Add(new LbOp.DeleteName(id));
        }

        // 6. Backends nothing names any more.
        IEnumerable<uint> deletable = full ? current.Backends.Keys : released;
        var candidateList = deletable.Where(id => current.Backends.ContainsKey(id) && !freedBackends.Contains(id)).Order().ToList();
        if (candidateList.Count == 0)
            return new LbPlan(ops, errors.ToImmutable()) { LeftOut = leftOut }; // a first plan against empty maps ends here
        var delta = new Dictionary<uint, int>();
        foreach (var op in ops)
        {
            switch (op)
            {
                case LbOp.UpsertSlot s:
                    if (current.Frontends.TryGetValue(s.Key, out var fe) && fe.Slots.TryGetValue(s.Slot, out var prev))
                        delta[prev] = delta.GetValueOrDefault(prev) - 1;
                    delta[s.BackendId] = delta.GetValueOrDefault(s.BackendId) + 1;
                    break;
                case LbOp.DeleteSlot s:
                    if (current.Frontends.TryGetValue(s.Key, out var fd) && fd.Slots.TryGetValue(s.Slot, out var gone))
                        delta[gone] = delta.GetValueOrDefault(gone) - 1;
                    break;
            }
        }
        var wantedIds = new HashSet<uint>(idOf.Values);
        foreach (var id in candidateList)
        {
            if (!wantedIds.Contains(id) && current.SlotReferences(id) + delta.GetValueOrDefault(id) <= 0)
                ops.Add(new LbOp.DeleteBackend(id));
        }
        return new LbPlan(ops, errors.ToImmutable()) { LeftOut = leftOut };
    }

    /// <summary>lb4_services entries a frontend holds (slot 0 and its slots) or will hold.</summary>
    private static long EntriesOf(FrontendEntries? have) => have is null ? 0 : (have.Service is null ? 0 : 1) + have.Slots.Count;
    private static long EntriesOf(FrontendState fe) => 1 + fe.Active.Length + fe.Terminating.Length;

    /// <summary>
    /// The frontends of the services that fit, whole, in what the maps have room for after the
    /// plan's deletions; the others are named in <paramref name="errors"/> (one line per service)
    /// and returned in <paramref name="leftOut"/>. Changes are admitted before additions, and
    /// changes that do not grow the service map before those that do; each group in frontend order.
    /// </summary>
    private static List<FrontendState> Admit(LbState current, List<FrontendState> candidates, LbLimits limits, long freedEntries,
        HashSet<ushort> freedRevNat, HashSet<uint> freedBackends, ImmutableArray<TranslationError>.Builder errors, out List<FrontendKey> leftOut)
    {
        leftOut = [];
        long entriesFree = (long)limits.MaxServiceEntries - current.ServiceEntryCount + freedEntries;
        long backendsFree = (long)limits.MaxBackends - (current.Backends.Count - freedBackends.Count);
        long revNatFree = limits.MaxRevNat - (current.RevNat.Count - freedRevNat.Count(id => current.RevNat.ContainsKey(id)));

        // The common case (a pass with room to spare for everything) costs one sum.
        long needEntries = 0, needRevNat = 0, needBackends = 0;
        bool tooManySlots = false;
        var newAddresses = new HashSet<BackendAddress>();
        foreach (var fe in candidates)
        {
            current.Frontends.TryGetValue(fe.Key, out var have);
            needEntries += Math.Max(0, EntriesOf(fe) - EntriesOf(have));
            if (have?.Service is not { RevNatId: not 0 })
                needRevNat++;
            tooManySlots |= fe.Active.Length + fe.Terminating.Length > ushort.MaxValue - 1;
            foreach (var b in fe.Active)
                if (!current.BackendIds.TryGetValue(b.Address, out var id) || freedBackends.Contains(id))
                    newAddresses.Add(b.Address);
            foreach (var b in fe.Terminating)
                if (!current.BackendIds.TryGetValue(b.Address, out var id) || freedBackends.Contains(id))
                    newAddresses.Add(b.Address);
        }
        needBackends = newAddresses.Count;
        if (!tooManySlots && needEntries <= entriesFree && needRevNat <= revNatFree && needBackends <= backendsFree)
            return candidates;

        // Group by service, in the order of each one's first frontend.
        var services = new List<((string Namespace, string Name) Name, List<FrontendState> Frontends, long Net, bool Existing)>();
        var index = new Dictionary<(string Namespace, string Name), int>();
        foreach (var fe in candidates)
        {
            var name = (fe.Service.Namespace, fe.Service.Name);
            if (!index.TryGetValue(name, out var i))
            {
                index[name] = i = services.Count;
                services.Add((name, [], 0, false));
            }
            current.Frontends.TryGetValue(fe.Key, out var have);
            var s = services[i];
            s.Frontends.Add(fe);
            services[i] = (s.Name, s.Frontends, s.Net + EntriesOf(fe) - EntriesOf(have), s.Existing || have?.Service is not null);
        }
        var order = Enumerable.Range(0, services.Count)
            .OrderBy(i => !services[i].Existing ? 2 : services[i].Net <= 0 ? 0 : 1).ThenBy(i => i).ToList();

        var claimed = new HashSet<BackendAddress>(); // new backends an admitted service already counted
        var admitted = new HashSet<int>();
        foreach (var i in order)
        {
            var (name, frontends, net, _) = services[i];
            long growth = 0, revNat = 0;
            int slots = 0;
            var mine = new HashSet<BackendAddress>();
            foreach (var fe in frontends)
            {
                current.Frontends.TryGetValue(fe.Key, out var have);
                growth += Math.Max(0, EntriesOf(fe) - EntriesOf(have));
                if (have?.Service is not { RevNatId: not 0 })
                    revNat++;
                slots = Math.Max(slots, fe.Active.Length + fe.Terminating.Length);
                foreach (var b in fe.Active.Concat(fe.Terminating))
                    if ((!current.BackendIds.TryGetValue(b.Address, out var id) || freedBackends.Contains(id)) && !claimed.Contains(b.Address))
                        mine.Add(b.Address);
            }
            string? problem = null;
            if (slots > ushort.MaxValue - 1)
                problem = $"{slots} backends exceed the {ushort.MaxValue - 1} slots of a frontend";
            else if (growth > entriesFree)
                problem = $"the services map (lb4_services) is full: {growth} more entries needed, {Math.Max(0, entriesFree)} free of {limits.MaxServiceEntries}";
            else if (revNat > revNatFree)
                problem = $"frontend ids (lb4_reverse_nat) are used up: {revNat} needed, {Math.Max(0, revNatFree)} free of {limits.MaxRevNat}";
            else if (mine.Count > backendsFree)
                problem = $"the backends map (lb4_backends) is full: {mine.Count} more needed, {Math.Max(0, backendsFree)} free of {limits.MaxBackends}";
            if (problem is not null)
            {
                bool existing = services[i].Existing;
                errors.Add(new TranslationError("Service", $"{name.Namespace}/{name.Name}",
                    $"{problem}; {(existing ? "kept at its previous state" : "not programmed")} ({frontends.Count} frontends)"));
                leftOut.AddRange(frontends.Select(f => f.Key));
                continue;
            }
            admitted.Add(i);
            entriesFree -= net;
            revNatFree -= revNat;
            backendsFree -= mine.Count;
            claimed.UnionWith(mine);
        }
        var result = new List<FrontendState>(candidates.Count);
        foreach (var fe in candidates)
            if (admitted.Contains(index[(fe.Service.Namespace, fe.Service.Name)]))
                result.Add(fe);
        return result;
    }

    private static List<uint> SlotRange(FrontendEntries? have, int first, int count)
    {
        var list = new List<uint>(count);
        for (int s = first; s < first + count; s++)
            list.Add(have is not null && have.Slots.TryGetValue((ushort)s, out var id) ? id : 0);
        return list;
    }

    /// <summary>The wanted backends by address (the order ids are handed out in), sorted without LINQ's per-key buffers.</summary>
    private static IEnumerable<KeyValuePair<BackendAddress, BackendFlags>> InAddressOrder(Dictionary<BackendAddress, BackendFlags> wanted)
    {
        var sorted = new (UInt128 Address, ushort Port, L4Protocol Protocol, BackendAddress Key, BackendFlags Flags)[wanted.Count];
        int n = 0;
        foreach (var (address, flags) in wanted)
            sorted[n++] = (AddressOrder.Key(address.Address), address.Port, address.Protocol, address, flags);
        Array.Sort(sorted, static (a, b) =>
        {
            int c = a.Address.CompareTo(b.Address);
            if (c == 0)
                c = a.Port.CompareTo(b.Port);
            return c != 0 ? c : a.Protocol.CompareTo(b.Protocol);
        });
        foreach (var e in sorted)
            yield return new(e.Key, e.Flags);
    }

    private static List<uint> IdsOf(ImmutableArray<Backend> backends, Dictionary<BackendAddress, uint> ids)
    {
        var list = new List<uint>(backends.Length);
        foreach (var b in backends)
            if (ids.TryGetValue(b.Address, out var id))
                list.Add(id);
        return list;
    }

    /// <summary>
    /// Orders <paramref name="wanted"/> so that members already at a position inside the new
    /// length keep it; the rest fill the holes in the given order.
    /// </summary>
    internal static List<uint> StableAssign(List<uint> old, List<uint> wanted)
    {
        var result = new uint[wanted.Count];
        var placed = new HashSet<uint>();
        var wantedSet = new HashSet<uint>(wanted);
        for (int i = 0; i < Math.Min(old.Count, result.Length); i++)
        {
            if (old[i] != 0 && wantedSet.Contains(old[i]) && placed.Add(old[i]))
                result[i] = old[i];
        }
        int hole = 0;
        foreach (var id in wanted)
        {
            if (placed.Contains(id))
                continue;
            while (result[hole] != 0)
                hole++;
            result[hole] = id;
            placed.Add(id);
        }
        return [.. result];
    }
}

/// <summary>A cheap total order on addresses (IPv4 before IPv6, then by bytes) for deterministic output.</summary>
public static class AddressOrder
{
    public static UInt128 Key(IPAddress address)
    {
        Span<byte> b = stackalloc byte[16];
        address.TryWriteBytes(b, out int len);
        if (len == 4)
            return (UInt128)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(b);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(b) | ((UInt128)1 << 127);
    }
}

/// <summary>
/// Hands out ids above the highest one handed out (wrapping to the lowest free one at the
/// limit), so ids of removed objects are not reused right away.
/// </summary>
internal sealed class IdAllocator
{
    private readonly Func<uint, bool> _inUse;
    // Ids handed out by this allocator. Until the counter wraps, every id it hands out is above
    // all earlier ones, so this set is only needed (and filled) from the wrap on.
    private readonly HashSet<uint> _allocated = new();
    private readonly int _usedCount;
    private readonly uint _max;
    private uint _next;
    private readonly ulong _start;
    private int _handedOut;
    private bool _wrapped;

    public IdAllocator(Func<uint, bool> inUse, int usedCount, uint max, uint highWater)
    {
        _inUse = inUse;
        _usedCount = usedCount;
        _max = max;
        HighWater = highWater;
        _next = highWater + 1;
        _start = (ulong)highWater + 1;
    }

    public uint HighWater { get; private set; }

    public bool TryAllocate(out uint id)
    {
        if (_usedCount + _handedOut >= _max)
        {
            id = 0;
            return false;
        }
        for (uint tries = 0; tries <= _max; tries++)
        {
            if (_next == 0 || _next > _max)
            {
                if (!_wrapped)
                {
                    // From here on candidates may repeat ids handed out before the wrap: those
                    // were every id from the start up to the limit that was not in use.
                    _wrapped = true;
                    for (ulong handed = _start; handed <= _max; handed++)
                        if (!_inUse((uint)handed))
                            _allocated.Add((uint)handed);
                }
                _next = 1;
            }
            var candidate = _next++;
            if (!_inUse(candidate) && (!_wrapped || _allocated.Add(candidate)))
            {
                id = candidate;
                _handedOut++;
                HighWater = Math.Max(HighWater, candidate);
                return true;
            }
        }
        id = 0;
        return false;
    }
}
