using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Testing;
using EbpfProxy.Testing.KubeApi;
using LibBpf.Net;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests;

/// <summary>
/// /metrics end to end: a real Prometheus (Debian's package, `make deps`), started in the node
/// namespace with a generated config, scrapes the real daemon; after real traffic in the test
/// namespaces PromQL through Prometheus's HTTP API returns the counts per service and per reason.
/// </summary>
public sealed class MetricsTests(ITestOutputHelper output)
{
    private const int MetricsPort = 10249;
    internal const int PrometheusPort = 19090;

    [PrivilegedFact]
    public async Task PrometheusScrapesServiceConnectionsDropsAndMapFill()
    {
        await using var s = await ProxyScenario.StartAsync(output, 2, ["echo-1", "echo-2"],
            ["--metrics-bind-address", $"127.0.0.1:{MetricsPort}", "--metrics-map-interval", "1"]);
        // The chart's alert rules loaded as they ship: Prometheus refuses to start on one that does not parse.
        await using var prom = await Prometheus.StartAsync(s.NodeNs, $"127.0.0.1:{MetricsPort}", output, ChartMonitoring.RulesFile);
        try
        {
            // Every reason is there from start-up, at 0 before any traffic.
            Assert.Equal(DropReasons * 2, await prom.WaitForValueAsync("count(ebpfproxy_drops_total)", v => v == DropReasons * 2));
            Assert.Equal(0, await prom.WaitForValueAsync("sum(ebpfproxy_drops_total)", v => v == 0));
            Assert.Equal(ForwardReasons * 2, await prom.WaitForValueAsync("count(ebpfproxy_forwarded_packets_total)", v => v == ForwardReasons * 2));

            // Service connections, counted in the kernel per frontend, named per service port.
            await s.TcpRoundAsync(5);
            await s.UdpRoundAsync(3);
            Assert.Equal(5, await prom.WaitForValueAsync("sum(ebpfproxy_service_connections_total{namespace=\"default\",service=\"echo\",port=\"http\",protocol=\"TCP\"})", v => v == 5));
            Assert.Equal(3, await prom.WaitForValueAsync("sum(ebpfproxy_service_connections_total{namespace=\"default\",service=\"echo\",port=\"udp\",protocol=\"UDP\"})", v => v == 3));
            Assert.True(await prom.WaitForValueAsync("sum(ebpfproxy_forwarded_packets_total{reason=\"service_new\"})", v => v >= 8) >= 8);

            // A REJECT: a port the ClusterIP does not define answers with ICMP port unreachable.
            await Assert.ThrowsAnyAsync<Exception>(() => TcpProbe.ConnectAsync(s.Client.Ns, ProxyScenario.Vip, 81, TimeSpan.FromSeconds(3)));
            Assert.Equal(1, await prom.WaitForValueAsync("sum(ebpfproxy_drops_total{reason=\"reject_undefined_port\"})", v => v == 1));

            // A NetworkPolicy drop: the echo pods admit no ingress.
            s.WriteExtraManifest("deny.yaml", """
                apiVersion: networking.k8s.io/v1
                kind: NetworkPolicy
                metadata: {name: deny-echo, namespace: default}
                spec: {podSelector: {matchLabels: {app: echo}}, policyTypes: [Ingress]}
                """);
            await WaitUntilAsync(async () =>
            {
                try
                {
                    using var c = await TcpProbe.ConnectAsync(s.Client.Ns, s.Echo["echo-1"].Ip, ProxyScenario.TargetPort, TimeSpan.FromSeconds(1));
                    return false;
                }
                catch (Exception ex) when (ex is not Xunit.Sdk.XunitException)
                {
                    return true;
                }
            }, "the deny-all policy to drop a connection");
            Assert.True(await prom.WaitForValueAsync("sum(ebpfproxy_drops_total{reason=\"policy_ingress_denied\"})", v => v >= 1) >= 1);

            // The CLI reads the same kernel counters from the pins.
            var cli = Cmd.TryRun(Binaries.EbpfProxy, "metrics", "--bpffs", s.BpfFsPath, "-o", "json");
            Assert.True(cli.ExitCode == 0, cli.Stderr);
            using (var counters = JsonDocument.Parse(cli.Stdout))
            {
                ulong Packets(string reason) => counters.RootElement.EnumerateArray()
                    .Where(r => r.GetProperty("reason").GetString() == reason).Aggregate(0UL, (sum, r) => sum + r.GetProperty("packets").GetUInt64());
                Assert.Equal(1UL, Packets("reject_undefined_port"));
                Assert.True(Packets("policy_ingress_denied") >= 1);
                Assert.True(Packets("service_new") >= 8);
                Assert.Equal(DropReasons * 2 + ForwardReasons * 2, counters.RootElement.GetArrayLength());
            }
            var table = Cmd.TryRun(Binaries.EbpfProxy, "metrics", "--bpffs", s.BpfFsPath);
            Assert.Matches(@"reject_undefined_port\s+ingress\s+dropped\s+1\s", table.Stdout);
            // Nothing pinned, and not root: one clear error line each.
            var empty = Directory.CreateTempSubdirectory("ebpfproxy-empty-");
            try
            {
                var none = Cmd.TryRun(Binaries.EbpfProxy, "metrics", "--bpffs", empty.FullName);
                Assert.Equal(1, none.ExitCode);
                Assert.StartsWith($"error: no bpffs is mounted at {empty.FullName}", none.Stderr.Trim(), StringComparison.Ordinal);
            }
            finally
            {
                empty.Delete();
            }
            var unprivileged = Cmd.TryRun("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", Binaries.EbpfProxy, "metrics", "--bpffs", s.BpfFsPath);
            Assert.Equal(1, unprivileged.ExitCode);
            Assert.Contains("needs root", unprivileged.Stderr, StringComparison.Ordinal);

            // Map fill, programmed objects, SLIs, runtime and process metrics.
            Assert.Equal(65536, await prom.WaitForValueAsync("ebpfproxy_map_capacity{map=\"ct4\"}", v => v == 65536));
            Assert.True(await prom.WaitForValueAsync("ebpfproxy_conntrack_entries{table=\"service\"}", v => v >= 16) >= 16);
            Assert.True(await prom.WaitForValueAsync("ebpfproxy_map_entries{map=\"lb4_services\"}", v => v > 0) > 0);
            Assert.True(await prom.WaitForValueAsync("count(ebpfproxy_map_update_failures_total)", v => v >= 10) >= 10);
            Assert.True(await prom.WaitForValueAsync("ebpfproxy_sync_proxy_rules_last_timestamp_seconds", v => v > 1.7e9) > 1.7e9);
            Assert.True(await prom.WaitForValueAsync("sum(ebpfproxy_sync_proxy_rules_duration_seconds_count)", v => v >= 1) >= 1);
            Assert.True(await prom.WaitForValueAsync("count({__name__=~\"dotnet_.+\"})", v => v > 0) > 0);
            Assert.True(await prom.WaitForValueAsync("count({__name__=~\"process_.+\"})", v => v > 0) > 0);

            // The chart's dashboard and alerts against this traffic: an EndpointSlice carrying the
            // controller's trigger time gives the network programming latency panel its sample.
            s.WriteExtraManifest("timed.yaml", $$$"""
                apiVersion: v1
                kind: Service
                metadata: {name: timed, namespace: default}
                spec: {clusterIP: 10.96.0.43, ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]}
                ---
                apiVersion: discovery.k8s.io/v1
                kind: EndpointSlice
                metadata:
                  name: timed-1
                  namespace: default
                  labels: {kubernetes.io/service-name: timed}
                  annotations: {endpoints.kubernetes.io/last-change-trigger-time: "{{{DateTime.UtcNow.AddSeconds(-1):yyyy-MM-ddTHH:mm:ssZ}}}"}
                addressType: IPv4
                ports: [{name: http, port: 8080, protocol: TCP}]
                endpoints: [{addresses: ["{{{s.Echo["echo-1"].Ip}}}"], conditions: {ready: true}}]
                """);
            Assert.True(await prom.WaitForValueAsync("sum(ebpfproxy_network_programming_duration_seconds_count)", v => v >= 1) >= 1);
            await ChartMonitoring.CheckAsync(prom, output);

            // `lb list` flags a service without a usable endpoint.
            static bool Flagged(string json) => JsonDocument.Parse(json).RootElement.EnumerateArray()
                .Any(r => r.GetProperty("frontend").GetString() == $"{ProxyScenario.Vip}:{ProxyScenario.ServicePort}/TCP" && r.GetProperty("noUsableEndpoint").GetBoolean());
            Assert.False(Flagged(Cmd.Run(Binaries.EbpfProxy, "lb", "list", "--bpffs", s.BpfFsPath, "-o", "json").Stdout));
            s.WriteManifest([]);
            await WaitUntilAsync(() => Task.FromResult(Flagged(Cmd.Run(Binaries.EbpfProxy, "lb", "list", "--bpffs", s.BpfFsPath, "-o", "json").Stdout)), "lb list to flag the emptied service");
            Assert.Contains("NO USABLE ENDPOINT", Cmd.Run(Binaries.EbpfProxy, "lb", "list", "--bpffs", s.BpfFsPath).Stdout, StringComparison.Ordinal);
        }
        catch
        {
            s.Daemon.WriteOutputTo(output, "daemon");
            prom.Process.WriteOutputTo(output, "prometheus");
            throw;
        }
    }

