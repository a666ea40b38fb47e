using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Metrics;
using EbpfProxy.Kubernetes.Api;
using EbpfProxy.Testing.KubeApi;
using k8s.Models;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace EbpfProxy.Kubernetes.Tests.Api;

public sealed class KubernetesApiSourceTests(ITestOutputHelper output) : IAsyncLifetime
{
    private FakeKubeApiServer _server = null!;
    private readonly ListLogger _logger = new();
    private readonly TempDirectory _dir = new();

    public async Task InitializeAsync() => _server = await FakeKubeApiServer.StartAsync();

    public async Task DisposeAsync()
    {
        foreach (var line in _logger.Timeline)
            output.WriteLine(line);
        await _server.DisposeAsync();
        _dir.Dispose();
    }

    private static KubernetesApiSourceOptions Options(string? kubeconfig = null) => new()
    {
        KubeconfigPath = kubeconfig,
        NodeName = "node-1",
        InitialBackoff = TimeSpan.FromMilliseconds(100),
        MaxBackoff = TimeSpan.FromSeconds(1),
        SilentWatchGrace = TimeSpan.FromSeconds(30),
    };

    private void SeedOneOfEach()
    {
        _server.Upsert(ApiHarness.Service("echo"));
        _server.Upsert(new V1EndpointSlice
        {
            Metadata = new V1ObjectMeta { Name = "echo-1", Labels = K8s.Labels("kubernetes.io/service-name=echo") },
            AddressType = "IPv4",
            Endpoints = [new V1Endpoint { Addresses = ["10.0.0.5"] }],
        });
        _server.Upsert(new V1NetworkPolicy
        {
            Metadata = new V1ObjectMeta { Name = "deny-all" },
            Spec = new V1NetworkPolicySpec { PodSelector = new V1LabelSelector(), PolicyTypes = ["Ingress"] },
        });
        _server.Upsert(K8s.Pod("local", "10.0.0.5", node: "node-1"));
        _server.Upsert(K8s.Pod("remote", "10.0.1.5", node: "node-2"));
        _server.Upsert(new V1Namespace { Metadata = new V1ObjectMeta { Name = "default", Labels = K8s.Labels("team=a") } });
        _server.Upsert(new V1Node { Metadata = new V1ObjectMeta { Name = "node-1" } });
        _server.Upsert(new V1Node { Metadata = new V1ObjectMeta { Name = "node-2" } });
    }

