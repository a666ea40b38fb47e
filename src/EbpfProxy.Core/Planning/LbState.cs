using System.Net;
using EbpfProxy.Core.Model;

namespace EbpfProxy.Core.Planning;

/// <summary>Slot 0 of a frontend entry, as the maps hold it.</summary>
public readonly record struct ServiceEntry(ushort RevNatId, ushort Count, ushort TerminatingCount, ServiceFlags Flags, uint AffinityTimeoutSeconds);

/// <summary>A backends-map value.</summary>
public readonly record struct BackendEntry(BackendAddress Address, BackendFlags Flags);

/// <summary>A rev-NAT map value: what a reply's source becomes.</summary>
public readonly record struct RevNatEntry(IPAddress Address, ushort Port);

/// <summary>One frontend's entries: slot 0 (absent when only stray slots exist) and its backend slots.</summary>
public sealed class FrontendEntries
{
    public ServiceEntry? Service { get; set; }
    public SortedDictionary<ushort, uint> Slots { get; } = new();

    public FrontendEntries Clone()
    {
        var c = new FrontendEntries { Service = Service };
        foreach (var (k, v) in Slots)
            c.Slots[k] = v;
        return c;
    }
}

/// <summary>
/// The contents of the load-balancer maps in model form: read back from the pinned maps at start
/// (so ids and slots are re-adopted) and kept in step with every write afterwards.
/// </summary>
public sealed class LbState
{
    public Dictionary<FrontendKey, FrontendEntries> Frontends { get; } = new();
    public Dictionary<uint, BackendEntry> Backends { get; } = new();
    public Dictionary<ushort, RevNatEntry> RevNat { get; } = new();
    public Dictionary<ushort, string> Names { get; } = new();

    /// <summary>
    /// Highest backend / rev-NAT id handed out by this process. Allocation continues above it, so
    /// an id freed by a removal is not handed to a new backend while conntrack may still name it.
    /// </summary>
    public uint BackendIdHighWater { get; set; }
    public uint RevNatIdHighWater { get; set; }

    public LbState Clone()
    {
        var c = new LbState { BackendIdHighWater = BackendIdHighWater, RevNatIdHighWater = RevNatIdHighWater };
        foreach (var (k, v) in Frontends)
            c.Frontends[k] = v.Clone();
        foreach (var (k, v) in Backends)
            c.Backends[k] = v;
        foreach (var (k, v) in RevNat)
            c.RevNat[k] = v;
        foreach (var (k, v) in Names)
            c.Names[k] = v;
        return c;
    }

    /// <summary>Applies one operation to this model (what the executor does to the real maps).</summary>
    public void Apply(LbOp op)
    {
        switch (op)
        {
            case LbOp.UpsertBackend b:
                Backends[b.Id] = b.Entry;
                break;
            case LbOp.DeleteBackend b:
                Backends.Remove(b.Id);
                break;
            case LbOp.UpsertRevNat r:
                RevNat[r.Id] = r.Entry;
                break;
            case LbOp.DeleteRevNat r:
                RevNat.Remove(r.Id);
                break;
            case LbOp.UpsertName n:
                Names[n.Id] = n.Name;
                break;
            case LbOp.DeleteName n:
                Names.Remove(n.Id);
                break;
            case LbOp.UpsertService s:
                Entries(s.Key).Service = s.Entry;
                break;
            case LbOp.DeleteService s:
                if (Frontends.TryGetValue(s.Key, out var fs))
                {
                    fs.Service = null;
                    DropIfEmpty(s.Key, fs);
                }
                break;
            case LbOp.UpsertSlot s:
                Entries(s.Key).Slots[s.Slot] = s.BackendId;
                break;
            case LbOp.DeleteSlot s:
                if (Frontends.TryGetValue(s.Key, out var fe))
                {
                    fe.Slots.Remove(s.Slot);
                    DropIfEmpty(s.Key, fe);
                }
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op, "unknown operation");
        }
    }

    private FrontendEntries Entries(FrontendKey key)
    {
        if (!Frontends.TryGetValue(key, out var e))
            Frontends[key] = e = new FrontendEntries();
        return e;
    }

    private void DropIfEmpty(FrontendKey key, FrontendEntries e)
    {
        if (e.Service is null && e.Slots.Count == 0)
            Frontends.Remove(key);
    }
}

/// <summary>One map write. The planner emits them in an order that is safe to execute one by one.</summary>
public abstract record LbOp
{
    private LbOp() { }

    public sealed record UpsertBackend(uint Id, BackendEntry Entry) : LbOp;
    public sealed record DeleteBackend(uint Id) : LbOp;
    public sealed record UpsertRevNat(ushort Id, RevNatEntry Entry) : LbOp;
    public sealed record DeleteRevNat(ushort Id) : LbOp;
    public sealed record UpsertName(ushort Id, string Name) : LbOp;
    public sealed record DeleteName(ushort Id) : LbOp;
    public sealed record UpsertSlot(FrontendKey Key, ushort Slot, uint BackendId) : LbOp;
    public sealed record DeleteSlot(FrontendKey Key, ushort Slot) : LbOp;
    public sealed record UpsertService(FrontendKey Key, ServiceEntry Entry) : LbOp;
    public sealed record DeleteService(FrontendKey Key) : LbOp;
}
