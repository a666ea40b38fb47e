using System.Diagnostics;
using EbpfProxy.Testing;
using k8s.Models;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests;

/// <summary>
/// The daemon as a real process in the node namespace, following a Kubernetes API server that
/// speaks the real wire format (the fake server listens inside the node namespace).
/// </summary>
public class ApiSourceTests(ITestOutputHelper output)
{
    [PrivilegedFact]
    public async Task ClusterIpTrafficFollowsEndpointSliceChangesMadeThroughTheApi()
    {
        await using var s = await ProxyScenario.StartWithApiAsync(output, 3, ["echo-1", "echo-2", "echo-3"]);
        Assert.Equal(["echo-1", "echo-2", "echo-3"], (await s.TcpRoundAsync(30)).Distinct().Order());
        Assert.Equal(["echo-1", "echo-2", "echo-3"], (await s.UdpRoundAsync(30)).Distinct().Order());

        s.SetApiBackends(["echo-2"]);
        var took = await s.WaitForMapBackendsAsync(["echo-2"], TimeSpan.FromSeconds(5));
        output.WriteLine($"3 -> 1 through the API programmed in {took.TotalMilliseconds:F0} ms");
        Assert.True(took < TimeSpan.FromSeconds(1), $"took {took}");
        Assert.All(await s.TcpRoundAsync(10), b => Assert.Equal("echo-2", b));

        s.Api!.Delete(ProxyScenario.EchoSlice([]));
        await s.WaitForMapBackendsAsync([], TimeSpan.FromSeconds(5));
        await Assert.ThrowsAsync<ProbeFailedException>(() =>
            TcpProbe.RequestAsync(s.Client.Ns, ProxyScenario.Vip, ProxyScenario.ServicePort, "x", TimeSpan.FromMilliseconds(700)));

        s.SetApiBackends(["echo-1", "echo-3"]);
        await s.WaitForMapBackendsAsync(["echo-1", "echo-3"], TimeSpan.FromSeconds(5));
        Assert.Equal(["echo-1", "echo-3"], (await s.TcpRoundAsync(20)).Distinct().Order());

        s.Api.Delete(ProxyScenario.EchoService());
        var sw = Stopwatch.StartNew();
        while (s.MapBackends() is not null)
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), "service deletion was not programmed");
            await Task.Delay(10);
        }
    }

    [PrivilegedFact]
    public async Task HealthCheckNodePortFollowsLocalEndpoints()
    {
        await using var s = await ProxyScenario.StartWithApiAsync(output, 1, ["echo-1"]);
        var lb = new V1Service
        {
            Metadata = new V1ObjectMeta { Name = "lb", NamespaceProperty = "default" },
            Spec = new V1ServiceSpec
            {
                Type = "LoadBalancer", ClusterIP = "10.96.0.77", ExternalTrafficPolicy = "Local", HealthCheckNodePort = 32001,
                Ports = [new V1ServicePort { Name = "http", Port = 80, TargetPort = 8080, Protocol = "TCP", NodePort = 30080 }],
            },
        };
        V1EndpointSlice Slice(string nodeName) => new()
        {
            Metadata = new V1ObjectMeta { Name = "lb-1", NamespaceProperty = "default", Labels = new Dictionary<string, string> { ["kubernetes.io/service-name"] = "lb" } },
            AddressType = "IPv4",
            Ports = [new Discoveryv1EndpointPort { Name = "http", Port = 8080, Protocol = "TCP" }],
            Endpoints = [new V1Endpoint { Addresses = [s.Echo["echo-1"].Ip.ToString()], NodeName = nodeName }],
        };
        s.Api!.Upsert(lb);
        s.Api.Upsert(Slice("node"));

        var (status, body) = await Eventually(() => s.GetAsync(32001), r => r.Status == 200);
        Assert.Contains("\"localEndpoints\":1", body);
        Assert.Contains("\"name\":\"lb\"", body);

        s.Api.Upsert(Slice("another-node"));
        (status, body) = await Eventually(() => s.GetAsync(32001), r => r.Status == 503);
        Assert.Contains("\"localEndpoints\":0", body);

        s.Api.Delete(lb);
        await Eventually<(int Status, string Body)>(async () =>
        {
            try
            {
                return await s.GetAsync(32001);
            }
            catch (HttpRequestException)
            {
                return (0, "closed");
            }
        }, r => r.Status == 0);
    }

    /// <summary>Polls <paramref name="probe"/> until <paramref name="done"/> holds (5 s at most); returns the last result.</summary>
    private static async Task<T> Eventually<T>(Func<Task<T>> probe, Func<T, bool> done)
    {
        var sw = Stopwatch.StartNew();
        T last;
        while (true)
        {
            try
            {
                last = await probe();
                if (done(last))
                    return last;
            }
            catch (HttpRequestException) when (sw.Elapsed < TimeSpan.FromSeconds(5))
            {
                last = default!;
            }
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"condition not reached; last: {last}");
            await Task.Delay(50);
        }
    }

    [PrivilegedFact]
    public async Task NothingIsWrittenBeforeEveryInformerHasListedAndARestartWritesNothing()
    {
        await using var s = await ProxyScenario.StartWithApiAsync(output, 2, ["echo-1", "echo-2"], waitForFirstSync: false);
        s.Api!.SetDown(true);
        await s.StartDaemonAsync(waitForFirstSync: false);
        await s.Daemon.WaitForOutputAsync(new System.Text.RegularExpressions.Regex("Waiting for every source"), TimeSpan.FromSeconds(30));
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.Equal(0, s.ServiceMapEntries());
        Assert.DoesNotContain(s.Daemon.Output, l => l.Contains("Sync #", StringComparison.Ordinal));
        var (status, body) = await s.GetHealthAsync();
        Assert.Equal(503, status);
        Assert.Contains("no successful sync yet", body);

        s.Api.SetDown(false);
        await s.Daemon.WaitForOutputAsync(new System.Text.RegularExpressions.Regex("Sync #1 "), TimeSpan.FromSeconds(30));
        await s.WaitForMapBackendsAsync(["echo-1", "echo-2"], TimeSpan.FromSeconds(5));
        // Healthy once the whole first pass is done: "Sync #1" is logged after the service stage,
        // /healthz turns 200 after the policy stage that follows it.
        Assert.Equal(200, (await Eventually(() => s.GetHealthAsync(), r => r.Status == 200)).Status);
        Assert.Equal(200, (await s.GetHealthAsync("/livez")).Status);
        await s.WaitForAttachmentsAsync(3);
        using var held = await TcpProbe.ConnectAsync(s.Client.Ns, ProxyScenario.Vip, ProxyScenario.ServicePort, TimeSpan.FromSeconds(3));
        var backend = (await held.RequestAsync("a", TimeSpan.FromSeconds(3))).Split(' ')[0];

        // Restart against the unchanged cluster: zero map writes, the connection keeps its backend.
        await s.Daemon.DisposeAsync();
        var firstSync = await s.StartDaemonAsync();
        Assert.Contains(": 0 writes, 0 deletes", firstSync);
        Assert.Equal($"{backend} b", await held.RequestAsync("b", TimeSpan.FromSeconds(3)));
    }

    [PrivilegedFact]
    public async Task AMinuteLongApiOutageLeavesTheDatapathUntouchedAndConvergesAfterwards()
    {
        await using var s = await ProxyScenario.StartWithApiAsync(output, 3, ["echo-1", "echo-2"]);
        await s.WaitForMapBackendsAsync(["echo-1", "echo-2"], TimeSpan.FromSeconds(5));

        s.Api!.SetDown(true);
        await s.Daemon.WaitForOutputAsync(new System.Text.RegularExpressions.Regex("Watch of endpointslices failed"), TimeSpan.FromSeconds(10));
        // The cluster changes while the daemon cannot see it.
        s.SetApiBackends(["echo-3"]);
        var outage = Stopwatch.StartNew();
        var seen = new HashSet<string>();
        while (outage.Elapsed < TimeSpan.FromSeconds(60))
        {
            // Backends are chosen at random per connection: each reply must come from the old set,
            // and over the outage both old backends must keep answering.
            foreach (var backend in await s.TcpRoundAsync(6))
            {
                Assert.Contains(backend, new[] { "echo-1", "echo-2" });
                seen.Add(backend);
            }
            Assert.False(s.Daemon.HasExited, "the daemon exited during the outage");
            await Task.Delay(TimeSpan.FromSeconds(5));
        }
        Assert.Equal(["echo-1", "echo-2"], seen.Order());
        Assert.True(s.MapBackends()!.SetEquals([s.Echo["echo-1"].Ip, s.Echo["echo-2"].Ip]));

        s.Api.SetDown(false);
        var took = await s.WaitForMapBackendsAsync(["echo-3"], TimeSpan.FromSeconds(45));
        output.WriteLine($"converged {took.TotalSeconds:F1} s after the API server came back");
        Assert.All(await s.TcpRoundAsync(10), b => Assert.Equal("echo-3", b));
    }
}
