using System.Collections.Immutable;
using System.Net;
using System.Runtime.InteropServices;
using EbpfProxy.Core.Model;

namespace EbpfProxy.Core.Planning;

/// <summary>Capacities of the maps the plan must fit in.</summary>
public sealed record LbLimits(uint MaxBackends = 262144, ushort MaxRevNat = 65535)
{
    public static LbLimits Default { get; } = new();
}

/// <summary>An ordered list of map writes that turns the current state into the desired one.</summary>
public sealed record LbPlan(IReadOnlyList<LbOp> Ops, ImmutableArray<TranslationError> Errors)
{
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
/// <item>backends that are new or changed;</item>
/// <item>rev-NAT entries and names of new frontends (replies must translate before requests do);</item>
/// <item>per frontend: backend slots, then slot 0 publishing the new counts, then slots past the new end;</item>
/// <item>frontends that are gone: slot 0 first (unpublish), then their slots, rev-NAT and name;</item>
/// <item>backends no published slot names any more, last.</item>
/// </list>
/// Backends that stay keep their slot where they can, so a change rewrites few slots. Ids are
/// never reused while another id is free above the highest one handed out, so a conntrack entry
/// that still names a removed backend does not silently reach a new one.
/// <para>
/// With <c>changed</c> the plan covers only those frontends (the others are known to be
/// unchanged), so one EndpointSlice update costs work proportional to its service, not to the
/// cluster. Without it, everything is diffed, including strays left in the maps (periodic resync).
/// </para>
/// <para>
/// Draining (issue 9 item 2, kube-proxy's rule): a TCP or SCTP backend that leaves every slot
/// (not ready, terminating, deleted) stays in the backends map, where established connections'
/// conntrack entries still find it, while no slot offers it to new flows. It goes only when
/// <c>inUse</c> says no live connection names it any more; UDP backends go at once (their
/// conntrack entries are purged, kube-proxy clears UDP conntrack too). Without <c>inUse</c> nothing
/// is drained.
/// </para>
/// The planner reads <paramref name="current"/> and never modifies it, except for advancing the
/// id high-water marks; the caller applies the ops to the maps and to the state.
/// </summary>
public static class LbPlanner
{
    /// <summary>For incremental passes: every draining backend stays until a full pass checks conntrack.</summary>
    public static readonly Func<uint, bool> KeepDraining = static _ => true;

    /// <summary>Whether established connections to a backend of this protocol outlive its removal (TCP, SCTP).</summary>
    public static bool Drains(L4Protocol protocol) => protocol is L4Protocol.Tcp or L4Protocol.Sctp;

