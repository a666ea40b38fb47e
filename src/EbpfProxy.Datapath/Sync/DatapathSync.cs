using System.Diagnostics;
using System.Net;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Health;
using EbpfProxy.Core.Metrics;
using EbpfProxy.Core.Planning;
using EbpfProxy.Core.Policy;
using EbpfProxy.Core.Sync;
using EbpfProxy.Core.Translation;
using LibBpf.Net;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Datapath.Sync;

/// <summary>What <see cref="DatapathSync"/> needs to know besides the cluster.</summary>
public sealed record DatapathSyncOptions
{
    /// <summary>This node's name (endpoints with this nodeName are local).</summary>
    public string NodeName { get; init; } = "";

    /// <summary>At most one sync per interval (kube-proxy's --min-sync-period).</summary>
    public TimeSpan MinSyncInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A full pass runs when the last one is older than this, and at least this often (kube-proxy's --sync-period).</summary>
    public TimeSpan SyncPeriod { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>--nodeport-addresses: CIDRs of the local addresses NodePorts are served on; empty = the node's primary addresses.</summary>
    public IReadOnlyList<IPNetwork> NodePortCidrs { get; init; } = [];

    public IPNetwork? ServiceCidr { get; init; }
    public IPNetwork? ClusterCidr { get; init; }
    public bool MasqueradeAll { get; init; }

    /// <summary>--masquerade-address; null: the node's primary address.</summary>
    public IPAddress? MasqueradeAddress { get; init; }

    /// <summary>The network namespace the socket hooks translate for (lb_host_config); null when host services are off.</summary>
    public ulong? NetnsCookie { get; init; }

    /// <summary>Capacities of the service maps.</summary>
    public LbLimits Limits { get; init; } = LbLimits.Default;

    /// <summary>The datapath's part: CIDRs, masquerade settings, map capacities (node name, periods and cookie left to the caller).</summary>
    public static DatapathSyncOptions From(DatapathOptions datapath) => new()
    {
        ServiceCidr = datapath.ServiceCidr,
        ClusterCidr = datapath.ClusterCidr,
        MasqueradeAll = datapath.MasqueradeAll,
        MasqueradeAddress = datapath.MasqueradeAddress,
        Limits = new LbLimits(datapath.BackendsMax, (ushort)Math.Min(datapath.RevNatMax - 1, ushort.MaxValue)),
    };
}

/// <summary>
/// The daemon's one datapath sync and the only writer of every map it programs. Once every
/// source has listed, a <see cref="BoundedFrequencyRunner"/> runs passes of three stages:
/// <list type="number">
/// <item>config (<see cref="ConfigStage"/>): lb_config, lb_nat_config (masquerade address),
/// lb_host_config;</item>
/// <item>services (<see cref="ServiceStage"/>): Core's service translation, planned by
/// <see cref="LbPlanner"/> against the model of the service maps, source ranges, conntrack
/// purges;</item>
/// <item>policy (<see cref="PolicyStage"/>): Core's policy computation, planned by
/// <see cref="PolicyPlanner"/> against the model of the policy maps, then the CLI's names.</item>
/// </list>
/// Until its first pass a starting daemon writes nothing that changes a packet's fate (no config
/// map, no service or policy entry): it keeps what is pinned (issue 9 item 1). A pass is full —
/// re-read every map and heal drift, validate all of conntrack, recompute policy — when the last
/// full pass is older than the sync period or the previous pass failed, whatever triggered it
/// (kube-proxy's rule: a cluster with a change every few seconds still gets its full passes).
/// The maps are an <see cref="IDatapathMaps"/>: pinned in the daemon, in memory in unit tests,
/// which drive the whole cycle with a fake clock.
/// </summary>
public sealed partial class DatapathSync
{
    /// <summary>Set by the EndpointSlice controller to the time of the change that caused the slice update.</summary>
    public const string TriggerTimeAnnotation = "endpoints.kubernetes.io/last-change-trigger-time";

    private readonly IDatapathMaps _maps;
    private readonly ClusterStore _store;
    private readonly DatapathSyncOptions _options;
    private readonly ILocalAddresses _addresses;
    private readonly ProxyMetrics _metrics;
    private readonly ProxyStatus _status;
    private readonly ProxyHealth _health;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConfigStage _config;
    private readonly ServiceStage _services;
    private readonly PolicyStage _policy;
    private readonly BoundedFrequencyRunner _runner;
    private readonly TaskCompletionSource _firstSync = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ServiceTranslator _translator;
    private PolicyTranslator? _policyTranslator;
    private ClusterSnapshot? _policyInputs;
    private IReadOnlyList<IPAddress>? _localAddresses;
    private IReadOnlyList<IPAddress>? _policyAddresses;
    private volatile bool _addressesChanged = true;
    private DateTimeOffset? _lastFull;
    private bool _lastFailed;
    private long _syncCount;
    private HashSet<string> _reportedErrors = new(StringComparer.Ordinal);
    private HashSet<string> _reportedPolicyErrors = new(StringComparer.Ordinal);
    private string? _namesError;
    private IPAddress? _loggedMasquerade;
    private bool _masqueradeLogged;

    public DatapathSync(IDatapathMaps maps, ClusterStore store, DatapathSyncOptions options, ILocalAddresses addresses,
        ProxyMetrics metrics, ProxyStatus status, ProxyHealth health, TimeProvider time, ILoggerFactory loggers)
    {
        _maps = maps;
        _store = store;
        _options = options;
        _addresses = addresses;
        _metrics = metrics;
        _status = status;
        _health = health;
        _time = time;
        _logger = loggers.CreateLogger<DatapathSync>();
        _config = new ConfigStage(maps, options);
        _services = new ServiceStage(maps, options.Limits, loggers.CreateLogger<ServiceStage>());
        _policy = new PolicyStage(maps);
        _translator = new ServiceTranslator(new NodeContext(options.NodeName));
        _runner = new BoundedFrequencyRunner(
            (trigger, _) =>
            {
                Sync(trigger);
                return Task.CompletedTask;
            },
            new BoundedFrequencyRunnerOptions { MinInterval = options.MinSyncInterval, MaxInterval = options.SyncPeriod },
            time,
            loggers.CreateLogger<BoundedFrequencyRunner>());
        // An address event marks the addresses for a re-read by the next pass and asks for one
        // (the runner starts only once every source has listed: nothing is written before).
        addresses.Changed += () =>
        {
            _addressesChanged = true;
            _runner.Request();
        };
    }

    /// <summary>Completes after the first successful pass (programs are attached only then).</summary>
    public Task FirstSync => _firstSync.Task;

    /// <summary>Called after each pass with the NodePorts that need a health check server (eTP Local).</summary>
    public Action<IReadOnlyCollection<HealthCheckTarget>>? HealthChecksChanged { get; init; }

    /// <summary>Passes so far, full ones among them, and the triggers and fullness of each (for tests and logs).</summary>
    public long Passes => Interlocked.Read(ref _syncCount);
    public long FullPasses { get; private set; }

    /// <summary>The masquerade address the last pass wrote (null: masquerade off).</summary>
    public IPAddress? MasqueradeAddress => _config.MasqueradeAddress;

    /// <summary>The service stage's conntrack purger (tests run it directly).</summary>
    public ConntrackPurger Purger => _services.Purger;

    /// <summary>
    /// Waits until every source has listed, then runs passes until <paramref name="cancellationToken"/>
    /// fires: on cluster changes (coalesced, at most one per minimum interval), on node address
    /// changes, periodically, and after failures with backoff. Nothing is written before.
    /// </summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        void OnStoreChanged()
        {
            _metrics.ChangeRecorded();
            _health.Queued();
            _runner.Request();
        }

        var purgeLoop = PurgeLoopAsync(cancellationToken);
        try
        {
            LogWaitingForSources(_logger);
            await _store.WaitForSyncedAsync(cancellationToken).ConfigureAwait(false);
            _store.Changed += OnStoreChanged;
            await _runner.RunAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            _store.Changed -= OnStoreChanged;
        }
        try
        {
            await purgeLoop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>One pass of the three stages. Throws when a write failed (the runner retries with backoff; the next pass is full).</summary>
    public void Sync(SyncTrigger trigger)
    {
        var now = _time.GetUtcNow();
        bool full = _lastFull is null || _lastFailed || now - _lastFull.Value >= _options.SyncPeriod;
        try
        {
            SyncStages(trigger, full);
            // Healthy only when every stage of the pass succeeded (a failure marks it unhealthy at once).
            _health.Synced(now);
            _lastFailed = false;
            if (full)
            {
                _lastFull = now;
                FullPasses++;
            }
            // Programs attach once config, services and policies are all in the maps.
            _firstSync.TrySetResult();
        }
        catch (Exception ex)
        {
            _lastFailed = true;
            _metrics.SyncErrors.Add(1);
            _health.Failed(ex.Message);
            if (ex is BpfException { ObjectKind: "map", ObjectName: { } map })
                _metrics.MapUpdateFailed(map);
            throw;
        }
    }

    private void SyncStages(SyncTrigger trigger, bool full)
    {
        // Node addresses: re-read when the monitor says they changed, and on every full pass.
        bool addressesChanged = false;
        if (_localAddresses is null || _addressesChanged || full)
        {
            _addressesChanged = false;
            var read = _addresses.Read();
            addressesChanged = _localAddresses is null || !read.SequenceEqual(_localAddresses);
            _localAddresses = read;
        }
        var localAddresses = _localAddresses;

        // A change of this node's Node object (zone, addresses) or of its NodePort addresses invalidates every cached result.
        var node = NodeContext.From(_options.NodeName, _store.Snapshot().Nodes.GetValueOrDefault(_options.NodeName),
            _options.NodePortCidrs, _options.NodePortCidrs.Count > 0 ? localAddresses : null);
        if (!node.Equals(_translator.Node))
        {
            _translator = new ServiceTranslator(node);
            _store.MarkAllServicesDirty();
        }

        // 1. Config.
        int configWrites = _config.Sync(node, localAddresses, full);
        _metrics.MapWrites.Add(configWrites);
        if (!_masqueradeLogged || !Equals(_config.MasqueradeAddress, _loggedMasquerade))
        {
            _masqueradeLogged = true;
            _loggedMasquerade = _config.MasqueradeAddress;
            LogMasqueradeAddress(_logger, _loggedMasquerade?.ToString() ?? "none (masquerade off)");
        }

        // 2. Services.
        var snapshot = SyncServices(trigger, full);

        // 3. Policy.
        SyncPolicy(snapshot, full, addressesChanged);
    }

    private ClusterSnapshot SyncServices(SyncTrigger trigger, bool full)
    {
        using var activity = SyncTracing.Start("sync", trigger.ToString());
        var sw = Stopwatch.StartNew();
        var pending = _metrics.PendingChanges;
        var changes = _store.TakeServiceChanges();
        var snapshot = changes.Snapshot;
        var translation = _translator.Translate(changes);
        var translateTime = sw.Elapsed;
        // Report each skipped object once, not on every sync.
        var errors = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in translation.Errors)
        {
            errors.Add(e.ToString());
            if (!_reportedErrors.Contains(e.ToString()))
                LogTranslationError(_logger, e.Kind, e.Object, e.Message);
        }
        _reportedErrors = errors;
        var result = _services.Sync(translation.State, translation.ChangedFrontends, reread: full);
        var n = Interlocked.Increment(ref _syncCount);
        var now = _time.GetUtcNow();
        _metrics.SyncDuration.Record(sw.Elapsed.TotalSeconds);
        SyncTracing.Counts(activity, ("writes", result.Writes), ("deletes", result.Deletes), ("conntrack_purged", result.ConntrackPurged),
            ("frontends", translation.State.Frontends.Count), ("errors", errors.Count));
        _metrics.MapWrites.Add(result.Writes + result.Deletes);
        _metrics.SyncSucceeded(now, pending);
        HealthChecksChanged?.Invoke(translation.HealthChecks);
        _status.Update(r => r with
        {
            LastSync = now,
            Frontends = translation.State.Frontends.Count,
            ServiceErrors = [.. errors.Order(StringComparer.Ordinal)],
            ProgramErrors = [.. result.Errors.Select(e => e.ToString()).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)],
        });
        // Network programming latency: from the EndpointSlice controller's trigger time to now,
        // for slices that changed after start-up (the first sync programs history, not changes).
        if (n > 1)
        {
            foreach (var slice in translation.NewSlices)
            {
                if (slice.Metadata?.Annotations?.TryGetValue(TriggerTimeAnnotation, out var raw) == true
                    && DateTimeOffset.TryParse(raw, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var triggeredAt)
                    && now >= triggeredAt)
                {
                    _metrics.NetworkProgrammingDuration.Record((now - triggeredAt).TotalSeconds);
                }
            }
        }
        LogSynced(_logger, n, trigger, full ? "full" : "incremental", snapshot.Version, result.Writes, result.Deletes, result.ConntrackPurged, translation.State.Frontends.Count,
            translateTime.TotalMilliseconds, result.PlanTime.TotalMilliseconds, result.WriteTime.TotalMilliseconds, GC.GetTotalMemory(false) / 1048576, sw.Elapsed.TotalMilliseconds);
        if (n == 1)
        {
            // The initial list and the first full pass leave a large heap of garbage behind
            // (deserialized lists, first-time plans); compact once and return it to the OS, so the
            // steady-state footprint reflects what the daemon actually holds. After the maps are
            // programmed and reported healthy, not before: the pause delays nothing that waits.
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        }
        return snapshot;
    }

    /// <summary>
    /// Recomputes and writes the policy maps when pods, namespaces, policies, the node or the
    /// node's addresses changed (and on every full pass, which re-reads the maps). An error in one
    /// policy or pod fails closed for what it selects and is logged and counted; it never stops the others.
    /// </summary>
    private void SyncPolicy(ClusterSnapshot snapshot, bool full, bool addressesChanged)
    {
        full |= _policyTranslator is null;
        if (!full && !addressesChanged && _policyInputs is { } last
            && ReferenceEquals(last.Pods, snapshot.Pods) && ReferenceEquals(last.Namespaces, snapshot.Namespaces)
            && ReferenceEquals(last.NetworkPolicies, snapshot.NetworkPolicies) && ReferenceEquals(last.Nodes, snapshot.Nodes))
            return;
        using var activity = SyncTracing.Start("policy-sync", full ? "full" : "incremental");
        var sw = Stopwatch.StartNew();
        var addresses = _localAddresses ?? [];
        if (_policyTranslator is null || !ReferenceEquals(_policyAddresses, addresses) && !addresses.SequenceEqual(_policyAddresses ?? []))
            _policyTranslator = new PolicyTranslator(_options.NodeName, addresses, _policy.ReadHints());
        _policyAddresses = addresses;
        var desired = _policyTranslator.Compute(snapshot);
        var computeTime = sw.Elapsed;
        PolicyApplyResult result;
        try
        {
            result = _policy.Sync(desired, reread: full);
        }
        catch (BpfException ex)
        {
            // The runner retries the whole pass with backoff; until one succeeds, isolated pods deny.
            _metrics.PolicyErrors = desired.Errors.Length + 1;
            _status.Update(r => r with
            {
                PolicyErrors = [.. desired.Errors.Select(e => e.ToString())],
                PolicyWriteError = ex.Message,
                PolicyFailedClosed = _policy.FailedClosed,
            });
            LogPolicyWriteFailed(_logger, ex, _policy.FailedClosed);
            throw;
        }
        _policyInputs = snapshot;
        var reported = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in desired.Errors)
        {
            reported.Add(e.ToString());
            if (!_reportedPolicyErrors.Contains(e.ToString()))
                LogPolicyError(_logger, e.Kind, e.Object, e.Message);
        }
        _reportedPolicyErrors = reported;
        _metrics.PolicyErrors = desired.Errors.Length;
        _status.Update(r => r with
        {
            IsolatedPods = desired.Endpoints.Count(e => e.Value.Flags != EndpointFlags.None),
            PolicyRules = desired.RuleCount,
            PolicyErrors = [.. desired.Errors.Select(e => e.ToString())],
            PolicyWriteError = null,
            PolicyFailedClosed = 0,
        });
        _metrics.PolicySyncDuration.Record(sw.Elapsed.TotalSeconds);
        SyncTracing.Counts(activity, ("writes", result.Writes), ("deletes", result.Deletes), ("errors", desired.Errors.Length),
            ("isolated_pods", desired.Endpoints.Count(e => e.Value.Flags != EndpointFlags.None)), ("rules", desired.RuleCount), ("ipcache", desired.IpCache.Count));
        // The CLI's names (pol_ep_names, pol_id_names): a failure there leaves enforcement intact; said once.
        var names = _policy.Names;
        if (names.Error is { } namesError && namesError != _namesError)
            LogPolicyNamesFailed(_logger, namesError);
        _namesError = names.Error;
        _metrics.MapWrites.Add(result.Writes + result.Deletes + names.Writes + names.Deletes);
        if (result.Writes + result.Deletes > 0 || full)
            LogPolicySynced(_logger, result.Writes, result.Deletes, desired.Endpoints.Count(e => e.Value.Flags != EndpointFlags.None), desired.RuleCount,
                desired.IpCache.Count, desired.Errors.Length, computeTime.TotalMilliseconds, sw.Elapsed.TotalMilliseconds);
    }

