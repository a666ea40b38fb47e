using EbpfProxy.Datapath;
using EbpfProxy.Datapath.Loading;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Daemon;

/// <summary>
/// Holds <see cref="PinFolderLock"/> for the daemon's life. Registered before
/// <see cref="ProxyService"/>, so the maps are loaded only by the one daemon that holds the lock;
/// a second daemon waits <see cref="Wait"/> for it (a predecessor still shutting down) and then
/// fails to start with one clear line. Released after every other service has stopped.
/// </summary>
public sealed partial class PinFolderLockService(DatapathOptions options, TimeProvider time, ILogger<PinFolderLockService> logger) : IHostedService, IDisposable
{
    /// <summary>How long a starting daemon waits for another to release the pin folder.</summary>
    public static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private PinFolderLock? _lock;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        DatapathLoader.EnsureBpfFs(options.BpfFsRoot, logger);
        _lock = await PinFolderLock.AcquireAsync(options.PinPath, Wait, () => LogWaiting(logger, options.PinPath, Wait), time, cancellationToken)
            .ConfigureAwait(false);
        LogLocked(logger, options.PinPath);
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Dispose();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        _lock?.Dispose();
        _lock = null;
    }

    [LoggerMessage(EventId = 40, Level = LogLevel.Warning, Message = "Another ebpf-proxy daemon holds the pin folder {PinPath}; waiting up to {Wait} for it to stop")]
    private static partial void LogWaiting(ILogger logger, string pinPath, TimeSpan wait);

    [LoggerMessage(EventId = 41, Level = LogLevel.Debug, Message = "Holding the lock on the pin folder {PinPath}")]
    private static partial void LogLocked(ILogger logger, string pinPath);
}
