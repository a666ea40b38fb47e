using System.Net;
using EbpfProxy.Core.Model;
using EbpfProxy.Datapath.Maps;

namespace EbpfProxy.Datapath.Sync;

/// <summary>
/// Part of the service stage: keeps lb4_src_range (loadBalancerSourceRanges) in step with the desired frontends. Entries a
/// frontend needs are written before the LB maps publish the frontend's SourceRanges flag, and
/// entries no frontend needs any more are removed after, so a client inside the ranges is never
/// dropped by a half-applied change.
/// </summary>
internal sealed class SourceRangeStage
{
    private readonly IDatapathMaps _maps;
    // What the map holds, per frontend (only frontends with ranges appear).
    private Dictionary<Frontend, HashSet<Lb4SrcRangeKey>>? _have;
    private List<Lb4SrcRangeKey> _pendingDeletes = [];

    public SourceRangeStage(IDatapathMaps maps) => _maps = maps;

    /// <summary>Writes the entries the changed frontends (all of them when null) need. Returns the number written.</summary>
    public int AddMissing(DesiredLbState desired, IReadOnlyCollection<FrontendKey>? changed)
    {
        var keys = new List<Lb4SrcRangeKey>();
        _pendingDeletes = [];
        if (_have is null || changed is null)
        {
            // Full pass: start from what the map really holds.
            _have = [];
            foreach (var k in _maps.ReadSourceRanges())
                Set(_have, FrontendOf(k)).Add(k);
            var wantedAll = new Dictionary<Frontend, HashSet<Lb4SrcRangeKey>>();
            foreach (var fe in desired.Frontends.Values)
                if (fe.Key.Scope == FrontendScope.External && !fe.SourceRanges.IsEmpty)
                    wantedAll[fe.Key.Frontend] = Wanted(fe);
            foreach (var frontend in _have.Keys.Union(wantedAll.Keys).ToList())
                Reconcile(frontend, wantedAll.GetValueOrDefault(frontend) ?? [], keys);
        }
        else
        {
            foreach (var frontend in changed.Where(k => k.Scope == FrontendScope.External).Select(k => k.Frontend).Distinct())
            {
                var fe = desired.Frontends.GetValueOrDefault(new FrontendKey(frontend, FrontendScope.External));
                Reconcile(frontend, fe is null || fe.SourceRanges.IsEmpty ? [] : Wanted(fe), keys);
            }
        }
        foreach (var k in keys)
            _maps.UpsertSourceRange(k);
        return keys.Count;
    }

    /// <summary>Removes the entries found stale by the last <see cref="AddMissing"/>. Returns the number removed.</summary>
    public int RemoveStale()
    {
        foreach (var k in _pendingDeletes)
            _maps.DeleteSourceRange(k);
        var n = _pendingDeletes.Count;
        _pendingDeletes = [];
        return n;
    }

    /// <summary>Forgets the model: the next pass re-reads the map.</summary>
    public void Invalidate() => _have = null;

    private void Reconcile(Frontend frontend, HashSet<Lb4SrcRangeKey> wanted, List<Lb4SrcRangeKey> adds)
    {
        var model = _have!;
        var have = model.GetValueOrDefault(frontend) ?? [];
        adds.AddRange(wanted.Where(k => !have.Contains(k)));
        _pendingDeletes.AddRange(have.Where(k => !wanted.Contains(k)));
        if (wanted.Count == 0)
            model.Remove(frontend);
        else
            model[frontend] = wanted;
    }

    private static HashSet<Lb4SrcRangeKey> Set(Dictionary<Frontend, HashSet<Lb4SrcRangeKey>> d, Frontend f) =>
        d.TryGetValue(f, out var s) ? s : d[f] = [];

    private static HashSet<Lb4SrcRangeKey> Wanted(FrontendState fe) =>
        [.. fe.SourceRanges.Where(r => r.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork).Select(r => KeyOf(fe.Key.Frontend, r))];

    internal static Lb4SrcRangeKey KeyOf(Frontend frontend, IPNetwork range) => new()
    {
        Prefixlen = Lb4SrcRangeKey.FrontendBits + (uint)range.PrefixLength,
        AddressBe = Be32Address.FromAddress(frontend.Address),
        PortBe = Be16.FromHost(frontend.Port),
        Proto = (byte)frontend.Protocol,
        SourceBe = Be32Address.FromAddress(range.BaseAddress),
    };

    private static Frontend FrontendOf(Lb4SrcRangeKey k) => new(k.AddressBe.ToAddress(), k.PortBe.ToHost(), (L4Protocol)k.Proto);
}
