using System.Net;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Planning;
using EbpfProxy.Datapath.Maps;
using LibBpf.Net;

namespace EbpfProxy.Datapath.Sync;

/// <summary>Converts between the model (Core's LbState, LbOp) and the map structs.</summary>
public static class LbMapIo
{
    /// <summary>Reads what the load-balancer maps hold (re-adoption at start, drift healing, the CLI).</summary>
    public static LbState Read(LbMaps maps)
    {
        var state = new LbState();
        // Frontends first, backends last: the syncer writes a backend before any slot names it
        // and deletes it only after no slot does, so a reader racing with it sees every new slot's
        // backend. (The daemon itself reads only while it is the one writer.)
        foreach (var (k, v) in maps.Lb4Services.Entries())
        {
            var key = ToFrontendKey(k);
            if (k.Slot == 0)
                state.Apply(new LbOp.UpsertService(key, new ServiceEntry(v.RevNatId, v.Count, v.TerminatingCount, (ServiceFlags)v.Flags, v.AffinityTimeout)));
            else
                state.Apply(new LbOp.UpsertSlot(key, k.Slot, v.BackendId));
        }
        foreach (var (id, r) in maps.Lb4ReverseNat.Entries())
            state.Apply(new LbOp.UpsertRevNat(id, new RevNatEntry(r.AddressBe.ToAddress(), r.PortBe.ToHost())));
        foreach (var (id, n) in maps.Names.Entries())
            state.Apply(new LbOp.UpsertName(id, n.ToString()));
        foreach (var (id, b) in maps.Lb4Backends.Entries())
            state.Apply(new LbOp.UpsertBackend(id, new BackendEntry(new BackendAddress(b.AddressBe.ToAddress(), b.PortBe.ToHost(), (L4Protocol)b.Proto), (BackendFlags)b.Flags)));
        state.AdoptHighWater();
        return state;
    }

    /// <summary>
    /// The service maps' capacities as the planner counts them. Rev-NAT ids run from 1 and index
    /// lb_svc_conns (an array) as well as lb4_reverse_nat and lb_names, so the smallest of the
    /// three, less id 0, bounds them (and 16 bits).
    /// </summary>
    public static LbLimits Limits(LbMaps maps) => new(
        maps.Lb4Backends.Map.MaxEntries,
        (ushort)Math.Min(Math.Min(maps.Lb4ReverseNat.Map.MaxEntries, maps.Names.Map.MaxEntries) - 1, ushort.MaxValue),
        maps.Lb4Services.Map.MaxEntries);