    /// <summary>Removes conntrack entries of removed backends, coalescing the removals of many syncs (at most 4 scans a second).</summary>
    private async Task PurgeLoopAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(250), _time);
        while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
        {
            if (!_services.Purger.HasPending)
                continue;
            try
            {
                _services.Purger.PurgeNow();
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogPurgeFailed(_logger, ex);
            }
        }
    }

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Waiting for every source to finish its initial list before writing any map")]
    private static partial void LogWaitingForSources(ILogger logger);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "Sync #{Count} ({Trigger}, {Kind}, snapshot {Version}): {Writes} writes, {Deletes} deletes, {Purged} conntrack entries purged, {Frontends} frontends; translate {TranslateMs:F1} ms, plan {PlanMs:F1} ms, write {WriteMs:F1} ms, heap {HeapMiB} MiB, {ElapsedMs:F1} ms")]
    private static partial void LogSynced(ILogger logger, long count, SyncTrigger trigger, string kind, long version, int writes, int deletes, int purged, int frontends, double translateMs, double planMs, double writeMs, long heapMiB, double elapsedMs);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Skipped {Kind} {Object}: {Message}")]
    private static partial void LogTranslationError(ILogger logger, string kind, string @object, string message);

    [LoggerMessage(EventId = 7, Level = LogLevel.Error, Message = "Conntrack purge failed; it is retried with the next removal or full sync")]
    private static partial void LogPurgeFailed(ILogger logger, Exception ex);

    [LoggerMessage(EventId = 8, Level = LogLevel.Information, Message = "Masquerade address: {Address}")]
    private static partial void LogMasqueradeAddress(ILogger logger, string address);

    [LoggerMessage(EventId = 10, Level = LogLevel.Warning, Message = "NetworkPolicy: {Kind} {Object}: {Message}")]
    private static partial void LogPolicyError(ILogger logger, string kind, string @object, string message);

    [LoggerMessage(EventId = 11, Level = LogLevel.Information, Message = "Policy sync: {Writes} writes, {Deletes} deletes; {Isolated} isolated local pods, {Rules} rules, {Ipcache} ipcache entries, {Errors} errors; compute {ComputeMs:F1} ms, {ElapsedMs:F1} ms")]
    private static partial void LogPolicySynced(ILogger logger, int writes, int deletes, int isolated, int rules, int ipcache, int errors, double computeMs, double elapsedMs);

    [LoggerMessage(EventId = 12, Level = LogLevel.Error, Message = "NetworkPolicy maps could not be fully written; failing closed ({Forced} pods' isolation forced on until a pass succeeds)")]
    private static partial void LogPolicyWriteFailed(ILogger logger, Exception ex, int forced);

    [LoggerMessage(EventId = 13, Level = LogLevel.Warning, Message = "NetworkPolicy names for the CLI (pol_ep_names, pol_id_names) could not be written: {Error}; enforcement is not affected, `policy get` may show stale or missing names until a pass succeeds")]
    private static partial void LogPolicyNamesFailed(ILogger logger, string error);
}
