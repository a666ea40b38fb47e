using System.Collections.Immutable;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Translation;

namespace EbpfProxy.Core.Planning;

/// <summary>Capacities of the maps the plan must fit in.</summary>
public sealed record LbLimits(uint MaxBackends = 262144, ushort MaxRevNat = 65535)
{
    public static LbLimits Default { get; } = new();
}

/// <summary>An ordered list of map writes that turns the current state into the desired one.</summary>
public sealed record LbPlan(IReadOnlyList<LbOp> Ops, LbState Next, ImmutableArray<TranslationError> Errors);

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
/// never reused while another id is free above the highest one in use, so a conntrack entry that
/// still names a removed backend does not silently reach a new one.
/// </summary>
public static class LbPlanner
{
    public static LbPlan Plan(LbState current, DesiredLbState desired, LbLimits? limits = null)
    {
        limits ??= LbLimits.Default;
        var ops = new List<LbOp>();
        var errors = ImmutableArray.CreateBuilder<TranslationError>();

        // 1. Backend ids: re-adopt what the maps hold, allocate the rest.
        var idByAddress = new Dictionary<BackendAddress, uint>();
        foreach (var (id, entry) in current.Backends.OrderBy(kv => kv.Key))
            idByAddress.TryAdd(entry.Address, id);

        var wanted = new SortedDictionary<BackendAddress, BackendFlags>(BackendAddressComparer.Instance);
        foreach (var fe in desired.Frontends.Values)
            foreach (var b in fe.Active.Concat(fe.Terminating))
                wanted[b.Address] = wanted.TryGetValue(b.Address, out var f) ? f | b.Flags : b.Flags;

        var backendIds = new IdAllocator(current.Backends.Keys, limits.MaxBackends, current.BackendIdHighWater);
        var usedBackendIds = new HashSet<uint>();
        var unplaceable = new HashSet<BackendAddress>();
        foreach (var (address, flags) in wanted)
        {
            if (!idByAddress.TryGetValue(address, out var id))
            {
                if (!backendIds.TryAllocate(out id))
                {
                    unplaceable.Add(address);
                    errors.Add(new TranslationError("Backend", address.ToString(), $"backends map is full ({limits.MaxBackends} entries); backend not programmed"));
                    continue;
                }
                idByAddress[address] = id;
            }
            usedBackendIds.Add(id);
            var entry = new BackendEntry(address, flags);
            if (!current.Backends.TryGetValue(id, out var have) || have != entry)
                ops.Add(new LbOp.UpsertBackend(id, entry));
        }

        // 2. Rev-NAT ids: one per frontend entry, kept for as long as the frontend exists.
        var revNatIds = new IdAllocator(current.RevNat.Keys.Select(k => (uint)k)
            .Concat(current.Frontends.Values.Where(f => f.Service is not null).Select(f => (uint)f.Service!.Value.RevNatId)), limits.MaxRevNat, current.RevNatIdHighWater);
        var frontends = desired.Frontends.Values
            .OrderBy(f => f.Key.Frontend.Address, Comparer<System.Net.IPAddress>.Create(BackendAddressComparer.CompareAddress))
            .ThenBy(f => f.Key.Frontend.Port).ThenBy(f => f.Key.Frontend.Protocol).ThenBy(f => f.Key.Scope)
            .ToList();
        var revNatOf = new Dictionary<FrontendKey, ushort>();
        foreach (var fe in frontends)
        {
            ushort revNat;
            if (current.Frontends.TryGetValue(fe.Key, out var have) && have.Service is { } svc && svc.RevNatId != 0)
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
                ops.Add(new LbOp.UpsertName(revNat, name));
        }

        // 3. Slots, then the service entry, then the slots past the new end.
        foreach (var fe in frontends)
        {
            if (!revNatOf.TryGetValue(fe.Key, out var revNat))
                continue;
            current.Frontends.TryGetValue(fe.Key, out var have);
            var oldCount = have?.Service?.Count ?? 0;
            var oldTerm = have?.Service?.TerminatingCount ?? 0;
            var oldActive = SlotRange(have, 1, oldCount);
            var oldTail = SlotRange(have, oldCount + 1, oldTerm);

            var active = StableAssign(oldActive, IdsOf(fe.Active, idByAddress, unplaceable));
            var tail = StableAssign(oldTail, IdsOf(fe.Terminating, idByAddress, unplaceable));
            var slots = active.Concat(tail).ToList();
            if (slots.Count > ushort.MaxValue - 1)
            {
                errors.Add(new TranslationError("Service", fe.Service.ToString(), $"{slots.Count} backends exceed the {ushort.MaxValue - 1} slots of a frontend; frontend not changed"));
                continue;
            }
            for (int i = 0; i < slots.Count; i++)
            {
                var slot = (ushort)(i + 1);
                if (have is null || !have.Slots.TryGetValue(slot, out var id) || id != slots[i])
                    ops.Add(new LbOp.UpsertSlot(fe.Key, slot, slots[i]));
            }
            var entry = new ServiceEntry(revNat, (ushort)active.Count, (ushort)tail.Count, fe.Flags, fe.AffinityTimeoutSeconds);
            if (have?.Service != entry)
                ops.Add(new LbOp.UpsertService(fe.Key, entry));
            if (have is not null)
                foreach (var slot in have.Slots.Keys.Where(s => s > slots.Count || s == 0))
                    ops.Add(new LbOp.DeleteSlot(fe.Key, slot));
        }

        // 4. Frontends that are gone: unpublish, then clear.
        var liveRevNat = new HashSet<ushort>(revNatOf.Values);
        foreach (var (key, have) in current.Frontends.OrderBy(kv => kv.Key.ToString(), StringComparer.Ordinal))
        {
            if (revNatOf.ContainsKey(key))
                continue;
            if (desired.Frontends.ContainsKey(key) && have.Service is not null)
            {
                liveRevNat.Add(have.Service.Value.RevNatId); // could not be re-planned: leave as is
                continue;
            }
            if (have.Service is not null)
                ops.Add(new LbOp.DeleteService(key));
            foreach (var slot in have.Slots.Keys)
                ops.Add(new LbOp.DeleteSlot(key, slot));
        }
        foreach (var id in current.RevNat.Keys.Where(id => !liveRevNat.Contains(id)).Order())
            ops.Add(new LbOp.DeleteRevNat(id));
        foreach (var id in current.Names.Keys.Where(id => !liveRevNat.Contains(id)).Order())
            ops.Add(new LbOp.DeleteName(id));

        // 5. Backends nothing names any more.
        var next = current.Clone();
        next.BackendIdHighWater = backendIds.HighWater;
        next.RevNatIdHighWater = revNatIds.HighWater;
        foreach (var op in ops)
            next.Apply(op);
        var referenced = new HashSet<uint>(next.Frontends.Values.SelectMany(f => f.Slots.Values));
        foreach (var id in current.Backends.Keys.Where(id => !usedBackendIds.Contains(id) && !referenced.Contains(id)).Order())
        {
            var op = new LbOp.DeleteBackend(id);
            ops.Add(op);
            next.Apply(op);
        }
        return new LbPlan(ops, next, errors.ToImmutable());
    }

