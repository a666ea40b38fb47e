using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using EbpfProxy.Testing;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests;

/// <summary>
/// `observe` with each filter against real traffic: new service connections with their tuple
/// before and after DNAT, the service, the verdict and the interface; a REJECT by reason; a pod's
/// events; each read while the traffic happens, with the kernel's time of the event.
/// </summary>
public sealed class ObserveTests(ITestOutputHelper output)
{
    [PrivilegedFact]
    public async Task ObserveShowsNewConnectionsAndDropsWithEachFilter()
    {
        await using var s = await ProxyScenario.StartAsync(output, 2, ["echo-1", "echo-2"]);
        var vip = $"{ProxyScenario.Vip}:{ProxyScenario.ServicePort}";
        var backends = s.Echo.Values.Select(p => $"{p.Ip}:{ProxyScenario.TargetPort}").ToHashSet();

        // --service, --verdict forwarded: three new connections, each with its DNAT.
        var (events, before, after) = await ObserveAsync(s, ["--service", "default/echo", "--verdict", "forwarded", "--count", "3"],
            () => s.TcpRoundAsync(3));
        Assert.Equal(3, events.Count);
        foreach (var e in events)
        {
            Assert.Equal("forwarded", Str(e, "verdict"));
            Assert.Equal("service_new", Str(e, "reason"));
            Assert.Equal("default/echo:http", Str(e, "service"));
            Assert.StartsWith($"{s.Client.Ip}:", Str(e, "source"), StringComparison.Ordinal);
            Assert.Equal(vip, Str(e, "destination"));
            Assert.Equal(Str(e, "source"), Str(e, "translatedSource"));
            Assert.Contains(Str(e, "translatedDestination"), backends);
            Assert.Equal(s.Client.HostInterface, Str(e, "interface"));
            Assert.Equal(6, e.GetProperty("protocol").GetInt32());
            // The kernel's time of the event, not the time it was read.
            var at = DateTime.Parse(Str(e, "time"), null, System.Globalization.DateTimeStyles.RoundtripKind).ToUniversalTime();
            Assert.InRange(at, before.AddSeconds(-1), after.AddSeconds(1));
        }

        // --verdict dropped --reason: a port the ClusterIP does not define is rejected.
        (events, _, _) = await ObserveAsync(s, ["--verdict", "dropped", "--reason", "reject_undefined_port", "--count", "1"],
            async () => await Assert.ThrowsAnyAsync<Exception>(() => TcpProbe.ConnectAsync(s.Client.Ns, ProxyScenario.Vip, 81, TimeSpan.FromSeconds(3))));
        var drop = Assert.Single(events);
        Assert.Equal("dropped", Str(drop, "verdict"));
        Assert.Equal($"{ProxyScenario.Vip}:81", Str(drop, "destination"));
        Assert.StartsWith($"{s.Client.Ip}:", Str(drop, "source"), StringComparison.Ordinal);

        // --pod: only connections that reached echo-1 (after translation), none of echo-2's.
        var echo1 = s.Echo["echo-1"].Ip.ToString();
        (events, _, _) = await ObserveAsync(s, ["--pod", "default/echo-1", "--verdict", "forwarded", "--count", "2"], async () =>
        {
            int hits = 0;
            for (int i = 0; i < 80 && hits < 2; i++)
                hits += (await s.TcpRoundAsync(1)).Count(w => w == "echo-1");
        });
        Assert.Equal(2, events.Count);
        Assert.All(events, e => Assert.StartsWith(echo1 + ":", Str(e, "translatedDestination"), StringComparison.Ordinal));

        // Human lines; bad filters are refused by name.
        (var lines, _, _) = await ObserveTextAsync(s, ["--service", "default/echo:http", "--count", "1"], () => s.TcpRoundAsync(1));
        Assert.Matches(@"NEW\s+service_new ingress \S+: 10\.244\.0\.2:\d+ -> 10\.96\.0\.42:80 TCP => 10\.244\.0\.2:\d+ -> 10\.244\.0\.1[12]:8080 service default/echo:http", Assert.Single(lines));
        foreach (var (args, message) in new[]
        {
            (new[] { "--pod", "default/nobody" }, "--pod 'default/nobody': no such pod"),
            (["--service", "default/none"], "--service 'default/none': no such service"),
            (["--reason", "bogus"], "--reason 'bogus' is not a reason"),
        })
        {
            var r = Cmd.TryRun(Binaries.EbpfProxy, ["observe", "--bpffs", s.BpfFsPath, .. args]);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains(message, r.Stderr, StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// What flow events cost forwarding: new connections per second through the service with
    /// nobody observing (flow events off) and with `observe` reading every one (on), in alternating
    /// rounds so machine noise spreads over both. A figure for the report, not a timing assertion;
    /// asserted: every connection of the "on" rounds was reported, and observe turned flows off again.
    /// </summary>
    [PrivilegedFact]
    public async Task FlowEventOverheadSideBySide()
    {
        await using var s = await ProxyScenario.StartAsync(output, 1, ["echo-1"]);
        var window = TimeSpan.FromSeconds(3);
        var off = new List<double>();
        var on = new List<double>();
        for (int round = 0; round < 3; round++)
        {
            off.Add((await ConnectLoopAsync(s, window)) / window.TotalSeconds);
            int made;
            await using (var observe = DaemonProcess.Start(s.NodeNs, Binaries.EbpfProxy,
                ["observe", "--bpffs", s.BpfFsPath, "--verdict", "forwarded", "--flow-rate", "1000000", "-o", "json", "--duration", "60"]))
            {
                await observe.WaitForOutputAsync(new Regex("^observing"), TimeSpan.FromSeconds(30));
                made = await ConnectLoopAsync(s, window);
                on.Add(made / window.TotalSeconds);
                await observe.WaitForLinesAsync("\"service_new\"", made, TimeSpan.FromSeconds(30));
                Assert.True(observe.SendSignal(15)); // SIGTERM: observe puts the rate back
                await observe.WaitForExitAsync(TimeSpan.FromSeconds(30));
            }
            using var config = LibBpf.Net.BpfMap.OpenPinned(Path.Combine(s.PinPath, Datapath.Maps.LbMaps.FlowConfigMap));
            Assert.True(config.As<uint, Datapath.Maps.FlowConfig>().TryLookup(0, out var held));
            Assert.Equal(0u, held.Rate);
        }
        static double Median(List<double> v) => v.Order().ElementAt(v.Count / 2);
        output.WriteLine($"new connections/s through the service, {window.TotalSeconds:F0} s windows, 3 alternating rounds: " +
            $"flow events off {string.Join(" / ", off.Select(x => x.ToString("F0")))} (median {Median(off):F0}), " +
            $"on and read {string.Join(" / ", on.Select(x => x.ToString("F0")))} (median {Median(on):F0}); load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
    }

    private static async Task<int> ConnectLoopAsync(ProxyScenario s, TimeSpan window)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        int n = 0;
        while (sw.Elapsed < window)
        {
            using var c = await TcpProbe.ConnectAsync(s.Client.Ns, ProxyScenario.Vip, ProxyScenario.ServicePort, TimeSpan.FromSeconds(5));
            n++;
        }
        return n;
    }

    private static string Str(JsonElement e, string name) => e.GetProperty(name).GetString()!;

    /// <summary>Starts observe in the node namespace, waits until it reads, runs <paramref name="traffic"/>, and returns its JSON events.</summary>
    private async Task<(List<JsonElement> Events, DateTime Before, DateTime After)> ObserveAsync(ProxyScenario s, string[] args, Func<Task> traffic)
    {
        var (lines, before, after) = await ObserveTextAsync(s, ["-o", "json", .. args], traffic);
        return ([.. lines.Select(l => JsonDocument.Parse(l).RootElement.Clone())], before, after);
    }

    private async Task<(List<string> Lines, DateTime Before, DateTime After)> ObserveTextAsync(ProxyScenario s, string[] args, Func<Task> traffic)
    {
        await using var observe = DaemonProcess.Start(s.NodeNs, Binaries.EbpfProxy, ["observe", "--bpffs", s.BpfFsPath, "--duration", "60", .. args]);
        await observe.WaitForOutputAsync(new Regex("^observing"), TimeSpan.FromSeconds(30));
        var before = DateTime.UtcNow;
        await traffic();
        var after = DateTime.UtcNow;
        Assert.Equal(0, await observe.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        output.WriteLine(observe.FormatOutput("observe " + string.Join(' ', args)));
        return ([.. observe.Output.Where(l => l.StartsWith('{') || l.Contains("NEW ", StringComparison.Ordinal) || l.Contains("DROP ", StringComparison.Ordinal))], before, after);
    }
}
