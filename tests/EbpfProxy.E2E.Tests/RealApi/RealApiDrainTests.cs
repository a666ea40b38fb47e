using System.Net;
using EbpfProxy.Testing.RealApi;
using k8s;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests.RealApi;

/// <summary>
/// Issue 9 item 2 against the real API server and EndpointSlice controller: established TCP connections to a
/// pod survive its readiness flip, its graceful deletion (30 s grace, still serving) and a rolling update of
/// the backends, with fresh connections going on beside them: 0 failed requests, 0 reset connections.
/// </summary>
[Collection(RealApiCollection.Name)]
public sealed class RealApiDrainTests(RealApiFixture fixture, ITestOutputHelper output)
{
    private static readonly TimeSpan Converge = TimeSpan.FromSeconds(15);

    private async Task<(RealApiScenario S, IPAddress Vip)> StartAsync(int pods, IEnumerable<string> created)
    {
        var s = await RealApiScenario.CreateAsync(output, fixture, pods);
        try
        {
            var svc = await s.CreateServiceAsync();
            var names = created.ToList();
            foreach (var pod in names)
                await s.CreatePodAsync(pod);
            await RealApiTests.WaitForSliceAsync(s, names.Count);
            await s.StartDaemonAsync();
            await s.WaitForAttachmentsAsync();
            var vip = IPAddress.Parse(svc.Spec.ClusterIP);
            await s.WaitForMapBackendsAsync(vip, names, Converge);
            return (s, vip);
        }
        catch
        {
            await s.DisposeAsync();
            throw;
        }
    }

    [RealApiFact]
    public async Task ReadinessFlipAndGracefulDeletionResetNoEstablishedConnection()
    {
        var (s, vip) = await StartAsync(3, ["echo-1", "echo-2", "echo-3"]);
        await using var _s = s;
        await using var traffic = new Traffic();
        traffic.AddFreshConnections(s.Client.Ns, vip, 80);
        await traffic.AddLongLivedAsync(s.Client.Ns, vip, 80, 4, backend: "echo-2");
        await traffic.AddLongLivedAsync(s.Client.Ns, vip, 80, 3, backend: "echo-3");

        // Readiness flip of echo-2 (a failing probe): out of the maps, its 4 connections go on.
        await s.SetReadyAsync("echo-2", false);
        await s.WaitForMapBackendsAsync(vip, ["echo-1", "echo-3"], Converge);
        Assert.DoesNotContain("echo-2", await s.TcpRoundAsync(vip, 80, 10));
        await Task.Delay(3000);
        await s.SetReadyAsync("echo-2", true);
        await s.WaitForMapBackendsAsync(vip, ["echo-1", "echo-2", "echo-3"], Converge);

        // Graceful deletion of echo-3 (30 s grace, the pod still serving): terminating, out of the maps, its 3
        // connections go on; then the pod is gone from the API and they still do.
        await s.DeletePodAsync("echo-3", grace: 30);
        await s.WaitForMapBackendsAsync(vip, ["echo-1", "echo-2"], Converge);
        Assert.DoesNotContain("echo-3", await s.TcpRoundAsync(vip, 80, 10));
        await Task.Delay(3000);
        await s.DeletePodAsync("echo-3", grace: 0);
        await WaitForSliceEndpointsAsync(s, 2);
        await Task.Delay(3000);

        var (requests, failures, resets) = (traffic.Requests, traffic.Failures, traffic.Resets);
        output.WriteLine($"readiness flip + graceful deletion with 7 held connections: {requests} requests, {failures} failed, {resets} connections reset\n{traffic.Errors}");
        Assert.True(requests > 100, $"only {requests} requests");
        Assert.Equal(0, failures);
        Assert.Equal(0, resets);
    }

    /// <summary>
    /// A Deployment's rolling update (maxSurge 1, maxUnavailable 0), played as its controller and the kubelet
    /// would: a new pod is created, turns ready, then an old pod is deleted with a 30 s grace and stays
    /// terminating (serving) while its connections finish; one by one for the three pods.
    /// </summary>
    [RealApiFact]
    public async Task RollingUpdateKeepsLongLivedConnectionsToTheOldPods()
    {
        var (s, vip) = await StartAsync(6, ["echo-1", "echo-2", "echo-3"]);
        await using var _s = s;
        await using var traffic = new Traffic();
        traffic.AddFreshConnections(s.Client.Ns, vip, 80);
        foreach (var old in new[] { "echo-1", "echo-2", "echo-3" })
            await traffic.AddLongLivedAsync(s.Client.Ns, vip, 80, 2, backend: old);
        await traffic.AddLongLivedAsync(s.Client.Ns, vip, 80, 3);

        var serving = new List<string> { "echo-1", "echo-2", "echo-3" };
        for (int i = 1; i <= 3; i++)
        {
            string old = $"echo-{i}", next = $"echo-{i + 3}";
            await s.CreatePodAsync(next, ready: false);
            await Task.Delay(500);
            await s.SetReadyAsync(next, true);
            serving.Add(next);
            await s.WaitForMapBackendsAsync(vip, serving, Converge);
            await s.DeletePodAsync(old, grace: 30);
            serving.Remove(old);
            await s.WaitForMapBackendsAsync(vip, serving, Converge);
            await Task.Delay(2000);
        }
        Assert.Equal(["echo-4", "echo-5", "echo-6"], (await s.TcpRoundAsync(vip, 80, 20)).Distinct().Order());
        // The old pods finish (their grace ends): gone from the API, their connections still answered.
        foreach (var old in new[] { "echo-1", "echo-2", "echo-3" })
            await s.DeletePodAsync(old, grace: 0);
        await WaitForSliceEndpointsAsync(s, 3);
        await Task.Delay(3000);

        var (requests, failures, resets) = (traffic.Requests, traffic.Failures, traffic.Resets);
        output.WriteLine($"rolling update of 3 pods with 6 connections held to the old pods and 3 more: {requests} requests, {failures} failed, {resets} connections reset\n{traffic.Errors}");
        Assert.True(requests > 100, $"only {requests} requests");
        Assert.Equal(0, failures);
        Assert.Equal(0, resets);
    }

    /// <summary>Waits until the controller's slices for service echo list <paramref name="count"/> endpoints in any condition (deleted pods gone).</summary>
    private static async Task WaitForSliceEndpointsAsync(RealApiScenario s, int count)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var slices = await s.Api.DiscoveryV1.ListNamespacedEndpointSliceAsync(s.Namespace, labelSelector: "kubernetes.io/service-name=echo");
            var n = slices.Items.SelectMany(i => i.Endpoints ?? []).Count();
            if (n == count)
                return;
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"the slices list {n} endpoints, want {count}");
            await Task.Delay(200);
        }
    }
}
