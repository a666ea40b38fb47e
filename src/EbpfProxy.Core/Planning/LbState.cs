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
    /// <summary>Backend id by slot number (unordered; slots 1..count+terminating when consistent).</summary>
    public Dictionary<ushort, uint> Slots { get; } = new();
}

/// <summary>
/// The contents of the load-balancer maps in model form: read back from the pinned maps at start
/// (so ids and slots are re-adopted) and kept in step with every write afterwards through
/// <see cref="Apply"/>, which also maintains the indexes the planner needs to work on a few
/// frontends without scanning everything (backend id by address, slot references per backend).
/// </summary>
public sealed class LbState
{
    private readonly Dictionary<FrontendKey, FrontendEntries> _frontends = new();
    private readonly Dictionary<uint, BackendEntry> _backends = new();
    private readonly Dictionary<ushort, RevNatEntry> _revNat = new();
    private readonly Dictionary<ushort, string> _names = new();
    private readonly Dictionary<BackendAddress, uint> _backendIds = new();
    private readonly Dictionary<uint, int> _slotRefs = new();
    private readonly Dictionary<ushort, int> _serviceRevNatRefs = new();

    public IReadOnlyDictionary<FrontendKey, FrontendEntries> Frontends => _frontends;
    public IReadOnlyDictionary<uint, BackendEntry> Backends => _backends;
    public IReadOnlyDictionary<ushort, RevNatEntry> RevNat => _revNat;
    public IReadOnlyDictionary<ushort, string> Names => _names;

    /// <summary>Backend id by address (one per address; duplicates from damaged maps keep the first seen).</summary>
    public IReadOnlyDictionary<BackendAddress, uint> BackendIds => _backendIds;

    /// <summary>lb4_services entries: slot 0 of every frontend that has one, and every backend slot.</summary>
    public long ServiceEntryCount { get; private set; }

    /// <summary>How many slots name a backend id.</summary>
    public int SlotReferences(uint backendId) => _slotRefs.GetValueOrDefault(backendId);

    /// <summary>Whether a rev-NAT id is in use anywhere (rev-NAT map, names map, a service entry).</summary>
    public bool RevNatIdInUse(ushort id) => _revNat.ContainsKey(id) || _names.ContainsKey(id) || _serviceRevNatRefs.ContainsKey(id);

    /// <summary>
    /// Highest backend / rev-NAT id handed out. Allocation continues above it, so an id freed by a
    /// removal is not handed to a new backend while conntrack may still name it.
    /// </summary>
    public uint BackendIdHighWater { get; set; }
    public uint RevNatIdHighWater { get; set; }

    /// <summary>Raises the high-water marks to the highest ids present (after reading the maps).</summary>
    public void AdoptHighWater()
    {
        if (_backends.Count > 0)
            BackendIdHighWater = Math.Max(BackendIdHighWater, _backends.Keys.Max());
        foreach (var id in _revNat.Keys.Concat(_names.Keys).Concat(_serviceRevNatRefs.Keys))
            RevNatIdHighWater = Math.Max(RevNatIdHighWater, id);
    }

    public LbState Clone()
    {
        var c = new LbState { BackendIdHighWater = BackendIdHighWater, RevNatIdHighWater = RevNatIdHighWater };
        foreach (var (id, b) in _backends)
            c.Apply(new LbOp.UpsertBackend(id, b));
        foreach (var (id, r) in _revNat)
            c.Apply(new LbOp.UpsertRevNat(id, r));
        foreach (var (id, n) in _names)
            c.Apply(new LbOp.UpsertName(id, n));
        foreach (var (key, fe) in _frontends)
        {
            if (fe.Service is { } svc)
                c.Apply(new LbOp.UpsertService(key, svc));
            foreach (var (slot, id) in fe.Slots)
                c.Apply(new LbOp.UpsertSlot(key, slot, id));
        }
        return c;
    }

