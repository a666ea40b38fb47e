using System.Collections.Immutable;
using System.Diagnostics;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Planning;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Datapath.Sync;

/// <summary>Outcome of one service stage.</summary>
public sealed record LbSyncResult(int Writes, int Deletes, int ConntrackPurged, ImmutableArray<TranslationError> Errors, TimeSpan Duration)
{
    public TimeSpan PlanTime { get; init; }
    public TimeSpan WriteTime { get; init; }
}

/// <summary>
/// The service stage of <see cref="DatapathSync"/>: the load-balancer maps' writer. Keeps a
/// model of what the maps hold (read back from the pins on the first pass, so ids and slots are
/// re-adopted and conntrack stays valid), diffs the desired state against it with Core's
/// <see cref="LbPlanner"/> and performs its writes in order, with lb4_src_range around them
/// (<see cref="SourceRangeStage"/>). A failed pass forgets the model: the next one re-reads the
/// maps and is retried whole by the runner; every write is idempotent.
/// </summary>
public sealed partial class ServiceStage
{
    private readonly IDatapathMaps _maps;
    private readonly LbLimits _limits;
    private readonly ILogger _logger;
    private HashSet<string> _loggedPlanErrors = new(StringComparer.Ordinal);
    private HashSet<FrontendKey> _leftOut = [];
    private LbState? _state;
    private readonly SourceRangeStage _sourceRanges;

    /// <param name="limits">What the maps have room for when <paramref name="maps"/> does not say (<see cref="IDatapathMaps.ServiceLimits"/>).</param>
    public ServiceStage(IDatapathMaps maps, LbLimits limits, ILogger logger)
    {
        Purger = new ConntrackPurger(maps, logger);
        _sourceRanges = new SourceRangeStage(maps);
        _maps = maps;
        _limits = maps.ServiceLimits ?? limits;
        _logger = logger;
    }

    /// <summary>Removes conntrack entries of removed backends; the owner runs <see cref="ConntrackPurger.PurgeNow"/> off the sync path.</summary>
    public ConntrackPurger Purger { get; }

    /// <summary>Runs of at least this many consecutive upserts into one map go through bpf_map_update_batch.</summary>
    private const int MinBatch = 64;

    /// <summary>The model of the maps after the last pass (null before the first).</summary>
    public LbState? Current => _state;

    /// <summary>
    /// Brings the maps to <paramref name="desired"/>. With <paramref name="changed"/> (the
    /// translator's changed frontends) only those are planned; without it everything is diffed
    /// against the in-memory model. With <paramref name="reread"/> (start, periodic resync, after a
    /// failure) the maps are read back first, which heals drift, and all of conntrack is validated.
    /// </summary>
    public LbSyncResult Sync(DesiredLbState desired, IReadOnlyCollection<FrontendKey>? changed = null, bool reread = false)
    {
        var sw = Stopwatch.StartNew();
        if (_state is null || reread)
        {
            var read = _maps.ReadServices();
            if (_state is not null)
            {
                read.BackendIdHighWater = Math.Max(read.BackendIdHighWater, _state.BackendIdHighWater);
                read.RevNatIdHighWater = Math.Max(read.RevNatIdHighWater, _state.RevNatIdHighWater);
            }
            _state = read;
            reread = true;
            changed = null;
        }

        // Services left out for lack of room are planned again on every pass: a deletion may have made room.
        if (changed is not null && _leftOut.Count > 0)
            changed = [.. changed.Union(_leftOut)];
        var planStart = sw.Elapsed;
        var plan = LbPlanner.Plan(_state, desired, _limits, changed);
        _leftOut = [.. plan.LeftOut];
        var planTime = sw.Elapsed - planStart;
        var removals = SlotRemovals(_state, plan.Ops);
        if (plan.Ops.Count >= MinBatch)
            _state.Reserve(plan.Ops);
        int writes = 0, deletes = 0;
        var ops = plan.Ops;
        // A bulk load (start-up, re-list) writes the maps on another thread, in plan order, while
        // this one updates the model: the two take about as long. Small plans stay on this thread.
        Task? kernel = null;
        try
        {
            // Source ranges a frontend needs exist before its flag is published, and go after.
            writes += _sourceRanges.AddMissing(desired, changed);
            kernel = ops.Count >= MinOverlapped ? Task.Run(() => Write(_maps, ops)) : null;
            if (kernel is null)
                Write(_maps, ops);
            foreach (var op in ops)
            {
                _state.Apply(op);
                if (op.IsDelete)
                    deletes++;
                else
                    writes++;
            }
            kernel?.GetAwaiter().GetResult();
            deletes += _sourceRanges.RemoveStale();
        }
        catch
        {
            // Unknown how far the kernel got: the next pass starts from what the maps really hold
            // (once the writer has stopped).
            _state = null;
            _sourceRanges.Invalidate();
            try
            {
                kernel?.Wait();
            }
            catch (AggregateException)
            {
            }
            throw;
        }
        var writeTime = sw.Elapsed - planStart - planTime;

        int purged = 0;
        if (reread)
        {
            // Full pass: validate all of conntrack (removals may have happened while no daemon ran).
            var state = _state;
            purged = Purger.PurgeAllExcept(() => ValidPairs(state));
        }
        else
        {
            // Still named by the frontend after the plan (moved to another slot): not removed.
            Purger.Enqueue(removals
                .Where(r => !(_state.Frontends.TryGetValue(r.Key, out var fe) && fe.Service?.RevNatId == r.Removed.RevNatId && fe.Slots.ContainsValue(r.Removed.BackendId)))
                .Select(r => r.Removed));
        }
        // A left-out object stays left out pass after pass: one line when the set gains members,
        // naming the new ones (at most a few), never one line per object (issue 14 items 1 and 7;
        // `status` lists every one while it lasts).
        var current = plan.Errors.Select(e => e.ToString()).ToHashSet(StringComparer.Ordinal);
        var fresh = current.Where(e => !_loggedPlanErrors.Contains(e)).Order(StringComparer.Ordinal).ToList();
        if (fresh.Count > 0)
            LogPlanErrors(_logger, current.Count, fresh.Count, string.Join("; ", fresh.Take(MaxNamed)) + (fresh.Count > MaxNamed ? $"; and {fresh.Count - MaxNamed} more" : ""));
        _loggedPlanErrors = current;
        return new LbSyncResult(writes, deletes, purged, plan.Errors, sw.Elapsed) { PlanTime = planTime, WriteTime = writeTime };
    }

