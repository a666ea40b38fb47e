using System.Net;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Planning;
using EbpfProxy.Datapath.Maps;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Datapath.Sync;

/// <summary>A backend that stopped being a backend of a service (by rev-NAT id).</summary>
public readonly record struct RemovedBackend(ushort RevNatId, uint BackendId, IPAddress Address, ushort Port);

/// <summary>
/// What a full conntrack validation keeps: (rev-NAT id, backend id) pairs of published slots and
/// (rev-NAT id, address, port) of their replies; and, for TCP and SCTP flows, every backend the
/// maps hold (by id, and by address and port for replies), draining ones included.
/// </summary>
public sealed record ValidFlows(
    HashSet<(ushort RevNatId, uint BackendId)> Valid,
    HashSet<(ushort RevNatId, IPAddress Address, ushort Port)> Replies,
    HashSet<uint> Backends,
    HashSet<(IPAddress Address, ushort Port)> BackendAddresses);

/// <summary>
/// Deletes the conntrack entries of UDP (and other connectionless) flows to backends removed from
/// their service, so those flows, which never close, move to a remaining backend at once instead
/// of after their timeout, and the session-affinity pins of every removed backend, so new
/// connections choose again. TCP and SCTP flows keep their entries: their backend stays in the
/// maps, draining, until they end (kube-proxy clears conntrack for UDP only; issue 9 item 2;
/// see <see cref="LbPlanner"/>). The syncer
/// records what each pass removed; the scan of the conntrack map (its cost grows with the map's
/// size, not with the change) runs off the sync path, coalescing the removals of many passes.
/// </summary>
public sealed partial class ConntrackPurger
{
    private readonly IDatapathMaps _maps;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private List<RemovedBackend> _pending = [];

    public ConntrackPurger(IDatapathMaps maps, ILogger logger)
    {
        _maps = maps;
        _logger = logger;
    }

    public bool HasPending
    {
        get
        {
            lock (_gate)
                return _pending.Count > 0;
        }
    }

    public void Enqueue(IEnumerable<RemovedBackend> removed)
    {
        lock (_gate)
            _pending.AddRange(removed);
    }

    /// <summary>Scans conntrack once for every removal recorded so far. Returns the number of entries deleted.</summary>
    public int PurgeNow()
    {
        List<RemovedBackend> batch;
        lock (_gate)
        {
            if (_pending.Count == 0)
                return 0;
            batch = _pending;
            _pending = [];
        }
        var services = new HashSet<(ushort, uint)>();
        var replies = new HashSet<(ushort, IPAddress, ushort)>();
        foreach (var r in batch)
        {
            services.Add((r.RevNatId, r.BackendId));
            replies.Add((r.RevNatId, r.Address, r.Port));
        }
        return Purge(
            e => !Drains(e.Key) && e.Key.Dir switch
            {
                CtDirection.Service => services.Contains((e.Value.RevNatId, e.Value.BackendId)),
                CtDirection.Reply => replies.Contains((e.Value.RevNatId, e.Key.SaddrBe.ToAddress(), e.Key.SportBe.ToHost())),
                _ => false,
            },
            pin => services.Contains((pin.Key.RevNatId, pin.Value.BackendId)));
    }

    /// <summary>
    /// Deletes every entry whose (rev-NAT id, backend) is not among the valid pairs
    /// (after a full sync: catches removals that happened while the daemon was not running);
    /// a TCP or SCTP flow stays valid while its backend is in the maps at all (draining).
    /// <paramref name="valid"/> is called only when there is an entry to check: building the
    /// sets costs as much as the maps hold, and a node that just booted has no flow yet.
    /// </summary>
    public int PurgeAllExcept(Func<ValidFlows> valid)
    {
        ValidFlows? sets = null;
        return Purge(
            e =>
            {
                sets ??= valid();
                bool drains = Drains(e.Key);
                return e.Key.Dir switch
                {
                    CtDirection.Service => drains
                        ? !sets.Backends.Contains(e.Value.BackendId)
                        : !sets.Valid.Contains((e.Value.RevNatId, e.Value.BackendId)),
                    CtDirection.Reply => drains
                        ? !sets.BackendAddresses.Contains((e.Key.SaddrBe.ToAddress(), e.Key.SportBe.ToHost()))
                        : !sets.Replies.Contains((e.Value.RevNatId, e.Key.SaddrBe.ToAddress(), e.Key.SportBe.ToHost())),
                    _ => false,
                };
            },
            pin =>
            {
                sets ??= valid();
                return !sets.Valid.Contains((pin.Key.RevNatId, pin.Value.BackendId));
            });
    }

    /// <summary>A flow whose translation outlives its backend's removal (TCP, SCTP).</summary>
    private static bool Drains(in Ct4Key key) => LbPlanner.Drains((L4Protocol)key.Proto);

    /// <summary>Deletes the stale conntrack entries and session-affinity pins; returns how many went.</summary>
    private int Purge(Func<KeyValuePair<Ct4Key, CtEntry>, bool> staleFlow, Func<KeyValuePair<Lb4AffinityKey, LbAffinityValue>, bool> stalePin)
    {
        int purged = _maps.DeleteConntrack((k, v) => staleFlow(new(k, v)), (k, v) => stalePin(new(k, v)));
        if (purged > 0)
            LogPurged(_logger, purged);
        return purged;
    }

    [LoggerMessage(EventId = 201, Level = LogLevel.Information, Message = "Removed {Count} conntrack entries and affinity pins of removed backends")]
    private static partial void LogPurged(ILogger logger, int count);
}