    /// <summary>
    /// Makes room for the upserts among <paramref name="ops"/> before they are applied one by
    /// one: a first pass writes every entry of the cluster, and indexes of that size grown one
    /// doubling at a time are mostly garbage (large-object garbage, which costs full collections).
    /// </summary>
    public void Reserve(IReadOnlyList<LbOp> ops)
    {
        int backends = 0, revNat = 0, names = 0, services = 0;
        foreach (var op in ops)
        {
            switch (op)
            {
                case LbOp.UpsertBackend: backends++; break;
                case LbOp.UpsertRevNat: revNat++; break;
                case LbOp.UpsertName: names++; break;
                case LbOp.UpsertService: services++; break;
            }
        }
        _backends.EnsureCapacity(_backends.Count + backends);
        _backendIds.EnsureCapacity(_backendIds.Count + backends);
        _slotRefs.EnsureCapacity(_slotRefs.Count + backends);
        _revNat.EnsureCapacity(_revNat.Count + revNat);
        _names.EnsureCapacity(_names.Count + names);
        _frontends.EnsureCapacity(_frontends.Count + services);
        _serviceRevNatRefs.EnsureCapacity(_serviceRevNatRefs.Count + services);
    }

    /// <summary>Applies one operation to this model (what the executor does to the real maps).</summary>
    public void Apply(LbOp op)
    {
        switch (op)
        {
            case LbOp.UpsertBackend b:
                if (_backends.TryGetValue(b.Id, out var old) && old.Address != b.Entry.Address && _backendIds.GetValueOrDefault(old.Address) == b.Id)
                    _backendIds.Remove(old.Address);
                _backends[b.Id] = b.Entry;
                _backendIds.TryAdd(b.Entry.Address, b.Id);
                break;
            case LbOp.DeleteBackend b:
                // Another id holding the same address (only in damaged maps) becomes unfindable by
                // address; the planner then allocates afresh and a full pass collects the duplicate.
                if (_backends.Remove(b.Id, out var gone) && _backendIds.GetValueOrDefault(gone.Address) == b.Id)
                    _backendIds.Remove(gone.Address);
                break;
            case LbOp.UpsertRevNat r:
                _revNat[r.Id] = r.Entry;
                break;
            case LbOp.DeleteRevNat r:
                _revNat.Remove(r.Id);
                break;
            case LbOp.UpsertName n:
                _names[n.Id] = n.Name;
                break;
            case LbOp.DeleteName n:
                _names.Remove(n.Id);
                break;
            case LbOp.UpsertService s:
            {
                var fe = Entries(s.Key);
                if (fe.Service is { } prev)
                    Unref(_serviceRevNatRefs, prev.RevNatId);
                else
                    ServiceEntryCount++;
                fe.Service = s.Entry;
                _serviceRevNatRefs[s.Entry.RevNatId] = _serviceRevNatRefs.GetValueOrDefault(s.Entry.RevNatId) + 1;
                break;
            }
            case LbOp.DeleteService s:
                if (_frontends.TryGetValue(s.Key, out var fs) && fs.Service is { } was)
                {
                    Unref(_serviceRevNatRefs, was.RevNatId);
                    fs.Service = null;
                    ServiceEntryCount--;
                    DropIfEmpty(s.Key, fs);
                }
                break;
            case LbOp.UpsertSlot s:
            {
                var fe = Entries(s.Key);
                if (fe.Slots.TryGetValue(s.Slot, out var prevId))
                    Unref(_slotRefs, prevId);
                else
                    ServiceEntryCount++;
                fe.Slots[s.Slot] = s.BackendId;
                _slotRefs[s.BackendId] = _slotRefs.GetValueOrDefault(s.BackendId) + 1;
                break;
            }
            case LbOp.DeleteSlot s:
                if (_frontends.TryGetValue(s.Key, out var fd) && fd.Slots.Remove(s.Slot, out var removed))
                {
                    Unref(_slotRefs, removed);
                    ServiceEntryCount--;
                    DropIfEmpty(s.Key, fd);
                }
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op, "unknown operation");
        }
    }

    private static void Unref<TKey>(Dictionary<TKey, int> refs, TKey key) where TKey : notnull
    {
        if (refs.TryGetValue(key, out var n))
        {
            if (n <= 1)
                refs.Remove(key);
            else
                refs[key] = n - 1;
        }
    }

    private FrontendEntries Entries(FrontendKey key)
    {
        if (!_frontends.TryGetValue(key, out var e))
            _frontends[key] = e = new FrontendEntries();
        return e;
    }

    private void DropIfEmpty(FrontendKey key, FrontendEntries e)
    {
        if (e.Service is null && e.Slots.Count == 0)
            _frontends.Remove(key);
    }
}

/// <summary>One map write. The planner emits them in an order that is safe to execute one by one.</summary>
public abstract record LbOp
{
    private LbOp() { }

    public bool IsDelete => this is DeleteBackend or DeleteRevNat or DeleteName or DeleteSlot or DeleteService;

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
