using System.Diagnostics;
using System.Net;
using EbpfProxy.Testing;
using EbpfProxy.Testing.RealApi;
using k8s;
using k8s.Models;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests.RealApi;

/// <summary>Live changes, an API outage and a forced watch expiry against the real control plane, each with real traffic.</summary>
[Collection(RealApiCollection.Name)]
public sealed class RealApiLiveTests(RealApiFixture fixture, ITestOutputHelper output)
{
    private static readonly TimeSpan Converge = TimeSpan.FromSeconds(15);

    private static async Task<(RealApiScenario S, IPAddress Vip, int NodePort)> StartAsync(ITestOutputHelper output, RealApiFixture fixture, int pods, string type = "ClusterIP")
    {
        var s = await RealApiScenario.CreateAsync(output, fixture, pods);
        try
        {
            var svc = await s.CreateServiceAsync(type: type);
            foreach (var pod in s.Echo.Keys)
                await s.CreatePodAsync(pod);
            await RealApiTests.WaitForSliceAsync(s, pods);
            await s.StartDaemonAsync();
            await s.WaitForAttachmentsAsync();
            var vip = IPAddress.Parse(svc.Spec.ClusterIP);
            await s.WaitForMapBackendsAsync(vip, s.Echo.Keys, Converge);
            return (s, vip, svc.Spec.Ports.First(p => p.Protocol == "TCP").NodePort ?? 0);
        }
        catch
        {
            await s.DisposeAsync();
            throw;
        }
    }

    [RealApiFact]
    public async Task ReadinessDeletionScalePortsNodePortPolicyRelabelAndDeletionReachTheDatapath()
    {
        var (s, vip, nodePort) = await StartAsync(output, fixture, 3, type: "NodePort");
        await using var _ = s;
        string[] all = ["echo-1", "echo-2", "echo-3"];
        Assert.Equal(all, (await s.TcpRoundAsync(vip, 80, 20)).Distinct().Order());
        Assert.NotEqual(0, nodePort);
        Assert.Equal(all, (await s.TcpRoundAsync(RealApiScenario.NodeAddress, nodePort, 20, s.Outside)).Distinct().Order());

        // Readiness flip, as a failing probe does it.
        await s.SetReadyAsync("echo-2", false);
        await s.WaitForMapBackendsAsync(vip, ["echo-1", "echo-3"], Converge);
        Assert.DoesNotContain("echo-2", await s.TcpRoundAsync(vip, 80, 10));
        await s.SetReadyAsync("echo-2", true);
        await s.WaitForMapBackendsAsync(vip, all, Converge);

        // Graceful deletion: terminating at once (no kubelet ends it), gone when forced.
        await s.DeletePodAsync("echo-3", grace: 30);
        await s.WaitForMapBackendsAsync(vip, ["echo-1", "echo-2"], Converge);
        Assert.DoesNotContain("echo-3", await s.TcpRoundAsync(vip, 80, 10));
        await s.DeletePodAsync("echo-3", grace: 0);
        // Scale up again: a new pod with the same address.
        await s.CreatePodAsync("echo-3");
        await s.WaitForMapBackendsAsync(vip, all, Converge);
        Assert.Equal(all, (await s.TcpRoundAsync(vip, 80, 20)).Distinct().Order());

        // Port change: the http port now targets 9090, where each pod answers under another name.
        await s.PatchServiceAsync("echo", new { spec = new { ports = new object[]
        {
            new { name = "http", port = 80, targetPort = RealApiScenario.OtherTargetPort, protocol = "TCP", nodePort },
            new { name = "udp", port = 80, targetPort = RealApiScenario.TargetPort, protocol = "UDP" },
        } } });
        await Eventually(async () => (await s.TcpRoundAsync(vip, 80, 6)).All(b => b.EndsWith($":{RealApiScenario.OtherTargetPort}", StringComparison.Ordinal)),
            "ClusterIP traffic goes to the new target port");
        await Eventually(async () => (await s.TcpRoundAsync(RealApiScenario.NodeAddress, nodePort, 6, s.Outside)).All(b => b.EndsWith($":{RealApiScenario.OtherTargetPort}", StringComparison.Ordinal)),
            "NodePort traffic goes to the new target port");

        // Relabel: echo-1 leaves the selector.
        await s.PatchPodAsync("echo-1", new { metadata = new { labels = new Dictionary<string, string?> { ["app"] = "other" } } });
        await s.WaitForMapBackendsAsync(vip, ["echo-2", "echo-3"], Converge);
        Assert.DoesNotContain($"echo-1:{RealApiScenario.OtherTargetPort}", await s.TcpRoundAsync(vip, 80, 10));

        // NetworkPolicy: the echo pods admit only pods labelled role=client on 9090; the client pod is one.
        await s.CreateClientPodAsync(role: "other");
        await s.CreateOnlyClientsPolicyAsync(RealApiScenario.OtherTargetPort);
        await Eventually(async () => !await ConnectsAsync(s.Client.Ns, vip, 80), "the policy isolates the echo pods from the client (role=other)");
        // The relabel that admits it.
        await s.PatchPodAsync("client", new { metadata = new { labels = new Dictionary<string, string?> { ["role"] = "client" } } });
        await Eventually(async () => await ConnectsAsync(s.Client.Ns, vip, 80), "the relabelled client is admitted");
        Assert.Equal(["echo-2:9090", "echo-3:9090"], (await s.TcpRoundAsync(vip, 80, 20)).Distinct().Order());

        // Service deletion: the frontend goes.
        await s.Api.CoreV1.DeleteNamespacedServiceAsync("echo", s.Namespace);
        await s.WaitForMapBackendsAsync(vip, null, Converge);
        Assert.False(await ConnectsAsync(s.Client.Ns, vip, 80));
    }