    /// <summary>
    /// What a scrape costs with a full conntrack map (512K entries): the walk is in the background,
    /// so a scrape reads the counters and the last walk's result. A figure, not a timing assertion
    /// (docs/metrics.md); the test asserts that the scrape reports the full table.
    /// </summary>
    [PrivilegedFact]
    public async Task AScrapeWithAFullConntrackMapServesTheBackgroundWalk()
    {
        const int ctMax = 524288;
        await using var s = await ProxyScenario.StartAsync(output, 1, ["echo-1"],
            ["--metrics-bind-address", $"127.0.0.1:{MetricsPort}", "--metrics-map-interval", "2", "--conntrack-max", ctMax.ToString(CultureInfo.InvariantCulture)]);
        using (var maps = LbMaps.OpenPinned(s.PinPath))
        {
            var ct = maps.Ct4;
            // Entries of a live (frontend, backend) pair, so the periodic resync keeps them.
            var services = maps.Lb4Services.Entries().ToList();
            var slot1 = services.First(e => e.Key.Proto == 6 && e.Key.Slot == 1);
            var frontend = services.First(e => e.Key.Slot == 0 && e.Key.AddressBe == slot1.Key.AddressBe && e.Key.PortBe == slot1.Key.PortBe && e.Key.Proto == 6 && e.Key.Scope == slot1.Key.Scope);
            var live = new CtEntry { BackendId = slot1.Value.BackendId, RevNatId = frontend.Value.RevNatId, LastSeenNs = 1, CreatedNs = 1 };
            Assert.Equal((uint)ctMax, ct.Map.MaxEntries);
            // Entries for addresses no test namespace uses (TEST-NET-2), filled in batches.
            var keys = new Ct4Key[4096];
            var values = new CtEntry[4096];
            for (int done = 0; done < ctMax;)
            {
                int n = Math.Min(keys.Length, ctMax - done);
                for (int i = 0; i < n; i++)
                {
                    int k = done + i;
                    keys[i] = new Ct4Key
                    {
                        SaddrBe = Be32Address.FromAddress(new IPAddress(new byte[] { 198, 18, (byte)(k >> 16), (byte)(k >> 8) })),
                        DaddrBe = Be32Address.FromAddress(IPAddress.Parse("198.19.0.1")),
                        SportBe = Be16.FromHost((ushort)(1024 + (k & 0xff))),
                        DportBe = Be16.FromHost(80),
                        Proto = 6,
                        Dir = CtDirection.Service,
                    };
                    values[i] = live;
                }
                ct.UpdateBatch(keys.AsSpan(0, n), values.AsSpan(0, n));
                done += n;
            }
        }
        var full = await WaitForMetricAsync(s, "ebpfproxy_conntrack_entries{", "table=\"service\"", v => v >= ctMax * 0.99);
        output.WriteLine($"conntrack entries reported: {full}");
        var walk = await WaitForMetricAsync(s, "ebpfproxy_map_usage_walk_duration_seconds", "", _ => true);
        // Scrapes spaced beyond the exporter's 300 ms response cache, so each one is computed.
        var times = new List<double>();
        for (int i = 0; i < 15; i++)
        {
            await Task.Delay(350);
            var sw = Stopwatch.StartNew();
            var (status, body) = await s.GetAsync(MetricsPort, "/metrics");
            sw.Stop();
            Assert.Equal(200, status);
            Assert.Contains("ebpfproxy_conntrack_entries", body, StringComparison.Ordinal);
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        output.WriteLine($"scrape with a full conntrack map ({ctMax} entries): median {times[times.Count / 2]:F1} ms, min {times[0]:F1} ms, max {times[^1]:F1} ms; background walk {walk * 1000:F0} ms");
    }

    /// <summary>Polls /metrics for a sample line starting with <paramref name="prefix"/> and containing <paramref name="label"/>.</summary>
    private static async Task<double> WaitForMetricAsync(ProxyScenario s, string prefix, string label, Func<double, bool> ok)
    {
        var sw = Stopwatch.StartNew();
        string last = "";
        while (sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            var (_, body) = await s.GetAsync(MetricsPort, "/metrics");
            foreach (var line in body.Split('\n'))
            {
                if (line.StartsWith(prefix, StringComparison.Ordinal) && line.Contains(label, StringComparison.Ordinal) && double.TryParse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture, out var v))
                {
                    last = line;
                    if (ok(v))
                        return v;
                }
            }
            await Task.Delay(200);
        }
        throw new TimeoutException($"{prefix}: last seen '{last}'");
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!await condition())
        {
            if (sw.Elapsed > TimeSpan.FromSeconds(30))
                throw new TimeoutException($"waited 30 s for {what}");
            await Task.Delay(200);
        }
    }

    private static int DropReasons => Datapath.Observability.KernelCounters.Reasons.Count(ReasonInfo.IsDrop);
    private static int ForwardReasons => Datapath.Observability.KernelCounters.Reasons.Count(r => !ReasonInfo.IsDrop(r));
}

