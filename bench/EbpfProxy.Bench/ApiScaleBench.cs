using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using EbpfProxy.Core.Model;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Sync;
using EbpfProxy.Testing;
using EbpfProxy.Testing.KubeApi;
using k8s.Models;

namespace EbpfProxy.Bench;

/// <summary>
/// Issue 3's scale run: the real daemon in a node namespace against the fake API server (real
/// wire format) serving N services and N*M endpoints. Reports time from start to all maps
/// programmed, resident memory after sync, and the latency from one EndpointSlice change (API
/// write) to its map write, p50/p99, with --min-sync-interval 0.
/// </summary>
public static class ApiScaleBench
{
    public static async Task<int> RunAsync(string exe, int services, int endpointsPerService, int pods, int changes)
    {
        Privileged.EnsureRoot();
        using var topo = Topology.Create();
        using var bpffs = BpfFsMount.CreateTemp();
        var node = topo.AddNode("node");
        await using var api = await FakeKubeApiServer.StartInNamespaceAsync(node.Ns, IPAddress.Loopback, 6443);
        var dir = Directory.CreateTempSubdirectory("epx-bench-").FullName;
        try
        {
            var sw = Stopwatch.StartNew();
            api.Upsert(new V1Node { Metadata = new V1ObjectMeta { Name = "node-1" } });
            for (int i = 0; i < services; i++)
            {
                api.Upsert(ScaleModel.Service(i));
                api.Upsert(ScaleModel.Slice(i, endpointsPerService));
            }
            for (int i = 0; i < pods; i++)
                api.Upsert(ScaleModel.Pod(i, endpointsPerService));
            Console.WriteLine($"api server populated: {services} services, {services * endpointsPerService} endpoints, {pods} pods in {sw.Elapsed.TotalSeconds:F1} s");

            var kubeconfig = api.WriteKubeconfig(Path.Combine(dir, "kubeconfig"));
            sw.Restart();
            var startedUtc = DateTime.UtcNow;
            // EPX_BENCH_DAEMON_ENV="K=V;K=V" passes runtime settings (GC knobs) to the daemon for experiments.
            var env = (Environment.GetEnvironmentVariable("EPX_BENCH_DAEMON_ENV") ?? "")
                .Split(';', StringSplitOptions.RemoveEmptyEntries).Select(kv => kv.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]);
            await using var daemon = DaemonProcess.Start(node.Ns, exe,
                ["run", "--kubeconfig", kubeconfig, "--bpffs", bpffs.Path, "--node-name", "node-1", "--min-sync-interval", "0"], env);
            var first = await daemon.WaitForOutputAsync(new Regex(@"Sync #1 .*"), TimeSpan.FromMinutes(5));
            var seen = sw.Elapsed;
            var cpuAtProgrammed = CpuSeconds(daemon.Pid);
            // The daemon logs the first sync right after its last map write; its console logger
            // writes asynchronously, so the bench reads the line a little later (later still when
            // a collection pauses the logger). The log's own time is the moment of "programmed".
            var startToProgrammed = LogTime(daemon.Output.First(l => l.Contains("Sync #1 ", StringComparison.Ordinal)), startedUtc) ?? seen;
            Console.WriteLine($"start -> all maps programmed: {startToProgrammed.TotalSeconds:F2} s by the daemon's log, line read by the bench at {seen.TotalSeconds:F2} s   ({first.Value})");
            Console.WriteLine($"phases from start: {Phases(daemon.Output, startedUtc)}; daemon CPU by then {cpuAtProgrammed:F2} s");
            if (Environment.GetEnvironmentVariable("EPX_BENCH_VERBOSE") == "1")
                foreach (var l in daemon.Output.Take(20))
                    Console.WriteLine($"  start | {l}");

            await Task.Delay(TimeSpan.FromSeconds(3));
            Console.WriteLine($"daemon resident memory after sync: {Rss(daemon.Pid) / 1024.0:F0} MiB");
            if (Environment.GetEnvironmentVariable("EPX_BENCH_VERBOSE") == "1")
                foreach (var line in File.ReadLines($"/proc/{daemon.Pid}/smaps_rollup").Where(l => l.StartsWith("Rss") || l.StartsWith("Anonymous") || l.StartsWith("Pss_File") || l.StartsWith("Pss_Anon")))
                    Console.WriteLine($"  smaps | {line}");

            using var maps = LbMaps.OpenPinned(Path.Combine(bpffs.Path, "ebpf-proxy"));
            var latencies = new List<double>();
            for (int c = 0; c < changes; c++)
            {
                int svc = (c * 7919) % services;
                var slice = ScaleModel.Slice(svc, endpointsPerService, generation: 1000 + c);
                var want = slice.Endpoints.Select(e => IPAddress.Parse(e.Addresses[0])).ToHashSet();
                var vip = IPAddress.Parse(ScaleModel.Service(svc).Spec.ClusterIP);
                var t = Stopwatch.StartNew();
                api.Upsert(slice);
                while (!Programmed(maps, vip, want))
                {
                    Thread.Sleep(0); // yield: the machine has two cores and the daemon needs one
                    if (t.Elapsed > TimeSpan.FromSeconds(10))
                        throw new TimeoutException($"change {c} to service {svc} not programmed in 10 s");
                }
                latencies.Add(t.Elapsed.TotalMilliseconds);
                await Task.Delay(50); // idle between changes
            }
            latencies.Sort();
            Console.WriteLine($"EndpointSlice change -> map write ({changes} changes): p50 {Pct(latencies, 0.5):F1} ms, p99 {Pct(latencies, 0.99):F1} ms, max {latencies[^1]:F1} ms");
            Console.WriteLine($"daemon resident memory at the end: {Rss(daemon.Pid) / 1024.0:F0} MiB");
            var syncs = daemon.Output.Where(l => l.Contains("Sync #", StringComparison.Ordinal)).ToList();
            var took = syncs.Skip(1).Select(l => double.Parse(Regex.Match(l, @"([\d.]+) ms$").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).Order().ToList();
            foreach (var l in syncs.Skip(1).Where(l => double.Parse(Regex.Match(l, @"([\d.]+) ms$").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > 15).Take(5))
                Console.WriteLine($"  slow sync | {l}");
            if (took.Count > 0)
                Console.WriteLine($"daemon's own sync time per change (translate+plan+write): p50 {Pct(took, 0.5):F1} ms, p99 {Pct(took, 0.99):F1} ms over {took.Count} syncs");
            return 0;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static double Pct(List<double> sorted, double p) => sorted[Math.Min(sorted.Count - 1, (int)(sorted.Count * p))];

    private static bool Programmed(LbMaps maps, IPAddress vip, HashSet<IPAddress> want)
    {
        var key = LbMapIo.ToKey(new FrontendKey(new Frontend(vip, 80, L4Protocol.Tcp), FrontendScope.External), 0);
        if (!maps.Lb4Services.TryLookup(key, out var svc) || svc.Count != want.Count)
            return false;
        for (ushort slot = 1; slot <= svc.Count; slot++)
        {
            key.Slot = slot;
            if (!maps.Lb4Services.TryLookup(key, out var s) || !maps.Lb4Backends.TryLookup(s.BackendId, out var be) || !want.Contains(be.AddressBe.ToAddress()))
                return false;
        }
        return true;
    }

    /// <summary>When the daemon's log says it reached each start-up phase, in seconds after the bench started it (log timestamps are UTC, ms).</summary>
    private static string Phases(IReadOnlyList<string> output, DateTime startedUtc)
    {
        string At(string marker) =>
            output.FirstOrDefault(l => l.Contains(marker, StringComparison.Ordinal)) is { } line && LogTime(line, startedUtc) is { } t
                ? t.TotalSeconds.ToString("F2", System.Globalization.CultureInfo.InvariantCulture)
                : "?";
        return $"first log line {At(" info: ")} s, all listed {At("resources listed in")} s, first sync logged {At("Sync #1 ")} s";
    }

    /// <summary>A daemon log line's time (UTC, "HH:mm:ss.fff " prefix) as time since <paramref name="startedUtc"/>.</summary>
    private static TimeSpan? LogTime(string line, DateTime startedUtc)
    {
        if (line.Length < 12 || !TimeSpan.TryParseExact(line[..12], @"hh\:mm\:ss\.fff", System.Globalization.CultureInfo.InvariantCulture, out var t))
            return null;
        var since = startedUtc.Date + t - startedUtc;
        return since < TimeSpan.FromHours(-12) ? since + TimeSpan.FromDays(1) : since;
    }

    /// <summary>User + system CPU time of a process so far (/proc/PID/stat fields 14 and 15, in clock ticks of 1/100 s).</summary>
    private static double CpuSeconds(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11]) + long.Parse(fields[12])) / 100.0;
    }

    private static long Rss(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        return -1;
    }
}