    private static List<uint> SlotRange(FrontendEntries? have, int first, int count)
    {
        var list = new List<uint>(count);
        for (int s = first; s < first + count; s++)
            list.Add(have is not null && have.Slots.TryGetValue((ushort)s, out var id) ? id : 0);
        return list;
    }

    private static List<uint> IdsOf(ImmutableArray<Backend> backends, Dictionary<BackendAddress, uint> ids, HashSet<BackendAddress> unplaceable) =>
        backends.Where(b => !unplaceable.Contains(b.Address)).Select(b => ids[b.Address]).ToList();

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

/// <summary>
/// Hands out ids above the highest one in use (wrapping to the lowest free one at the limit), so
/// ids of removed objects are not reused right away.
/// </summary>
internal sealed class IdAllocator
{
    private readonly HashSet<uint> _used;
    private readonly uint _max;
    private uint _next;

    public IdAllocator(IEnumerable<uint> inUse, uint max, uint highWater)
    {
        _used = new HashSet<uint>(inUse);
        _max = max;
        HighWater = Math.Max(highWater, _used.Count == 0 ? 0 : _used.Max());
        _next = HighWater + 1;
    }

    public uint HighWater { get; private set; }

    public bool TryAllocate(out uint id)
    {
        if (_used.Count >= _max)
        {
            id = 0;
            return false;
        }
        for (uint tries = 0; tries <= _max; tries++)
        {
            if (_next == 0 || _next > _max)
                _next = 1;
            var candidate = _next++;
            if (_used.Add(candidate))
            {
                id = candidate;
                HighWater = Math.Max(HighWater, candidate);
                return true;
            }
        }
        id = 0;
        return false;
    }
}
