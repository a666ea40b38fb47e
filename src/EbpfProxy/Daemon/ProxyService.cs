using EbpfProxy.Datapath.Policy;
using EbpfProxy.Core.Policy;
using LibBpf.Net;
using System.Diagnostics;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Health;
using EbpfProxy.Core.Metrics;
using EbpfProxy.Core.Planning;
using EbpfProxy.Core.Sync;
using EbpfProxy.Core.Translation;
using EbpfProxy.Datapath;
using EbpfProxy.Datapath.Attach;
using EbpfProxy.Datapath.Loading;
using EbpfProxy.Datapath.Sync;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Daemon;

/// <summary>
/// The daemon's core loop: load the datapath (re-adopting pinned maps), keep programs attached to
/// pod interfaces, and — once every source has listed — run the sync runner that translates the
/// cluster snapshot and lets the syncer write the maps. Watch callbacks only poke the runner.
/// </summary>
public sealed partial class ProxyService : BackgroundService
{
    private readonly ClusterStore _store;
    private readonly ProxyOptions _options;
    private readonly DatapathOptions _datapathOptions;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _logger;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly TimeProvider _time;
    private readonly ProxyMetrics _metrics;
    private readonly ProxyStatus _status;
    private readonly ProxyHealth _health;
    private readonly TaskCompletionSource _firstSync = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _syncCount;
    private HashSet<string> _reportedErrors = new(StringComparer.Ordinal);

