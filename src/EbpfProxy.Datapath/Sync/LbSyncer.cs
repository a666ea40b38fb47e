using System.Collections.Immutable;
using System.Diagnostics;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Planning;
using EbpfProxy.Datapath.Maps;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Datapath.Sync;

/// <summary>Outcome of one sync pass.</summary>
public sealed record LbSyncResult(int Writes, int Deletes, int ConntrackPurged, ImmutableArray<TranslationError> Errors, TimeSpan Duration);

/// <summary>
/// The only writer of the load-balancer maps. Keeps a model of what the maps hold (read back
/// from the pins at start, so ids and slots are re-adopted and conntrack stays valid), diffs the
/// desired state against it and performs the planner's writes in order. A failed pass re-reads
/// the maps and is retried whole by the runner: every write is idempotent.
/// </summary>
public sealed partial class LbSyncer
{
    private readonly LbMaps _maps;
    private readonly LbLimits _limits;
    private readonly ILogger _logger;
    private LbState? _state;
    private DesiredLbState? _previous;

    public LbSyncer(LbMaps maps, LbLimits limits, ILogger<LbSyncer> logger)
    {
        _maps = maps;
        _limits = limits;
        _logger = logger;
    }

    /// <summary>The model of the maps after the last pass (null before the first).</summary>
    public LbState? Current => _state;

    /// <summary>
    /// Brings the maps to <paramref name="desired"/>. Normally only the frontends that changed
    /// since the previous pass are planned; with <paramref name="full"/> (start, periodic resync,
    /// after a failure) the maps are re-read and everything is diffed, which heals drift.
    /// </summary>
    public LbSyncResult Sync(DesiredLbState desired, bool full = false)
    {
        var sw = Stopwatch.StartNew();
        IReadOnlyCollection<FrontendKey>? changed = null;
        if (_state is null || _previous is null || full)
        {
            var read = LbMapIo.Read(_maps);
            if (_state is not null)
            {
                read.BackendIdHighWater = Math.Max(read.BackendIdHighWater, _state.BackendIdHighWater);
                read.RevNatIdHighWater = Math.Max(read.RevNatIdHighWater, _state.RevNatIdHighWater);
            }
            _state = read;
        }
        else
        {
            changed = desired.ChangedSince(_previous);
        }

        var plan = LbPlanner.Plan(_state, desired, _limits, changed);
        int writes = 0, deletes = 0;
        bool slotsChanged = false;
        try
        {
            foreach (var op in plan.Ops)
            {
                LbMapIo.Apply(_maps, op);
                _state.Apply(op);
                if (op.IsDelete)
                    deletes++;
                else
                    writes++;
                slotsChanged |= op is LbOp.DeleteSlot or LbOp.DeleteService or LbOp.UpsertSlot;
            }
        }
        catch
        {
            // Unknown how far the kernel got: the next pass starts from what the maps really hold.
            _state = null;
            _previous = null;
            throw;
        }
        _previous = desired;

        int purged = slotsChanged ? PurgeStaleConntrack(_state) : 0;
        foreach (var e in plan.Errors)
            LogPlanError(_logger, e.ToString());
        return new LbSyncResult(writes, deletes, purged, plan.Errors, sw.Elapsed);
    }

    /// <summary>
    /// Removes conntrack entries whose backend is no longer a backend of their service, so a
    /// removed backend's flows (UDP ones especially, which never close) stop at once instead of
    /// after their timeout. Reply entries are matched by their backend address and rev-NAT id.
    /// </summary>
    private int PurgeStaleConntrack(LbState after)
    {
        // (rev-NAT id, backend id) pairs that remain valid.
        var valid = new HashSet<(ushort, uint)>();
        var validReply = new HashSet<(ushort, System.Net.IPAddress, ushort)>();
        foreach (var fe in after.Frontends.Values)
        {
            if (fe.Service is not { } svc)
                continue;
            foreach (var id in fe.Slots.Values)
            {
                valid.Add((svc.RevNatId, id));
                if (after.Backends.TryGetValue(id, out var be))
                    validReply.Add((svc.RevNatId, be.Address.Address, be.Address.Port));
            }
        }
        int purged = 0;
        var stale = new List<Ct4Key>();
        foreach (var (key, entry) in _maps.Ct4.Entries())
        {
            bool keep = key.Dir switch
            {
                CtDirection.Service => valid.Contains((entry.RevNatId, entry.BackendId)),
                CtDirection.Reply => validReply.Contains((entry.RevNatId, key.SaddrBe.ToAddress(), key.SportBe.ToHost())),
                _ => true,
            };
            if (!keep)
                stale.Add(key);
        }
        foreach (var key in stale)
        {
            if (_maps.Ct4.Delete(key))
                purged++;
        }
        if (purged > 0)
            LogPurged(_logger, purged);
        return purged;
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Warning, Message = "Not programmed: {Error}")]
    private static partial void LogPlanError(ILogger logger, string error);

    [LoggerMessage(EventId = 201, Level = LogLevel.Information, Message = "Removed {Count} conntrack entries of removed backends")]
    private static partial void LogPurged(ILogger logger, int count);
}
