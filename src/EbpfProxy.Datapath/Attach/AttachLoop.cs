using EbpfProxy.Datapath.Loading;
using LibBpf.Net;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Datapath.Attach;

/// <summary>
/// Keeps the programs attached: once the first sync has programmed the maps, the socket hooks
/// (when host services are on) and the tc programs on every pod interface and network device,
/// then a scan for new interfaces every <see cref="DatapathOptions.InterfaceScanInterval"/> and a
/// check of every attachment (a foreign filter may have replaced ours) every 30 s. Writes no map.
/// </summary>
public sealed partial class AttachLoop(LoadedDatapath datapath, DatapathOptions options, TimeProvider time, ILoggerFactory loggers)
{
    private readonly ILogger _logger = loggers.CreateLogger<AttachLoop>();

    /// <param name="firstSync">Completes when the maps hold the cluster's state: a program that saw them still empty would pass service traffic untranslated.</param>
    public async Task RunAsync(Task firstSync, CancellationToken ct)
    {
        var attacher = new InterfaceAttacher(InterfaceAttacher.DefaultRoles(datapath, options), loggers.CreateLogger<InterfaceAttacher>());
        await firstSync.WaitAsync(ct).ConfigureAwait(false);
        if (options.HostServices)
        {
            try
            {
                var logger = loggers.CreateLogger("EbpfProxy.Datapath.HostServices");
                HostServices.Attach(datapath, options.PinPath, HostServices.ResolveCgroup(options.CgroupRoot, logger), logger);
            }
            catch (Exception ex) when (ex is BpfException or IOException or UnauthorizedAccessException or InvalidOperationException or System.Net.Sockets.SocketException)
            {
                // Pods and outside clients are served regardless; host-network processes are not.
                LogHostServicesFailed(_logger, ex);
            }
        }
        using var timer = new PeriodicTimer(options.InterfaceScanInterval, time);
        var lastFullCheck = DateTimeOffset.MinValue;
        do
        {
            try
            {
                var now = time.GetUtcNow();
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

    [LoggerMessage(EventId = 5, Level = LogLevel.Error, Message = "Interface scan failed")]
    private static partial void LogAttachLoopFailed(ILogger logger, Exception ex);
}
