using System.Collections.Concurrent;
using System.Diagnostics;
using EbpfProxy.Datapath;
using EbpfProxy.Datapath.Attach;
using EbpfProxy.Datapath.Loading;
using EbpfProxy.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace EbpfProxy.Bench;

/// <summary>
/// Issue 10 item 5: how long a new interface runs without programs. In a namespace of its own, a
/// burst of veths is created with one `ip -batch`; one netlink listener that does nothing else
/// stamps when each host-side veth appears (the kernel multicasts RTM_NEWLINK to every listener
/// as it registers the device), and the attacher, driven by its own listener as the daemon's
/// attach loop is, stamps when the programs are on it. Latency = attached - appeared, per veth.
/// </summary>
internal static class AttachLatencyBench
{
    public static int Run(int count, string mode, string? bpfDir)
    {
        Privileged.EnsureRoot();
        var attachMode = Enum.Parse<AttachMode>(mode, ignoreCase: true);
        using var bpffs = BpfFsMount.CreateTemp();
        using var ns = NetNs.Create("attachbench");
        var options = new DatapathOptions
        {
            BpfFsRoot = bpffs.Path,
            ObjectDirectory = bpfDir ?? AppContext.BaseDirectory,
            ConntrackMax = 4096, ServicesMax = 4096, BackendsMax = 4096, RevNatMax = 1024,
            PolicyIpcacheMax = 1024, PolicyEndpointsMax = 1024, PolicyRulesMax = 1024, PolicyConntrackMax = 1024,
        };
        using var datapath = DatapathLoader.Load(options, NullLogger.Instance);
        var appeared = new ConcurrentDictionary<string, long>();
        var attached = new ConcurrentDictionary<string, long>();
        using var stop = new CancellationTokenSource();

        using var observer = ns.Run(() => new LinkMonitor());
        var observing = Task.Factory.StartNew(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                foreach (var ev in observer.Receive(50) ?? throw new InvalidOperationException("the observer's socket overflowed"))
                {
                    if (ev.Kind == LinkEventKind.NewLink && ev.Name is { } n)
                        appeared.TryAdd(n, Stopwatch.GetTimestamp());
                }
            }
        }, TaskCreationOptions.LongRunning);

        string mechanism = "";
        int overflows = 0;
        using var ready = new ManualResetEventSlim();
        var attaching = Task.Factory.StartNew(() => ns.Run(() =>
        {
            using var monitor = new LinkMonitor();
            var attacher = new InterfaceAttacher([AttachRole.Pods(datapath, ["bv*"])], NullLogger<InterfaceAttacher>.Instance, attachMode, options.PinPath)
            {
                OnAttached = itf => attached.TryAdd(itf.Name, Stopwatch.GetTimestamp()),
            };
            ready.Set();
            while (!stop.IsCancellationRequested)
            {
                var batch = monitor.Receive(50);
                if (batch is null)
                {
                    overflows++;
                    attacher.Reconcile(verifyAll: false);
                    continue;
                }
                foreach (var ev in batch)
                {
                    if (ev.Kind == LinkEventKind.NewLink && ev.Name is { } n)
                        attacher.Attach(new NetInterface(n, ev.IfIndex));
                }
            }
            mechanism = attacher.Mechanism;
        }), TaskCreationOptions.LongRunning);
        ready.Wait();

        var script = Path.GetTempFileName();
        File.WriteAllLines(script, Enumerable.Range(0, count).Select(i => $"link add bv{i:D4} type veth peer name bp{i:D4}"));
        var burst = Stopwatch.StartNew();
        ns.Ip("-batch", script);
        File.Delete(script);
        var deadline = Stopwatch.StartNew();
        while (attached.Count < count && deadline.Elapsed < TimeSpan.FromSeconds(60))
            Thread.Sleep(5);
        var total = burst.Elapsed;
        stop.Cancel();
        attaching.Wait();
        observing.Wait();

        var latencies = attached.Where(a => appeared.ContainsKey(a.Key))
            .Select(a => Stopwatch.GetElapsedTime(appeared[a.Key], a.Value).TotalMilliseconds).Order().ToArray();
        if (latencies.Length == 0)
        {
            Console.Error.WriteLine("no interface was attached");
            return 1;
        }
        double P(double q) => latencies[Math.Min(latencies.Length - 1, (int)Math.Ceiling(q * latencies.Length) - 1)];
        Console.WriteLine($"attach latency ({mechanism}, {count} veths in one burst, {attached.Count} attached, {overflows} overflows): " +
            $"p50 {P(0.50):F2} ms, p99 {P(0.99):F2} ms, max {latencies[^1]:F2} ms; burst created and attached in {total.TotalMilliseconds:F0} ms");
        return attached.Count == count ? 0 : 1;
    }
}