    /// <summary>Plans with at least this many ops write the maps while the model is updated.</summary>
    private const int MinOverlapped = 4096;

    /// <summary>Performs the ops in order: runs of upserts into one map as batches, the rest one by one.</summary>
    private static void Write(IDatapathMaps maps, IReadOnlyList<LbOp> ops)
    {
        for (int i = 0; i < ops.Count;)
        {
            int end = i + 1;
            while (end < ops.Count && LbMapIo.Batchable(ops[end], ops[i]))
                end++;
            if (end - i >= MinBatch)
                maps.ApplyBatch(ops, i, end);
            else
                for (int k = i; k < end; k++)
                    maps.Apply(ops[k]);
            i = end;
        }
    }

    /// <summary>The (rev-NAT id, backend) pairs the maps hold after a pass, for a full conntrack validation.</summary>
    private static (HashSet<(ushort, uint)> Valid, HashSet<(ushort, System.Net.IPAddress, ushort)> Replies) ValidPairs(LbState state)
    {
        var valid = new HashSet<(ushort, uint)>();
        var replies = new HashSet<(ushort, System.Net.IPAddress, ushort)>();
        foreach (var fe in state.Frontends.Values)
        {
            if (fe.Service is not { } svc)
                continue;
            foreach (var id in fe.Slots.Values)
            {
                valid.Add((svc.RevNatId, id));
                if (state.Backends.TryGetValue(id, out var be))
                    replies.Add((svc.RevNatId, be.Address.Address, be.Address.Port));
            }
        }
        return (valid, replies);
    }

    /// <summary>Backends that a plan's slot removals take away from their frontend (checked against the state after the plan).</summary>
    private static List<(FrontendKey Key, RemovedBackend Removed)> SlotRemovals(LbState before, IReadOnlyList<LbOp> ops)
    {
        var list = new List<(FrontendKey, RemovedBackend)>();
        foreach (var op in ops)
        {
            (FrontendKey key, ushort slot) = op switch
            {
                LbOp.DeleteSlot d => (d.Key, d.Slot),
                LbOp.UpsertSlot u => (u.Key, u.Slot),
                _ => (default, (ushort)0),
            };
            if (slot == 0 || !before.Frontends.TryGetValue(key, out var fe) || fe.Service is not { } svc || !fe.Slots.TryGetValue(slot, out var id))
                continue;
            if (op is LbOp.UpsertSlot { BackendId: var to } && to == id)
                continue;
            if (before.Backends.TryGetValue(id, out var be))
                list.Add((key, new RemovedBackend(svc.RevNatId, id, be.Address.Address, be.Address.Port)));
        }
        return list;
    }

    /// <summary>Left-out objects named by the log line that reports them (all of them are in `status`).</summary>
    private const int MaxNamed = 10;

    [LoggerMessage(EventId = 200, Level = LogLevel.Warning, Message = "Not programmed: {Count} objects ({New} new; `ebpf-proxy status` lists all): {Errors}")]
    private static partial void LogPlanErrors(ILogger logger, int count, int @new, string errors);

}
