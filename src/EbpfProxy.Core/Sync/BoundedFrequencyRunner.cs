using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Core.Sync;

/// <summary>Why a sync runs.</summary>
public enum SyncTrigger
{
    /// <summary>Something changed and asked for a sync.</summary>
    Requested,
    /// <summary>The periodic resync: re-read the maps and heal any drift.</summary>
    Periodic,
    /// <summary>The previous attempt failed.</summary>
    Retry,
}

public sealed record BoundedFrequencyRunnerOptions
{
    /// <summary>At most one sync per interval (kube-proxy's minSyncPeriod, default 1 s; 0 = none).</summary>
    public TimeSpan MinInterval { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>A sync runs at least this often even with nothing requested.</summary>
    public TimeSpan MaxInterval { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan RetryInitial { get; init; } = TimeSpan.FromMilliseconds(200);
    public TimeSpan RetryMax { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// Runs one serialized sync function: requests coalesce, runs are at least MinInterval apart,
/// a periodic run happens every MaxInterval, failures are retried with jittered exponential
/// backoff. Modelled on kube-proxy's BoundedFrequencyRunner; the clock is a TimeProvider so
/// tests can drive it.
/// </summary>
public sealed partial class BoundedFrequencyRunner
{
    private readonly Func<SyncTrigger, CancellationToken, Task> _sync;
    private readonly BoundedFrequencyRunnerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Channel<bool> _requests = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Random _jitter = new();

    public BoundedFrequencyRunner(Func<SyncTrigger, CancellationToken, Task> sync, BoundedFrequencyRunnerOptions options, TimeProvider time, ILogger logger)
    {
        _sync = sync;
        _options = options;
        _time = time;
        _logger = logger;
    }

    /// <summary>Number of sync attempts that failed in a row.</summary>
    public int ConsecutiveFailures { get; private set; }

    /// <summary>When the last successful sync finished, or null.</summary>
    public DateTimeOffset? LastSuccess { get; private set; }

    /// <summary>Asks for a sync as soon as the minimum interval allows. Cheap and thread-safe.</summary>
    public void Request() => _requests.Writer.TryWrite(true);

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        DateTimeOffset? lastStart = null;
        DateTimeOffset? retryAt = null;
        var trigger = SyncTrigger.Requested;
        while (!cancellationToken.IsCancellationRequested)
        {
            // Wait for a request, the periodic deadline or the retry deadline.
            var now = _time.GetUtcNow();
            var periodicAt = (lastStart ?? now) + _options.MaxInterval;
            var deadline = retryAt is { } r && r < periodicAt ? r : periodicAt;
            if (lastStart is null || _requests.Reader.TryRead(out _))
            {
                trigger = SyncTrigger.Requested;
            }
            else
            {
                var wait = deadline - now;
                if (wait > TimeSpan.Zero)
                {
                    using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    var readTask = _requests.Reader.WaitToReadAsync(cts.Token).AsTask();
                    var delayTask = Task.Delay(wait, _time, cts.Token);
                    var done = await Task.WhenAny(readTask, delayTask).ConfigureAwait(false);
                    cts.Cancel();
                    cancellationToken.ThrowIfCancellationRequested();
                    if (done == readTask)
                    {
                        _requests.Reader.TryRead(out _);
                        trigger = SyncTrigger.Requested;
                    }
                    else
                    {
                        trigger = retryAt is not null && _time.GetUtcNow() >= retryAt ? SyncTrigger.Retry : SyncTrigger.Periodic;
                    }
                }
                else
                {
                    trigger = retryAt is not null && now >= retryAt ? SyncTrigger.Retry : SyncTrigger.Periodic;
                }
            }

            // Respect the minimum interval; requests arriving meanwhile coalesce into this run.
            if (lastStart is { } ls && _options.MinInterval > TimeSpan.Zero)
            {
                var earliest = ls + _options.MinInterval;
                var gap = earliest - _time.GetUtcNow();
                if (gap > TimeSpan.Zero)
                    await Task.Delay(gap, _time, cancellationToken).ConfigureAwait(false);
            }
            _requests.Reader.TryRead(out _);

            lastStart = _time.GetUtcNow();
            try
            {
                await _sync(trigger, cancellationToken).ConfigureAwait(false);
                ConsecutiveFailures = 0;
                retryAt = null;
                LastSuccess = _time.GetUtcNow();
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                ConsecutiveFailures++;
                var backoff = Backoff(ConsecutiveFailures);
                retryAt = _time.GetUtcNow() + backoff;
                LogSyncFailed(_logger, ex, ConsecutiveFailures, backoff.TotalMilliseconds);
            }
        }
    }

    private TimeSpan Backoff(int failures)
    {
        var baseMs = _options.RetryInitial.TotalMilliseconds * Math.Pow(2, Math.Min(failures - 1, 20));
        var capped = Math.Min(baseMs, _options.RetryMax.TotalMilliseconds);
        // +-20 % jitter so many nodes do not retry in lockstep.
        return TimeSpan.FromMilliseconds(capped * (0.8 + 0.4 * _jitter.NextDouble()));
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Error, Message = "Sync failed ({Failures} in a row); retrying in {BackoffMs:F0} ms")]
    private static partial void LogSyncFailed(ILogger logger, Exception ex, int failures, double backoffMs);
}
