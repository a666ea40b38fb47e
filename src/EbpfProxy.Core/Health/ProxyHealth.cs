namespace EbpfProxy.Core.Health;

/// <summary>What /healthz and /livez report.</summary>
public sealed record HealthReport(bool Healthy, DateTimeOffset? LastUpdated, DateTimeOffset CurrentTime, string? Problem);

/// <summary>
/// Whether the proxy is keeping the datapath up to date, as kube-proxy's healthz reports it: a
/// change has not waited longer than the timeout for a successful sync, and (since syncs also run
/// periodically) some sync has succeeded within the timeout plus one sync period. Before the first
/// successful sync the proxy is not healthy.
/// </summary>
public sealed class ProxyHealth
{
    private readonly TimeProvider _time;
    private readonly TimeSpan _timeout;
    private readonly TimeSpan _syncPeriod;
    private readonly Lock _gate = new();
    private DateTimeOffset? _lastUpdated;
    private DateTimeOffset? _pendingSince;
    private DateTimeOffset? _failingSince;
    private string? _failure;

    public ProxyHealth(TimeProvider time, TimeSpan timeout, TimeSpan syncPeriod)
    {
        _time = time;
        _timeout = timeout;
        _syncPeriod = syncPeriod;
    }

    /// <summary>A change was recorded and waits for a sync.</summary>
    public void Queued()
    {
        lock (_gate)
            _pendingSince ??= _time.GetUtcNow();
    }

    /// <summary>A sync that started at <paramref name="startedAt"/> succeeded: changes queued before it are programmed.</summary>
    public void Synced(DateTimeOffset startedAt)
    {
        lock (_gate)
        {
            _lastUpdated = _time.GetUtcNow();
            _failingSince = null;
            _failure = null;
            if (_pendingSince is { } p && p <= startedAt)
                _pendingSince = null;
        }
    }

    /// <summary>
    /// A sync failed (the kernel refused a write): unhealthy at once, with the error, until one
    /// succeeds. kube-proxy waits for its timeout because a failed iptables-restore is retried
    /// the same way; here a failed pass means a write the kernel refused, which a retry of the
    /// same plan rarely fixes, so the load balancer in front should know now (issue 14 item 1).
    /// </summary>
    public void Failed(string error)
    {
        lock (_gate)
        {
            _failingSince ??= _time.GetUtcNow();
            _failure = error;
        }
    }

    public HealthReport Evaluate()
    {
        var now = _time.GetUtcNow();
        lock (_gate)
        {
            if (_lastUpdated is not { } last)
                return new HealthReport(false, null, now, _failure is null ? "no successful sync yet" : $"no successful sync yet; the last failed: {_failure}");
            if (_failingSince is { } failing)
                return new HealthReport(false, last, now, $"syncs failing for {(now - failing).TotalSeconds:F0} s: {_failure}");
            if (_pendingSince is { } pending && now - pending > _timeout)
                return new HealthReport(false, last, now, $"a change has waited {(now - pending).TotalSeconds:F0} s for a successful sync");
            if (now - last > _timeout + _syncPeriod)
                return new HealthReport(false, last, now, $"no successful sync for {(now - last).TotalSeconds:F0} s");
            return new HealthReport(true, last, now, null);
        }
    }
}