    [RealApiFact]
    public async Task ThirtySecondApiOutageUnderTrafficLosesNothingAndConvergesAfterRecovery()
    {
        var (s, vip, _) = await StartAsync(output, fixture, 3);
        await using var _s = s;
        string[] all = ["echo-1", "echo-2", "echo-3"];
        await using var traffic = new Traffic();
        traffic.AddFreshConnections(s.Client.Ns, vip, 80);
        await traffic.AddLongLivedAsync(s.Client.Ns, vip, 80, 4);

        await fixture.ControlPlane.KillApiServerAsync();
        var outage = Stopwatch.StartNew();
        try
        {
            while (outage.Elapsed < TimeSpan.FromSeconds(30))
            {
                Assert.False(s.Daemon.HasExited, "the daemon exited during the outage");
                Assert.True(s.MapBackends(vip)!.SetEquals(all.Select(n => s.Echo[n].Ip)), "the maps changed during the outage");
                await Task.Delay(1000);
            }
        }
        finally
        {
            await fixture.ControlPlane.RestartApiServerAsync();
        }
        // Traffic first (the change below takes a backend away from the held connections).
        var (requests, failures, resets) = (traffic.Requests, traffic.Failures, traffic.Resets);
        output.WriteLine($"traffic through the outage: {requests} requests, {failures} failed, {resets} connections reset\n{traffic.Errors}");
        Assert.True(requests > 100, $"only {requests} requests");
        Assert.Equal(0, failures);
        Assert.Equal(0, resets);

        // Converged: a Service and its EndpointSlice (managed by the test, so the controller manager's own
        // recovery does not count) created the moment the API is back reach the maps.
        var recovered = Stopwatch.StartNew();
        var probe = await s.Api.CoreV1.CreateNamespacedServiceAsync(new V1Service
        {
            Metadata = new V1ObjectMeta { Name = "probe", NamespaceProperty = s.Namespace },
            Spec = new V1ServiceSpec { Ports = [new V1ServicePort { Name = "http", Port = 80, TargetPort = RealApiScenario.TargetPort, Protocol = "TCP" }] },
        }, s.Namespace);
        await s.Api.DiscoveryV1.CreateNamespacedEndpointSliceAsync(new V1EndpointSlice
        {
            Metadata = new V1ObjectMeta
            {
                Name = "probe-1", NamespaceProperty = s.Namespace,
                Labels = new Dictionary<string, string> { ["kubernetes.io/service-name"] = "probe", ["endpointslice.kubernetes.io/managed-by"] = "e2e-test" },
            },
            AddressType = "IPv4",
            Ports = [new Discoveryv1EndpointPort { Name = "http", Port = RealApiScenario.TargetPort, Protocol = "TCP" }],
            Endpoints = [new V1Endpoint { Addresses = [s.Echo["echo-2"].Ip.ToString()], Conditions = new V1EndpointConditions { Ready = true }, NodeName = RealApiFixture.NodeName }],
        }, s.Namespace);
        // The informers' backoff grew during the outage (up to 30 s, +-20 %): they may wait that long once.
        await s.WaitForMapBackendsAsync(IPAddress.Parse(probe.Spec.ClusterIP), ["echo-2"], TimeSpan.FromSeconds(60));
        output.WriteLine($"outage 30 s: a service created when the API server was ready again reached the maps {recovered.Elapsed.TotalSeconds:F1} s later");
        Assert.Equal(["echo-2"], (await s.TcpRoundAsync(IPAddress.Parse(probe.Spec.ClusterIP), 80, 5)).Distinct());
    }