    /// <param name="current">What the maps hold.</param>
    /// <param name="desired">What they should hold.</param>
    /// <param name="limits">Map capacities.</param>
    /// <param name="changed">The frontends to plan (null: all, with strays).</param>
    /// <param name="inUse">
    /// Whether a live connection still names a backend id that no slot names any more: such a TCP or
    /// SCTP backend is kept, draining. Called only for those, at most once each. Null: none is in use.
    /// </param>
    public static LbPlan Plan(LbState current, DesiredLbState desired, LbLimits? limits = null, IReadOnlyCollection<FrontendKey>? changed = null,
        Func<uint, bool>? inUse = null)
    {
        limits ??= LbLimits.Default;
        bool full = changed is null;
        var errors = ImmutableArray.CreateBuilder<TranslationError>();

        IEnumerable<FrontendKey> keys = full ? desired.Frontends.Keys.Concat(current.Frontends.Keys).Distinct() : changed!;
        var keyList = keys.OrderBy(k => AddressOrder.Key(k.Frontend.Address)).ThenBy(k => k.Frontend.Port)
            .ThenBy(k => k.Frontend.Protocol).ThenBy(k => k.Scope).ToList();
        var present = new List<FrontendState>();
        var removed = new List<FrontendKey>();
        foreach (var k in keyList)
        {
            if (desired.Frontends.TryGetValue(k, out var fe))
                present.Add(fe);
            else if (current.Frontends.ContainsKey(k))
                removed.Add(k);
        }

        // 1. Backend ids: re-adopt what the maps hold, allocate the rest.
        // Sized up front: a first full plan handles every backend of the cluster, and growing
        // dictionaries of that size one doubling at a time is most of the garbage it would make.
        int slotCount = 0;
        foreach (var fe in present)
            slotCount += fe.Active.Length + fe.Terminating.Length;
        var wanted = new Dictionary<BackendAddress, BackendFlags>(slotCount);
        foreach (var fe in present)
        {
            foreach (var b in fe.Active)
                CollectionsMarshal.GetValueRefOrAddDefault(wanted, b.Address, out _) |= b.Flags;
            foreach (var b in fe.Terminating)
                CollectionsMarshal.GetValueRefOrAddDefault(wanted, b.Address, out _) |= b.Flags;
        }
        var ops = new List<LbOp>(full ? wanted.Count + slotCount + 3 * present.Count : 16);
        var backendIds = new IdAllocator(id => current.Backends.ContainsKey(id), current.Backends.Count, limits.MaxBackends, current.BackendIdHighWater);
        var idOf = new Dictionary<BackendAddress, uint>(wanted.Count);
        foreach (var (address, flags) in InAddressOrder(wanted))
        {
            if (!current.BackendIds.TryGetValue(address, out var id))
            {
                if (!backendIds.TryAllocate(out id))
                {
                    errors.Add(new TranslationError("Backend", address.ToString(), $"backends map is full ({limits.MaxBackends} entries); backend not programmed"));
                    continue;
                }
            }
            idOf[address] = id;
            var entry = new BackendEntry(address, flags);
            if (!current.Backends.TryGetValue(id, out var have) || have != entry)
                ops.Add(new LbOp.UpsertBackend(id, entry));
        }
        current.BackendIdHighWater = backendIds.HighWater;

        // 2. Rev-NAT ids: one per frontend entry, kept for as long as the frontend exists.
        var revNatIds = new IdAllocator(id => current.RevNatIdInUse((ushort)id), current.RevNat.Count, limits.MaxRevNat, current.RevNatIdHighWater);
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

        // 3. Slots, then the service entry, then the slots past the new end.
        var released = new HashSet<uint>(); // backend ids some slot stopped naming
        foreach (var fe in present)
        {
            if (!revNatOf.TryGetValue(fe.Key, out var revNat))
                continue;
            current.Frontends.TryGetValue(fe.Key, out var have);
            int oldCount = have?.Service?.Count ?? 0;
            int oldTerm = have?.Service?.TerminatingCount ?? 0;
            // A new frontend has no slots to keep: its backends go in in the translator's order.
            var active = have is null ? IdsOf(fe.Active, idOf) : StableAssign(SlotRange(have, 1, oldCount), IdsOf(fe.Active, idOf));
            var tail = have is null ? IdsOf(fe.Terminating, idOf) : StableAssign(SlotRange(have, oldCount + 1, oldTerm), IdsOf(fe.Terminating, idOf));
            int total = active.Count + tail.Count;
            if (total > ushort.MaxValue - 1)
            {
                errors.Add(new TranslationError("Service", fe.Service.ToString(), $"{total} backends exceed the {ushort.MaxValue - 1} slots of a frontend; frontend not changed"));
                continue;
            }
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

        // 4. Frontends that are gone: unpublish, then clear.
        foreach (var key in removed)
        {
            var have = current.Frontends[key];
            if (have.Service is { } svc)
            {
                ops.Add(new LbOp.DeleteService(key));
                if (current.RevNat.ContainsKey(svc.RevNatId))
                    ops.Add(new LbOp.DeleteRevNat(svc.RevNatId));
                if (current.Names.ContainsKey(svc.RevNatId))
                    ops.Add(new LbOp.DeleteName(svc.RevNatId));
            }
            foreach (var (slot, id) in have.Slots.OrderBy(kv => kv.Key))
            {
                ops.Add(new LbOp.DeleteSlot(key, slot));
                released.Add(id);
            }
        }
        if (full && (current.RevNat.Count > 0 || current.Names.Count > 0))
        {
            // Strays: rev-NAT entries and names that no remaining frontend uses.
            var live = new HashSet<ushort>(revNatOf.Values);
            foreach (var fe in present)
                if (!revNatOf.ContainsKey(fe.Key) && current.Frontends.TryGetValue(fe.Key, out var kept) && kept.Service is { } s)
                    live.Add(s.RevNatId);
            var deletedRevNat = ops.OfType<LbOp.DeleteRevNat>().Select(o => o.Id).ToHashSet();
            var deletedNames = ops.OfType<LbOp.DeleteName>().Select(o => o.Id).ToHashSet();
            foreach (var id in current.RevNat.Keys.Where(id => !live.Contains(id) && !deletedRevNat.Contains(id)).Order())
                ops.Add(new LbOp.DeleteRevNat(id));
            foreach (var id in current.Names.Keys.Where(id => !live.Contains(id) && !deletedNames.Contains(id)).Order())
                ops.Add(new LbOp.DeleteName(id));
        }

        // 5. Backends nothing names any more.
        IEnumerable<uint> candidates = full ? current.Backends.Keys : released;
        var candidateList = candidates.Where(id => current.Backends.ContainsKey(id)).Order().ToList();
        if (candidateList.Count == 0)
            return new LbPlan(ops, errors.ToImmutable()); // a first plan against empty maps ends here
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
            if (!wantedIds.Contains(id) && current.SlotReferences(id) + delta.GetValueOrDefault(id) <= 0
                && !(inUse is not null && Drains(current.Backends[id].Address.Protocol) && inUse(id)))
                ops.Add(new LbOp.DeleteBackend(id));
        }
        return new LbPlan(ops, errors.ToImmutable());
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
