using System.Diagnostics.Metrics;

namespace EbpfProxy.Core.Metrics;

/// <summary>
/// The proxy's service-level indicators, in one place (as kube-proxy's pkg/proxy/metrics). They
/// are System.Diagnostics.Metrics instruments on the "EbpfProxy" meter, so any exporter
/// (the daemon's OpenTelemetry MeterProvider, docs/metrics.md) publishes them unchanged.
/// Names follow kube-proxy's where one exists.
/// </summary>
public sealed class ProxyMetrics : IDisposable
{
    public const string MeterName = "EbpfProxy";

    private readonly Meter _meter;
    private long _pendingChanges;
    private long _lastSyncSuccessUnixSeconds;
    private long _policyErrors;

    public ProxyMetrics(IMeterFactory? factory = null)
    {
        _meter = factory?.Create(MeterName) ?? new Meter(MeterName);
        SyncDuration = _meter.CreateHistogram<double>("ebpfproxy_sync_proxy_rules_duration_seconds", "s", "Duration of one sync: translate, plan and write the maps");
        NetworkProgrammingDuration = _meter.CreateHistogram<double>("ebpfproxy_network_programming_duration_seconds", "s", "From an EndpointSlice's last-change-trigger-time to its map write");
        SyncErrors = _meter.CreateCounter<long>("ebpfproxy_sync_proxy_rules_errors_total", description: "Syncs that failed");
        MapWrites = _meter.CreateCounter<long>("ebpfproxy_map_writes_total", description: "Map updates and deletes performed by the syncer");
        MapUpdateFailures = _meter.CreateCounter<long>("ebpfproxy_map_update_failures", description: "Map writes from user space that the kernel refused, by map");
        WatchRestarts = _meter.CreateCounter<long>("ebpfproxy_watch_restarts_total", description: "Watches restarted, by resource and reason");
        WatchErrors = _meter.CreateCounter<long>("ebpfproxy_watch_errors_total", description: "List or watch errors, by resource");
        _meter.CreateObservableGauge("ebpfproxy_sync_proxy_rules_pending_changes", () => Interlocked.Read(ref _pendingChanges), description: "Changes recorded and not yet synced");
        PolicySyncDuration = _meter.CreateHistogram<double>("ebpfproxy_sync_network_policy_duration_seconds", "s", "Duration of one NetworkPolicy pass: compute and write the policy maps");
        _meter.CreateObservableGauge("ebpfproxy_network_policy_errors", () => Interlocked.Read(ref _policyErrors), description: "NetworkPolicies and pods that could not be fully translated (their isolated directions fail closed)");
        _meter.CreateObservableGauge("ebpfproxy_sync_proxy_rules_last_timestamp_seconds", () => Interlocked.Read(ref _lastSyncSuccessUnixSeconds), "s", "Unix time of the last successful sync");
    }

    public Histogram<double> SyncDuration { get; }
    public Histogram<double> NetworkProgrammingDuration { get; }
    public Counter<long> SyncErrors { get; }
    public Counter<long> MapWrites { get; }
    public Counter<long> WatchRestarts { get; }
    /// <summary>By <c>map</c>; every pinned map's series starts at 0 (the map usage walk adds it).</summary>
    public Counter<long> MapUpdateFailures { get; }

    /// <summary>Counts a map write the kernel refused.</summary>
    public void MapUpdateFailed(string map) => MapUpdateFailures.Add(1, new KeyValuePair<string, object?>("map", map));
    public Counter<long> WatchErrors { get; }
    public Histogram<double> PolicySyncDuration { get; }

    /// <summary>Objects the last policy computation could not fully translate.</summary>
    public long PolicyErrors
    {
        get => Interlocked.Read(ref _policyErrors);
        set => Interlocked.Exchange(ref _policyErrors, value);
    }

    public long PendingChanges => Interlocked.Read(ref _pendingChanges);
    public DateTimeOffset? LastSyncSuccess => Interlocked.Read(ref _lastSyncSuccessUnixSeconds) is var s and > 0 ? DateTimeOffset.FromUnixTimeSeconds(s) : null;

    public void ChangeRecorded() => Interlocked.Increment(ref _pendingChanges);

    public void SyncSucceeded(DateTimeOffset at, long changesConsumed)
    {
        Interlocked.Exchange(ref _lastSyncSuccessUnixSeconds, at.ToUnixTimeSeconds());
        Interlocked.Add(ref _pendingChanges, -Math.Min(changesConsumed, Interlocked.Read(ref _pendingChanges)));
    }

    public void Dispose() => _meter.Dispose();
}
