using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Health;
using EbpfProxy.Core.Metrics;
using EbpfProxy.Datapath;
using EbpfProxy.Datapath.Attach;
using EbpfProxy.Datapath.Loading;
using EbpfProxy.Datapath.Sync;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Daemon;

/// <summary>
/// Composition only: loads the datapath (re-adopting pinned maps, writing none), then runs the
/// one datapath sync (<see cref="DatapathSync"/>: every map writer, from the first full pass on)
/// beside the attach loop (<see cref="AttachLoop"/>: programs attach after the first sync) and
/// the NodePort health check servers.
/// </summary>
public sealed partial class ProxyService(ClusterStore store, ProxyOptions options, DatapathOptions datapathOptions, ILoggerFactory loggers,
    IHostApplicationLifetime lifetime, TimeProvider time, ProxyMetrics metrics, ProxyHealth health, ProxyStatus status) : BackgroundService
{
    private readonly ILogger _logger = loggers.CreateLogger<ProxyService>();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        LoadedDatapath datapath;
        try
        {
            datapath = DatapathLoader.Load(datapathOptions, loggers.CreateLogger("EbpfProxy.Datapath.Loader"));
        }
        catch (Exception ex)
        {
            LogLoadFailed(_logger, ex);
            Environment.ExitCode = 1;
            lifetime.StopApplication();
            return;
        }

        using (datapath)
        {
            using var healthChecks = new ServiceHealthServers(health, loggers.CreateLogger<ServiceHealthServers>());
            var sync = new DatapathSync(datapath.DatapathMaps, store, SyncOptions(options, datapathOptions, NetnsCookie()), new InterfaceAddresses(),
                metrics, status, health, time, loggers)
            {
                HealthChecksChanged = healthChecks.Update,
            };
            var attach = new AttachLoop(datapath, datapathOptions, time, loggers, status).RunAsync(sync.FirstSync, stoppingToken);
            await sync.RunAsync(stoppingToken).ConfigureAwait(false);
            try
            {
                await attach.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
            // Programs stay attached and maps stay pinned: the datapath outlives the daemon.
            LogStopped(_logger);
        }
    }

    /// <summary>The sync's settings from the command line.</summary>
    public static DatapathSyncOptions SyncOptions(ProxyOptions options, DatapathOptions datapath, ulong? netnsCookie) => DatapathSyncOptions.From(datapath) with
    {
        NodeName = options.NodeName,
        MinSyncInterval = options.MinSyncInterval,
        SyncPeriod = options.SyncPeriod,
        NodePortCidrs = options.NodePortCidrs,
        NetnsCookie = netnsCookie,
    };

    /// <summary>This network namespace's cookie for the socket hooks (null with host services off, or when the kernel cannot tell it).</summary>
    private ulong? NetnsCookie()
    {
        if (!datapathOptions.HostServices)
            return null;
        try
        {
            return HostServices.CurrentNetnsCookie();
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or InvalidOperationException)
        {
            LogNoNetnsCookie(_logger, ex);
            return null;
        }
    }

    [LoggerMessage(EventId = 9, Level = LogLevel.Error, Message = "Could not read this network namespace's cookie (SO_NETNS_COOKIE, Linux 5.14+): host-network processes reaching services are not translated")]
    private static partial void LogNoNetnsCookie(ILogger logger, Exception ex);

    [LoggerMessage(EventId = 1, Level = LogLevel.Critical, Message = "Could not load the datapath")]
    private static partial void LogLoadFailed(ILogger logger, Exception ex);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "Stopped; programs stay attached and maps stay pinned")]
    private static partial void LogStopped(ILogger logger);
}