/// <summary>A Prometheus server in a test namespace, with a generated config and its own storage, removed afterwards.</summary>
public sealed class Prometheus : IAsyncDisposable
{
    private readonly NetNs _ns;
    private readonly string _dir;
    private readonly ITestOutputHelper _output;

    private Prometheus(NetNs ns, string dir, DaemonProcess process, ITestOutputHelper output)
    {
        _ns = ns;
        _dir = dir;
        Process = process;
        _output = output;
    }

    public DaemonProcess Process { get; }

    public const string Binary = "/usr/bin/prometheus";

    public static async Task<Prometheus> StartAsync(NetNs ns, string target, ITestOutputHelper output, string? ruleFile = null)
    {
        if (!File.Exists(Binary))
            throw new InvalidOperationException($"{Binary} is missing: `make deps` installs Debian's prometheus package");
        var dir = Directory.CreateTempSubdirectory("ebpfproxy-prometheus-").FullName;
        var config = Path.Combine(dir, "prometheus.yml");
        File.WriteAllText(config, $"""
            global: {"{"}scrape_interval: 1s, evaluation_interval: 1s{"}"}
            {(ruleFile is null ? "" : $"rule_files: [{ruleFile}]")}
            scrape_configs:
            - job_name: ebpf-proxy
              static_configs: [{"{"}targets: ["{target}"]{"}"}]
            """);
        var process = DaemonProcess.Start(ns, Binary,
            [$"--config.file={config}", $"--storage.tsdb.path={Path.Combine(dir, "data")}", $"--web.listen-address=127.0.0.1:{MetricsTests.PrometheusPort}"]);
        var p = new Prometheus(ns, dir, process, output);
        try
        {
            var sw = Stopwatch.StartNew();
            while (true)
            {
                try
                {
                    if ((await p.GetAsync("/-/ready")).Status == 200)
                        break;
                }
                catch (HttpRequestException)
                {
                }
                if (process.HasExited || sw.Elapsed > TimeSpan.FromSeconds(30))
                    throw new InvalidOperationException($"Prometheus did not become ready\n{process.FormatOutput()}");
                await Task.Delay(100);
            }
            return p;
        }
        catch
        {
            await p.DisposeAsync();
            throw;
        }
    }

