using EbpfProxy.Datapath.Observability;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Daemon;

/// <summary>
/// Walks the pinned maps for their fill every --metrics-map-interval, off the scrape path: a scrape
/// serves the last walk (docs/metrics.md has the cost at a full conntrack map).
/// </summary>
public sealed partial class MapUsageRefresher(DatapathMetrics metrics, ProxyOptions options, TimeProvider time, ILogger<MapUsageRefresher> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The first walk soon after start (the loader pins the maps within a second or two), then on the interval.
        var first = TimeSpan.FromSeconds(Math.Min(2, options.MetricsMapInterval.TotalSeconds));
        try
        {
            await Task.Delay(first, time, stoppingToken).ConfigureAwait(false);
            using var timer = new PeriodicTimer(options.MetricsMapInterval, time);
            do
            {
                try
                {
                    var usage = await Task.Run(metrics.Refresh, stoppingToken).ConfigureAwait(false);
                    LogWalked(logger, usage.Maps.Count, usage.WalkSeconds * 1000);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogWalkFailed(logger, ex);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(EventId = 30, Level = LogLevel.Debug, Message = "Map usage walk: {Maps} maps in {ElapsedMs:F1} ms")]
    private static partial void LogWalked(ILogger logger, int maps, double elapsedMs);

    [LoggerMessage(EventId = 31, Level = LogLevel.Warning, Message = "Map usage walk failed; the map gauges keep the last walk's values")]
    private static partial void LogWalkFailed(ILogger logger, Exception ex);
}