    public ProxyService(ClusterStore store, ProxyOptions options, DatapathOptions datapathOptions, ILoggerFactory loggers, IHostApplicationLifetime lifetime, TimeProvider time, ProxyMetrics metrics, ProxyHealth health, ProxyStatus status)
    {
        _status = status;
        _health = health;
        _metrics = metrics;
        _store = store;
        _options = options;
        _datapathOptions = datapathOptions;
        _loggers = loggers;
        _logger = loggers.CreateLogger<ProxyService>();
        _lifetime = lifetime;
        _time = time;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        LoadedDatapath datapath;
        try
        {
            datapath = DatapathLoader.Load(_datapathOptions, _loggers.CreateLogger("EbpfProxy.Datapath.Loader"));
        }
        catch (Exception ex)
        {
            LogLoadFailed(_logger, ex);
            Environment.ExitCode = 1;
            _lifetime.StopApplication();
            return;
        }

        using (datapath)
        {
            var attacher = new InterfaceAttacher(InterfaceAttacher.DefaultRoles(datapath, _datapathOptions), _loggers.CreateLogger<InterfaceAttacher>());
            var attachLoop = AttachLoopAsync(attacher, datapath, stoppingToken);

            var syncer = new LbSyncer(datapath.Maps, new LbLimits(_datapathOptions.BackendsMax, (ushort)Math.Min(_datapathOptions.RevNatMax - 1, ushort.MaxValue)), _loggers.CreateLogger<LbSyncer>());
            var translator = new ServiceTranslator(new NodeContext(_options.NodeName));
            var policy = new PolicySync(new PolicySyncer(datapath.Policy), _options.NodeName);
            System.Net.IPAddress? masqueradeAddress = null;
            using var healthChecks = new ServiceHealthServers(_health, _loggers.CreateLogger<ServiceHealthServers>());
            var runner = new BoundedFrequencyRunner(
                (trigger, ct) =>
                {
                    // A change of this node's Node object (zone, addresses) invalidates every cached result.
                    var node = NodeContext.From(_options.NodeName, _store.Snapshot().Nodes.GetValueOrDefault(_options.NodeName),
                        _options.NodePortCidrs, _options.NodePortCidrs.Count > 0 ? LocalAddresses() : null);
                    if (!node.Equals(translator.Node))
                    {
                        translator = new ServiceTranslator(node);
                        _store.MarkAllServicesDirty();
                    }
                    var snat = MasqueradeAddress(node, masqueradeAddress);
                    if (!Equals(snat, masqueradeAddress))
                    {
                        DatapathLoader.WriteNatConfig(datapath.Maps, _datapathOptions, snat);
                        masqueradeAddress = snat;
                        LogMasqueradeAddress(_logger, snat?.ToString() ?? "none (masquerade off)");
                    }
                    try
                    {
                        var snapshot = SyncOnce(syncer, translator, trigger, healthChecks);
                        SyncPolicy(policy, snapshot, trigger);
                        // Programs attach once services and policies are both in the maps.
                        _firstSync.TrySetResult();
                    }
                    catch (Exception ex)
                    {
                        _metrics.SyncErrors.Add(1);
                        if (ex is BpfException { ObjectKind: "map", ObjectName: { } map })
                            _metrics.MapUpdateFailed(map);
                        throw;
                    }
                    return Task.CompletedTask;
                },
                new BoundedFrequencyRunnerOptions { MinInterval = _options.MinSyncInterval, MaxInterval = _options.SyncPeriod },
                _time,
                _loggers.CreateLogger<BoundedFrequencyRunner>());

            void OnStoreChanged()
            {
                _metrics.ChangeRecorded();
                _health.Queued();
                runner.Request();
            }

            var purgeLoop = PurgeLoopAsync(syncer.Purger, stoppingToken);
            try
            {
                LogWaitingForSources(_logger);
                await _store.WaitForSyncedAsync(stoppingToken).ConfigureAwait(false);
                _store.Changed += OnStoreChanged;
                await runner.RunAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
            }
            finally
            {
                _store.Changed -= OnStoreChanged;
            }
            try
            {
                await Task.WhenAll(attachLoop, purgeLoop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
            // Programs stay attached and maps stay pinned: the datapath outlives the daemon.
            LogStopped(_logger);
        }
    }

    private ClusterSnapshot SyncOnce(LbSyncer syncer, ServiceTranslator translator, SyncTrigger trigger, ServiceHealthServers healthChecks)
    {
        var sw = Stopwatch.StartNew();
        var startedAt = _time.GetUtcNow();
        var pending = _metrics.PendingChanges;
        var changes = _store.TakeServiceChanges();
        var snapshot = changes.Snapshot;
        var translation = translator.Translate(changes);
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
        var result = syncer.Sync(translation.State, translation.ChangedFrontends, reread: trigger != SyncTrigger.Requested);
        var n = Interlocked.Increment(ref _syncCount);
        var now = _time.GetUtcNow();
        _metrics.SyncDuration.Record(sw.Elapsed.TotalSeconds);
        _metrics.MapWrites.Add(result.Writes + result.Deletes);
        _metrics.SyncSucceeded(now, pending);
        _health.Synced(startedAt);
        healthChecks.Update(translation.HealthChecks);
        _status.Update(r => r with { LastSync = now, Frontends = translation.State.Frontends.Count, ServiceErrors = [.. errors.Order(StringComparer.Ordinal)] });
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
        LogSynced(_logger, n, trigger, snapshot.Version, result.Writes, result.Deletes, result.ConntrackPurged, translation.State.Frontends.Count,
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

    /// <summary>The NetworkPolicy side of a sync: its translator (created with the pinned maps' numbers) and the inputs it last saw.</summary>
    private sealed class PolicySync(PolicySyncer syncer, string nodeName)
    {
        public PolicySyncer Syncer { get; } = syncer;
        public string NodeName { get; } = nodeName;
        public PolicyTranslator? Translator { get; set; }
        public ClusterSnapshot? Inputs { get; set; }
        public HashSet<string> Reported { get; set; } = new(StringComparer.Ordinal);
        public string? NamesError { get; set; }
    }

    /// <summary>
    /// Recomputes and writes the policy maps when pods, namespaces, policies or the node changed
    /// (and on every full resync, which re-reads the maps). An error in one policy or pod fails
    /// closed for what it selects and is logged and counted; it never stops the others.
    /// </summary>
    private void SyncPolicy(PolicySync policy, ClusterSnapshot snapshot, SyncTrigger trigger)
    {
        bool full = trigger != SyncTrigger.Requested || policy.Translator is null;
        if (!full && policy.Inputs is { } last
            && ReferenceEquals(last.Pods, snapshot.Pods) && ReferenceEquals(last.Namespaces, snapshot.Namespaces)
            && ReferenceEquals(last.NetworkPolicies, snapshot.NetworkPolicies) && ReferenceEquals(last.Nodes, snapshot.Nodes))
            return;
        var sw = Stopwatch.StartNew();
        policy.Translator ??= new PolicyTranslator(policy.NodeName, LocalAddresses(), policy.Syncer.ReadHints());
        var desired = policy.Translator.Compute(snapshot);
        var computeTime = sw.Elapsed;
        PolicyApplyResult result;
        try
        {
            result = policy.Syncer.Sync(desired, reread: full);
        }
        catch (BpfException ex)
        {
            // The runner retries the whole pass with backoff; until one succeeds, isolated pods deny.
            _metrics.PolicyErrors = desired.Errors.Length + 1;
            _status.Update(r => r with
            {
                PolicyErrors = [.. desired.Errors.Select(e => e.ToString())],
                PolicyWriteError = ex.Message,
                PolicyFailedClosed = policy.Syncer.FailedClosed,
            });
            LogPolicyWriteFailed(_logger, ex, policy.Syncer.FailedClosed);
            throw;
        }
        policy.Inputs = snapshot;
        var reported = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in desired.Errors)
        {
            reported.Add(e.ToString());
            if (!policy.Reported.Contains(e.ToString()))
                LogPolicyError(_logger, e.Kind, e.Object, e.Message);
        }
        policy.Reported = reported;
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
        // The CLI's names (pol_ep_names, pol_id_names): a failure there leaves enforcement intact; said once.
        var names = policy.Syncer.Names;
        if (names.Error is { } namesError && namesError != policy.NamesError)
            LogPolicyNamesFailed(_logger, namesError);
        policy.NamesError = names.Error;
        _metrics.MapWrites.Add(result.Writes + result.Deletes + names.Writes + names.Deletes);
        if (result.Writes + result.Deletes > 0 || full)
            LogPolicySynced(_logger, result.Writes, result.Deletes, desired.Endpoints.Count(e => e.Value.Flags != EndpointFlags.None), desired.RuleCount,
                desired.IpCache.Count, desired.Errors.Length, computeTime.TotalMilliseconds, sw.Elapsed.TotalMilliseconds);
    }

    [LoggerMessage(EventId = 12, Level = LogLevel.Error, Message = "NetworkPolicy maps could not be fully written; failing closed ({Forced} pods' isolation forced on until a pass succeeds)")]
    private static partial void LogPolicyWriteFailed(ILogger logger, Exception ex, int forced);

    [LoggerMessage(EventId = 13, Level = LogLevel.Warning, Message = "NetworkPolicy names for the CLI (pol_ep_names, pol_id_names) could not be written: {Error}; enforcement is not affected, `policy get` may show stale or missing names until a pass succeeds")]
    private static partial void LogPolicyNamesFailed(ILogger logger, string error);

    [LoggerMessage(EventId = 10, Level = LogLevel.Warning, Message = "NetworkPolicy: {Kind} {Object}: {Message}")]
    private static partial void LogPolicyError(ILogger logger, string kind, string @object, string message);

    [LoggerMessage(EventId = 11, Level = LogLevel.Information, Message = "Policy sync: {Writes} writes, {Deletes} deletes; {Isolated} isolated local pods, {Rules} rules, {Ipcache} ipcache entries, {Errors} errors; compute {ComputeMs:F1} ms, {ElapsedMs:F1} ms")]
    private static partial void LogPolicySynced(ILogger logger, int writes, int deletes, int isolated, int rules, int ipcache, int errors, double computeMs, double elapsedMs);

    /// <summary>
    /// The address masqueraded traffic leaves with: --masquerade-address, else the node's primary
    /// address (its Node object's first InternalIP, or the first NodePort address), else the first
    /// global address of this namespace's interfaces. Null: masquerade stays off.
    /// </summary>
    private System.Net.IPAddress? MasqueradeAddress(NodeContext node, System.Net.IPAddress? current)
    {
        if (_datapathOptions.MasqueradeAddress is { } configured)
            return configured;
        if (!node.Addresses.IsDefaultOrEmpty && node.Addresses.FirstOrDefault(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork) is { } primary)
            return primary;
        // The interfaces are read only until an address is found, not on every sync.
        return current ?? LocalAddresses().FirstOrDefault(a => !(a.GetAddressBytes() is [169, 254, ..]));
    }

    [LoggerMessage(EventId = 8, Level = LogLevel.Information, Message = "Masquerade address: {Address}")]
    private static partial void LogMasqueradeAddress(ILogger logger, string address);

    /// <summary>The IPv4 addresses of this network namespace's interfaces (for --nodeport-addresses).</summary>
    private static IEnumerable<System.Net.IPAddress> LocalAddresses() =>
        System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
            .SelectMany(i => i.GetIPProperties().UnicastAddresses)
            .Select(u => u.Address)
            .Where(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && !System.Net.IPAddress.IsLoopback(a));

    /// <summary>Set by the EndpointSlice controller to the time of the change that caused the slice update.</summary>
    public const string TriggerTimeAnnotation = "endpoints.kubernetes.io/last-change-trigger-time";

    /// <summary>Removes conntrack entries of removed backends, coalescing the removals of many syncs (at most 4 scans a second).</summary>
    private async Task PurgeLoopAsync(ConntrackPurger purger, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(250), _time);
        while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
        {
            if (!purger.HasPending)
                continue;
            try
            {
                purger.PurgeNow();
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogPurgeFailed(_logger, ex);
            }
        }
    }

    [LoggerMessage(EventId = 7, Level = LogLevel.Error, Message = "Conntrack purge failed; it is retried with the next removal or full sync")]
    private static partial void LogPurgeFailed(ILogger logger, Exception ex);

    private async Task AttachLoopAsync(InterfaceAttacher attacher, LoadedDatapath datapath, CancellationToken ct)
    {
        // Programs are attached (or replace a predecessor's) only once the maps hold the cluster's
        // state: a program that saw maps still empty would pass service traffic untranslated.
        await _firstSync.Task.WaitAsync(ct).ConfigureAwait(false);
        if (_datapathOptions.HostServices)
        {
            try
            {
                var logger = _loggers.CreateLogger("EbpfProxy.Datapath.HostServices");
                HostServices.Attach(datapath, _datapathOptions.PinPath, HostServices.ResolveCgroup(_datapathOptions.CgroupRoot, logger),
                    HostServices.CurrentNetnsCookie(), logger);
            }
            catch (Exception ex) when (ex is BpfException or IOException or UnauthorizedAccessException or InvalidOperationException or System.Net.Sockets.SocketException)
            {
                // Pods and outside clients are served regardless; host-network processes are not.
                LogHostServicesFailed(_logger, ex);
            }
        }
        using var timer = new PeriodicTimer(_datapathOptions.InterfaceScanInterval, _time);
        var lastFullCheck = DateTimeOffset.MinValue;
        do
        {
            try
            {
                // New interfaces every scan; every interface (a foreign filter may have replaced ours) every 30 s.
                var now = _time.GetUtcNow();
                bool full = now - lastFullCheck >= TimeSpan.FromSeconds(30);
                attacher.Reconcile(verifyAll: full);
                if (full)
                    lastFullCheck = now;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogAttachLoopFailed(_logger, ex);
            }
        }
        while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false));
    }