    public async Task<(int Status, string Body)> GetAsync(string pathAndQuery)
    {
        using var http = new HttpClient(NetNsHttp.CreateHandler(_ns)) { Timeout = TimeSpan.FromSeconds(5) };
        using var response = await http.GetAsync($"http://127.0.0.1:{MetricsTests.PrometheusPort}{pathAndQuery}");
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>Runs an instant query; the values of its result vector (empty when no series matched).</summary>
    public async Task<List<(Dictionary<string, string> Labels, double Value)>> QueryAsync(string promql)
    {
        var (status, body) = await GetAsync("/api/v1/query?query=" + Uri.EscapeDataString(promql));
        using var doc = JsonDocument.Parse(body);
        if (status != 200 || doc.RootElement.GetProperty("status").GetString() != "success")
            throw new InvalidOperationException($"query '{promql}' failed ({status}): {body}");
        var data = doc.RootElement.GetProperty("data");
        var rows = new List<(Dictionary<string, string>, double)>();
        if (data.GetProperty("resultType").GetString() == "scalar")
        {
            rows.Add(([], double.Parse(data.GetProperty("result")[1].GetString()!, CultureInfo.InvariantCulture)));
            return rows;
        }
        foreach (var r in data.GetProperty("result").EnumerateArray())
        {
            var labels = r.GetProperty("metric").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
            rows.Add((labels, double.Parse(r.GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture)));
        }
        return rows;
    }

    /// <summary>Polls a single-valued query until <paramref name="ok"/> holds (60 s); returns the value.</summary>
    public async Task<double> WaitForValueAsync(string promql, Func<double, bool> ok)
    {
        var sw = Stopwatch.StartNew();
        string last = "no series";
        while (sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            var rows = await QueryAsync(promql);
            if (rows.Count == 1)
            {
                last = rows[0].Value.ToString(CultureInfo.InvariantCulture);
                if (ok(rows[0].Value))
                {
                    _output.WriteLine($"{promql} = {last}");
                    return rows[0].Value;
                }
            }
            else if (rows.Count > 1)
                last = $"{rows.Count} series";
            await Task.Delay(250);
        }
        throw new TimeoutException($"{promql}: last result {last}");
    }

    public async ValueTask DisposeAsync()
    {
        await Process.DisposeAsync();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