    /// <summary>Performs one planned write on the real maps.</summary>
    public static void Apply(LbMaps maps, LbOp op)
    {
        switch (op)
        {
            case LbOp.UpsertBackend b:
                maps.Lb4Backends.Update(b.Id, ToBackend(b.Entry));
                break;
            case LbOp.DeleteBackend b:
                maps.Lb4Backends.Delete(b.Id);
                break;
            case LbOp.UpsertRevNat r:
                maps.Lb4ReverseNat.Update(r.Id, ToRevNat(r.Entry));
                break;
            case LbOp.DeleteRevNat r:
                maps.Lb4ReverseNat.Delete(r.Id);
                break;
            case LbOp.UpsertName n:
                maps.Names.Update(n.Id, LbName.From(n.Name));
                break;
            case LbOp.DeleteName n:
                maps.Names.Delete(n.Id);
                break;
            case LbOp.UpsertService s:
                maps.Lb4Services.Update(ToKey(s.Key, 0), ToService(s.Entry));
                break;
            case LbOp.DeleteService s:
                maps.Lb4Services.Delete(ToKey(s.Key, 0));
                break;
            case LbOp.UpsertSlot s:
                maps.Lb4Services.Update(ToKey(s.Key, s.Slot), new Lb4Service { BackendId = s.BackendId });
                break;
            case LbOp.DeleteSlot s:
                maps.Lb4Services.Delete(ToKey(s.Key, s.Slot));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op, "unknown operation");
        }
    }

    /// <summary>Ops a batch can carry: consecutive upserts into the same map.</summary>
    public static bool Batchable(LbOp op, LbOp first) => (op, first) switch
    {
        (LbOp.UpsertSlot or LbOp.UpsertService, LbOp.UpsertSlot or LbOp.UpsertService) => true,
        (LbOp.UpsertBackend, LbOp.UpsertBackend) => true,
        (LbOp.UpsertRevNat, LbOp.UpsertRevNat) => true,
        (LbOp.UpsertName, LbOp.UpsertName) => true,
        _ => false,
    };

    /// <summary>
    /// Performs a run of consecutive upserts into one map with bpf_map_update_batch, in chunks.
    /// The kernel applies a batch's elements in order, so the make-before-break order of the
    /// run is kept; a bulk load (start-up, re-list) costs a few hundred syscalls instead of one
    /// per entry.
    /// </summary>
    public static void ApplyBatch(LbMaps maps, IReadOnlyList<LbOp> ops, int start, int end)
    {
        const int chunk = 4096;
        switch (ops[start])
        {
            case LbOp.UpsertBackend:
                ApplyBatch(maps.Lb4Backends, ops, start, end, chunk, static (LbOp.UpsertBackend b) => (b.Id, ToBackend(b.Entry)));
                return;
            case LbOp.UpsertRevNat:
                ApplyBatch(maps.Lb4ReverseNat, ops, start, end, chunk, static (LbOp.UpsertRevNat r) => (r.Id, ToRevNat(r.Entry)));
                return;
            case LbOp.UpsertName:
                // 128-byte values: chunks that keep the buffer off the large-object heap.
                ApplyBatch(maps.Names, ops, start, end, 512, static (LbOp.UpsertName n) => (n.Id, LbName.From(n.Name)));
                return;
        }
        ApplyBatch(maps.Lb4Services, ops, start, end, chunk, static (LbOp op) => op switch
        {
            LbOp.UpsertSlot s => (ToKey(s.Key, s.Slot), new Lb4Service { BackendId = s.BackendId }),
            LbOp.UpsertService s => (ToKey(s.Key, 0), ToService(s.Entry)),
            var other => throw new ArgumentException($"{other} cannot be batched"),
        });
    }

    private static void ApplyBatch<TOp, TKey, TValue>(BpfMap<TKey, TValue> map, IReadOnlyList<LbOp> ops, int start, int end, int chunk, Func<TOp, (TKey, TValue)> entry)
        where TOp : LbOp
        where TKey : unmanaged
        where TValue : unmanaged
    {
        var keys = new TKey[Math.Min(chunk, end - start)];
        var values = new TValue[keys.Length];
        for (int i = start; i < end; i += chunk)
        {
            int n = Math.Min(chunk, end - i);
            for (int k = 0; k < n; k++)
                (keys[k], values[k]) = entry((TOp)ops[i + k]);
            map.UpdateBatch(keys.AsSpan(0, n), values.AsSpan(0, n));
        }
    }

    private static Lb4ReverseNat ToRevNat(RevNatEntry e) => new() { AddressBe = Be32Address.FromAddress(e.Address), PortBe = Be16.FromHost(e.Port) };

    private static Lb4Service ToService(ServiceEntry e) => new()
    {
        Count = e.Count,
        TerminatingCount = e.TerminatingCount,
        RevNatId = e.RevNatId,
        Flags = (ushort)e.Flags,
        AffinityTimeout = e.AffinityTimeoutSeconds,
    };

    public static Lb4Key ToKey(FrontendKey key, ushort slot) => new()
    {
        AddressBe = Be32Address.FromAddress(key.Frontend.Address),
        PortBe = Be16.FromHost(key.Frontend.Port),
        Proto = (byte)key.Frontend.Protocol,
        Scope = (byte)key.Scope,
        Slot = slot,
    };

    public static FrontendKey ToFrontendKey(Lb4Key k) =>
        new(new Frontend(k.AddressBe.ToAddress(), k.PortBe.ToHost(), (L4Protocol)k.Proto), (FrontendScope)k.Scope);

    private static Lb4Backend ToBackend(BackendEntry e) => new()
    {
        AddressBe = Be32Address.FromAddress(e.Address.Address),
        PortBe = Be16.FromHost(e.Address.Port),
        Proto = (byte)e.Address.Protocol,
        Flags = (byte)e.Flags,
    };
}
