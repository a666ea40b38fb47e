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
                maps.Lb4ReverseNat.Update(r.Id, new Lb4ReverseNat { AddressBe = Be32Address.FromAddress(r.Entry.Address), PortBe = Be16.FromHost(r.Entry.Port) });
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
                maps.Lb4Services.Update(ToKey(s.Key, 0), new Lb4Service
                {
                    Count = s.Entry.Count,
                    TerminatingCount = s.Entry.TerminatingCount,
                    RevNatId = s.Entry.RevNatId,
                    Flags = (ushort)s.Entry.Flags,
                    AffinityTimeout = s.Entry.AffinityTimeoutSeconds,
                });
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
