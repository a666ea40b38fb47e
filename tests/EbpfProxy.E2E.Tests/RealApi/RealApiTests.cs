using System.Net;
using EbpfProxy.Testing;
using EbpfProxy.Testing.RealApi;
using k8s;
using k8s.Models;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests.RealApi;

/// <summary>
/// The real daemon against a real kube-apiserver v1.28 with etcd and the real EndpointSlice controller
/// (see <see cref="ControlPlane"/>): what an in-process fake cannot prove (RBAC as the chart deploys it,
/// slices the controller derives from pod status, bookmarks and expiry as the server does them).
/// </summary>
[Collection(RealApiCollection.Name)]
public sealed class RealApiTests(RealApiFixture fixture, ITestOutputHelper output)
{
    [RealApiFact]
    public async Task FirstSyncProgramsServicesWhoseSlicesTheControllerBuiltFromPods()
    {
        await using var s = await RealApiScenario.CreateAsync(output, fixture, 3);
        var svc = await s.CreateServiceAsync();
        foreach (var pod in new[] { "echo-1", "echo-2" })
            await s.CreatePodAsync(pod);
        await s.CreatePodAsync("echo-3", ready: false);
        var vip = IPAddress.Parse(svc.Spec.ClusterIP);
        await WaitForSliceAsync(s, 2);

        var first = await s.StartDaemonAsync();
        output.WriteLine(first);
        await s.WaitForAttachmentsAsync();
        await s.WaitForMapBackendsAsync(vip, ["echo-1", "echo-2"], TimeSpan.FromSeconds(10));
        Assert.Equal(["echo-1", "echo-2"], (await s.TcpRoundAsync(vip, 80, 20)).Distinct().Order());
        // Authenticated as the chart's ServiceAccount: no RBAC refusal anywhere in its log.
        Assert.DoesNotContain(s.Daemon.Output, l => l.Contains("Forbidden", StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>Waits until the controller's slices for service echo hold <paramref name="ready"/> ready endpoints.</summary>
    internal static async Task WaitForSliceAsync(RealApiScenario s, int ready, string service = "echo")
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var slices = await s.Api.DiscoveryV1.ListNamespacedEndpointSliceAsync(s.Namespace, labelSelector: $"kubernetes.io/service-name={service}");
            var n = slices.Items.SelectMany(i => i.Endpoints ?? []).Count(e => e.Conditions?.Ready == true);
            if (n == ready)
                return;
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"the EndpointSlice controller built {n} ready endpoints, want {ready}\n{s.ControlPlane.FormatOutput()}");
            await Task.Delay(100);
        }
    }
}
