using EbpfProxy.Testing.RealApi;
using k8s;
using k8s.Models;

namespace EbpfProxy.E2E.Tests.RealApi;

/// <summary>
/// One real control plane shared by every test of the <see cref="RealApiCollection"/> (start-up costs
/// seconds; each test works in Kubernetes namespaces of its own). The daemon's identity is the Helm chart's:
/// ServiceAccount, ClusterRole and binding as the chart renders them (<see cref="Chart.HelmChart"/>).
/// </summary>
public sealed class RealApiFixture : IAsyncLifetime
{
    public const string Release = "ebpf-proxy";
    public const string ReleaseNamespace = "kube-system";
    public const string NodeName = "node";

    private ControlPlane? _cp;

    public ControlPlane ControlPlane => _cp ?? throw new InvalidOperationException("the control plane did not start");

    public Kubernetes Admin => ControlPlane.Admin;

    public async Task InitializeAsync()
    {
        if (ControlPlaneAssets.GetSkipReason() is not null)
            return; // every test of the collection is skipped with that reason
        _cp = await ControlPlane.StartAsync();
        await _cp.ApplyChartRbacAsync(Chart.HelmChart.Render(), ReleaseNamespace);
        await Admin.CoreV1.CreateNodeAsync(new V1Node
        {
            Metadata = new V1ObjectMeta { Name = NodeName, Labels = new Dictionary<string, string> { ["topology.kubernetes.io/zone"] = "zone-a" } },
        });
    }

    public async Task DisposeAsync()
    {
        if (_cp is not null)
            await _cp.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class RealApiCollection : ICollectionFixture<RealApiFixture>
{
    public const string Name = "real API server";
}