    [Fact]
    public async Task HostedThroughDependencyInjectionWithAKubeconfigItFollowsEveryResource()
    {
        SeedOneOfEach();
        var kubeconfig = _server.WriteKubeconfig(_dir.File("kubeconfig"));
        var services = new ServiceCollection();
        services.AddLogging(b => b.AddProvider(new ListLoggerProvider(_logger)).SetMinimumLevel(LogLevel.Debug));
        services.AddSingleton<ClusterStore>();
        services.AddKubernetesApiSource(Options(kubeconfig));
        await using var provider = services.BuildServiceProvider();
        var store = provider.GetRequiredService<ClusterStore>();
        var source = provider.GetRequiredService<KubernetesApiSource>();
        Assert.NotNull(provider.GetRequiredService<ProxyMetrics>());
        Assert.Same(source, Assert.Single(provider.GetServices<IHostedService>()));
        Assert.Equal(["services", "endpointslices", "networkpolicies", "pods", "namespaces", "nodes"], source.Informers.Select(i => i.Resource));

        await source.StartAsync(CancellationToken.None);
        try
        {
            await store.WaitForSyncedAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(15));
            var snapshot = store.Snapshot();
            Assert.Equal(["default/echo"], snapshot.Services.Keys);
            Assert.Equal(["default/echo-1"], snapshot.EndpointSlices.Keys);
            Assert.Equal(["default/deny-all"], snapshot.NetworkPolicies.Keys);
            Assert.Equal(["default/local", "default/remote"], snapshot.Pods.Keys); // remote pods too: policy identities
            Assert.Equal(["default"], snapshot.Namespaces.Keys);
            Assert.Equal(["node-1"], snapshot.Nodes.Keys); // only this node
            Assert.True(source.HasSynced);
            Assert.Contains(_server.RequestLog, r => r.Resource == "nodes" && r.Query.Contains("fieldSelector=metadata.name%3Dnode-1"));
            Assert.All(_server.RequestLog.Where(r => r.Resource is not null), r => Assert.Equal("Bearer " + FakeKubeApiServer.Token, r.Authorization));

            // Events of every kind flow, including this node's Node and nothing of the others.
            _server.Upsert(new V1Node { Metadata = new V1ObjectMeta { Name = "node-1", Labels = K8s.Labels("topology.kubernetes.io/zone=z1") } });
            _server.Upsert(new V1Node { Metadata = new V1ObjectMeta { Name = "node-3" } });
            _server.Delete<V1NetworkPolicy>("default", "deny-all");
            await Eventually.ThatAsync(() =>
            {
                var s = store.Snapshot();
                return s.NetworkPolicies.IsEmpty && s.Nodes["node-1"].Metadata.Labels?.ContainsKey("topology.kubernetes.io/zone") == true;
            }, "the policy deletion and the node update reached the store");
            Assert.Equal(["node-1"], store.Snapshot().Nodes.Keys);
            Assert.Contains(_logger.Entries, e => e.Id.Id == 3081);
        }
        finally
        {
            await source.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task StoreStaysUnsyncedUntilEveryInformerHasListed()
    {
        SeedOneOfEach();
        var store = new ClusterStore();
        using var client = _server.CreateClient();
        using var metrics = new ProxyMetrics();
        using var source = new KubernetesApiSource(client, store, metrics, new ListLoggerFactory(_logger), TimeProvider.System, Options());
        using var stop = new CancellationTokenSource();
        Assert.False(store.IsSynced);

        // Every informer but the EndpointSlice one lists and watches.
        var slices = source.Informers.Single(i => i.Resource == "endpointslices");
        var runs = source.Informers.Where(i => i != slices).Select(i => Task.Run(() => i.RunAsync(stop.Token))).ToList();
        await Eventually.ThatAsync(() => source.Informers.Count(i => i.HasSynced) == 5, "five informers listed");
        foreach (var resource in new[] { "services", "networkpolicies", "pods", "namespaces", "nodes" })
            await _server.WaitForWatchesAsync(resource);
        Assert.False(store.IsSynced);
        Assert.False(source.HasSynced);

        // Its first three lists fail: the gate holds through them.
        _server.FailNextRequests(3, 500);
        runs.Add(Task.Run(() => slices.RunAsync(stop.Token)));
        var gateHeld = true;
        while (_server.RequestLog.Count(r => r.Resource == "endpointslices" && r.Verb == "list") < 3)
        {
            gateHeld &= !store.IsSynced;
            await Task.Delay(5);
        }
        Assert.True(gateHeld);
        Assert.False(slices.HasSynced);

        await store.WaitForSyncedAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(15));
        Assert.True(slices.HasSynced);
        Assert.Equal(4, _server.ListCount("endpointslices"));
        Assert.Equal(3, _server.RequestLog.Count(r => r.Resource == "endpointslices" && r.StatusCode == 500));
        Assert.Equal(["default/echo-1"], store.Snapshot().EndpointSlices.Keys);

        await stop.CancelAsync();
        await Task.WhenAll(runs).WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task LocalPodsOnlyNarrowsThePodWatchToThisNode()
    {
        SeedOneOfEach();
        var store = new ClusterStore();
        using var client = _server.CreateClient();
        using var metrics = new ProxyMetrics();
        var options = Options();
        options.LocalPodsOnly = true;
        using var source = new KubernetesApiSource(client, store, metrics, NullLoggerFactory.Instance, TimeProvider.System, options);

        await source.StartAsync(CancellationToken.None);
        try
        {
            await source.ReadyAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(15));
            Assert.Equal(["default/local"], store.Snapshot().Pods.Keys);
        }
        finally
        {
            await source.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public void InClusterConfigurationOutsideAPodIsRefusedWithAHint()
    {
        var options = new KubernetesApiSourceOptions { NodeName = "node-1" };
        var ex = Assert.Throws<ArgumentException>(() => options.Validate(_ => null, _ => false));
        Assert.Contains("KUBERNETES_SERVICE_HOST", ex.Message);
        Assert.Contains("--kubeconfig", ex.Message);

        var noToken = Assert.Throws<ArgumentException>(() => options.Validate(_ => "10.96.0.1", _ => false));
        Assert.Contains("/var/run/secrets/kubernetes.io/serviceaccount/token", noToken.Message);

        options.Validate(_ => "10.96.0.1", _ => true);
    }

    [Fact]
    public void OptionsAreValidatedWithOperatorFacingMessages()
    {
        Assert.Contains("--node-name", Assert.Throws<ArgumentException>(() => new KubernetesApiSourceOptions { KubeconfigPath = "/x" }.Validate()).Message);
        Assert.Contains("/nonexistent/kubeconfig", Assert.Throws<ArgumentException>(() =>
            new KubernetesApiSourceOptions { NodeName = "n", KubeconfigPath = "/nonexistent/kubeconfig" }.Validate()).Message);
        var kubeconfig = _server.WriteKubeconfig(_dir.File("kubeconfig"));
        Assert.Contains("SilentWatchGrace", Assert.Throws<ArgumentException>(() =>
            new KubernetesApiSourceOptions { NodeName = "n", KubeconfigPath = kubeconfig, SilentWatchGrace = TimeSpan.Zero }.Validate()).Message);
        Assert.Throws<ArgumentException>(() => new ServiceCollection().AddKubernetesApiSource(new KubernetesApiSourceOptions { NodeName = "n" }.Also(o => o.KubeconfigPath = _dir.File("missing"))));

        new KubernetesApiSourceOptions { NodeName = "n", KubeconfigPath = kubeconfig }.Validate();
        var config = KubernetesApiSource.BuildClientConfiguration(new KubernetesApiSourceOptions { NodeName = "n", KubeconfigPath = kubeconfig });
        Assert.Equal(_server.BaseAddress.ToString().TrimEnd('/'), config.Host.TrimEnd('/'));

        File.WriteAllText(_dir.File("broken"), "this: [is not a kubeconfig");
        var broken = Assert.Throws<ArgumentException>(() => KubernetesApiSource.BuildClientConfiguration(new KubernetesApiSourceOptions { NodeName = "n", KubeconfigPath = _dir.File("broken") }));
        Assert.Contains(_dir.File("broken"), broken.Message);
    }

    [Fact]
    public void BackoffDoublesUpToTheCapWithinTheJitter()
    {
        var backoff = new Backoff(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(30), 0.2, new Random(42));
        var nominal = 200.0;
        for (var i = 0; i < 12; i++)
        {
            var delay = backoff.Next().TotalMilliseconds;
            Assert.InRange(delay, nominal * 0.8, nominal * 1.2);
            nominal = Math.Min(nominal * 2, 30_000);
        }
        backoff.Reset();
        Assert.InRange(backoff.Next().TotalMilliseconds, 160, 240);
    }
}

internal static class ObjectExtensions
{
    public static T Also<T>(this T value, Action<T> change)
    {
        change(value);
        return value;
    }
}

internal sealed class ListLoggerProvider(ListLogger logger) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => logger;

    public void Dispose()
    {
    }
}

internal sealed class ListLoggerFactory(ListLogger logger) : ILoggerFactory
{
    public ILogger CreateLogger(string categoryName) => logger;

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }
}