    [LoggerMessage(EventId = 9, Level = LogLevel.Error, Message = "Could not attach the socket hooks: host-network processes reaching services are not translated")]
    private static partial void LogHostServicesFailed(ILogger logger, Exception ex);

    [LoggerMessage(EventId = 1, Level = LogLevel.Critical, Message = "Could not load the datapath")]
    private static partial void LogLoadFailed(ILogger logger, Exception ex);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Waiting for every source to finish its initial list before writing any map")]
    private static partial void LogWaitingForSources(ILogger logger);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "Sync #{Count} ({Trigger}, snapshot {Version}): {Writes} writes, {Deletes} deletes, {Purged} conntrack entries purged, {Frontends} frontends; translate {TranslateMs:F1} ms, plan {PlanMs:F1} ms, write {WriteMs:F1} ms, heap {HeapMiB} MiB, {ElapsedMs:F1} ms")]
    private static partial void LogSynced(ILogger logger, long count, SyncTrigger trigger, long version, int writes, int deletes, int purged, int frontends, double translateMs, double planMs, double writeMs, long heapMiB, double elapsedMs);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Skipped {Kind} {Object}: {Message}")]
    private static partial void LogTranslationError(ILogger logger, string kind, string @object, string message);

    [LoggerMessage(EventId = 5, Level = LogLevel.Error, Message = "Interface scan failed")]
    private static partial void LogAttachLoopFailed(ILogger logger, Exception ex);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "Stopped; programs stay attached and maps stay pinned")]
    private static partial void LogStopped(ILogger logger);
}
