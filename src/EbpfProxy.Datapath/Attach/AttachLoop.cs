using EbpfProxy.Core.Health;
using EbpfProxy.Datapath.Loading;
using LibBpf.Net;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Datapath.Attach;

/// <summary>
/// Keeps the programs attached: once the first sync has programmed the maps, the socket hooks
/// (when host services are on) and the tc programs on every pod interface and network device.
/// From then on new interfaces are attached as the kernel announces them (netlink RTM_NEWLINK,
/// <see cref="LinkMonitor"/>), so a pod's veth has its programs before the CNI has even addressed
/// it; address changes re-evaluate the netdevs. A scan every
/// <see cref="DatapathOptions.InterfaceScanInterval"/> is the safety net, and every 30 s every
/// attachment is checked (a foreign filter may have replaced ours). Without a netlink socket it
/// falls back to scanning every second. Writes no map.
/// </summary>
public sealed partial class AttachLoop(LoadedDatapath datapath, DatapathOptions options, TimeProvider time, ILoggerFactory loggers, ProxyStatus? status = null)
{
    private static readonly TimeSpan FullCheckInterval = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan PollingFallback = TimeSpan.FromSeconds(1);

    private readonly ILogger _logger = loggers.CreateLogger<AttachLoop>();
    private readonly Lock _gate = new();

    /// <param name="firstSync">Completes when the maps hold the cluster's state: a program that saw them still empty would pass service traffic untranslated.</param>
    public async Task RunAsync(Task firstSync, CancellationToken ct)
    {
        var attacher = new InterfaceAttacher(InterfaceAttacher.DefaultRoles(datapath, options), loggers.CreateLogger<InterfaceAttacher>(), options.AttachMode, options.PinPath);
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

        // Subscribed before the first scan: an interface created in between is announced.
        LinkMonitor? monitor = null;
        try
        {
            monitor = new LinkMonitor();
        }
        catch (IOException ex)
        {
            LogNoLinkEvents(_logger, ex);
        }
        Task events = Task.CompletedTask;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        try
        {
            ReconcileLocked(attacher, verifyAll: true);
            Publish(attacher, monitor is not null);
            if (monitor is not null)
                events = Task.Factory.StartNew(() => RunEvents(monitor, attacher, stop.Token), stop.Token, TaskCreationOptions.LongRunning, TaskScheduler.Default);

            using var timer = new PeriodicTimer(monitor is null ? PollingFallback : options.InterfaceScanInterval, time);
            var lastFullCheck = time.GetUtcNow();
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
            {
                var now = time.GetUtcNow();
                bool full = now - lastFullCheck >= FullCheckInterval;
                ReconcileLocked(attacher, verifyAll: full);
                Publish(attacher, monitor is not null);
                if (full)
                    lastFullCheck = now;
            }
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            try
            {
                await events.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
            monitor?.Dispose();
        }
    }

    /// <summary>The event thread: attach on RTM_NEWLINK, forget on RTM_DELLINK, re-evaluate on address changes and after an overflow.</summary>
    private void RunEvents(LinkMonitor monitor, InterfaceAttacher attacher, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var batch = monitor.Receive(500);
                if (batch is null)
                {
                    LogLinkEventsLost(_logger);
                    ReconcileLocked(attacher, verifyAll: false);
                    continue;
                }
                if (batch.Count == 0)
                    continue;
                bool addresses = false;
                lock (_gate)
                {
                    foreach (var ev in batch)
                    {
                        switch (ev.Kind)
                        {
                            case LinkEventKind.NewLink when ev.Name is not null:
                                attacher.Attach(new NetInterface(ev.Name, ev.IfIndex));
                                break;
                            case LinkEventKind.DelLink:
                                attacher.Forget(ev.IfIndex, ev.Name);
                                break;
                            case LinkEventKind.Address:
                                addresses = true;
                                break;
                        }
                    }
                }
                // Netdevs without globs are the interfaces holding a global address.
                if (addresses && options.NetdevInterfaces.Count == 0)
                    ReconcileLocked(attacher, verifyAll: false);
                Publish(attacher, events: true);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogAttachLoopFailed(_logger, ex);
                Thread.Sleep(100);
            }
        }
    }

    private void ReconcileLocked(InterfaceAttacher attacher, bool verifyAll)
    {
        try
        {
            lock (_gate)
                attacher.Reconcile(verifyAll);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogAttachLoopFailed(_logger, ex);
        }
    }

    private void Publish(InterfaceAttacher attacher, bool events)
    {
        if (status is null)
            return;
        string mechanism;
        int count;
        lock (_gate)
        {
            mechanism = attacher.Mechanism;
            count = attacher.Attached.Count;
        }
        var attach = new AttachStatus(mechanism, count, events ? "netlink events" : "polling");
        status.Update(s => s.Attach == attach ? s : s with { Attach = attach });
    }

    [LoggerMessage(EventId = 9, Level = LogLevel.Error, Message = "Could not attach the socket hooks: host-network processes reaching services are not translated")]
    private static partial void LogHostServicesFailed(ILogger logger, Exception ex);

    [LoggerMessage(EventId = 5, Level = LogLevel.Error, Message = "Interface scan failed")]
    private static partial void LogAttachLoopFailed(ILogger logger, Exception ex);

    [LoggerMessage(EventId = 405, Level = LogLevel.Warning, Message = "No netlink link events; new interfaces are found by scanning every second")]
    private static partial void LogNoLinkEvents(ILogger logger, Exception ex);

    [LoggerMessage(EventId = 406, Level = LogLevel.Warning, Message = "Netlink link events were lost (socket buffer overflow); rescanning the interfaces")]
    private static partial void LogLinkEventsLost(ILogger logger);
}