    [RealApiFact]
    public async Task ForcedWatchExpiryRelistsAndNoticesDeletesMadeWhileCutOff()
    {
        var (s, vip, _) = await StartAsync(output, fixture, 3);
        await using var _s = s;
        // Cut the daemon off (frozen), change the cluster, compact etcd and restart the API server so
        // no watch cache still holds the daemon's resource version.
        Assert.True(s.Daemon.SendSignal(19)); // SIGSTOP
        try
        {
            await s.DeletePodAsync("echo-2", grace: 0);
            await s.SetReadyAsync("echo-3", false);
            await RealApiTests.WaitForSliceAsync(s, 1);
            for (int i = 0; i < 20; i++)
                await s.Api.CoreV1.CreateNamespacedConfigMapAsync(new V1ConfigMap { Metadata = new V1ObjectMeta { Name = $"churn-{i}" } }, s.Namespace);
            var revision = await fixture.ControlPlane.CompactEtcdAsync();
            output.WriteLine($"etcd compacted at revision {revision}");
            await fixture.ControlPlane.KillApiServerAsync();
            await fixture.ControlPlane.RestartApiServerAsync();
        }
        finally
        {
            s.Daemon.SendSignal(18); // SIGCONT
        }
        await s.WaitForMapBackendsAsync(vip, ["echo-1"], TimeSpan.FromSeconds(60));
        // The log is read by another thread: under load the line may follow the maps by a moment.
        var logged = Stopwatch.StartNew();
        while (!s.Daemon.Output.Any(l => l.Contains("expired", StringComparison.Ordinal) && l.Contains("listing again", StringComparison.Ordinal)))
        {
            Assert.True(logged.Elapsed < TimeSpan.FromSeconds(30), "no informer logged an expired watch followed by a new list:\n" + string.Join('\n', s.Daemon.Output.TakeLast(60)));
            await Task.Delay(200);
        }
        Assert.Equal(["echo-1"], (await s.TcpRoundAsync(vip, 80, 10)).Distinct());
    }

    internal static async Task<bool> ConnectsAsync(NetNs from, IPAddress vip, int port)
    {
        try
        {
            using var c = await TcpProbe.ConnectAsync(from, vip, port, TimeSpan.FromMilliseconds(700));
            await c.RequestAsync("ping", TimeSpan.FromMilliseconds(700));
            return true;
        }
        catch (Exception e) when (e is ProbeFailedException or TimeoutException or IOException or System.Net.Sockets.SocketException)
        {
            return false;
        }
    }

    internal static async Task Eventually(Func<Task<bool>> condition, string what)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if (await condition())
                    return;
            }
            catch (Exception e) when (e is ProbeFailedException or TimeoutException or IOException or Xunit.Sdk.XunitException && sw.Elapsed < Converge)
            {
            }
            Assert.True(sw.Elapsed < Converge, $"not within {Converge}: {what}");
            await Task.Delay(200);
        }
    }
}
