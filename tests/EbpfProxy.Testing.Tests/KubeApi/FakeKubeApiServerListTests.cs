using System.Net;
using System.Text.Json;
using EbpfProxy.Testing.KubeApi;
using k8s;
using k8s.Autorest;
using k8s.Models;
using static EbpfProxy.Testing.Tests.KubeApi.KubeApiTestObjects;

namespace EbpfProxy.Testing.Tests.KubeApi;

/// <summary>LIST/GET/discovery against <see cref="FakeKubeApiServer"/> with the real KubernetesClient and raw HTTP.</summary>
public class FakeKubeApiServerListTests
{
    [Fact]
    public async Task List_json_has_list_kind_resource_version_and_items_without_kind()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.Upsert(Service("web"));
        server.Upsert(EndpointSlice("web-1", "web", "default", "10.244.0.5"));
        using var http = new HttpClient { BaseAddress = server.BaseAddress };

        using (HttpResponseMessage response = await http.GetAsync("/api/v1/services"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
            using JsonDocument doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            JsonElement root = doc.RootElement;
            Assert.Equal("ServiceList", root.GetProperty("kind").GetString());
            Assert.Equal("v1", root.GetProperty("apiVersion").GetString());
            Assert.Equal(server.ResourceVersion.ToString(), root.GetProperty("metadata").GetProperty("resourceVersion").GetString());
            JsonElement item = Assert.Single(root.GetProperty("items").EnumerateArray());
            Assert.Equal("web", item.GetProperty("metadata").GetProperty("name").GetString());
            Assert.False(item.TryGetProperty("kind", out _), "list items carry no kind, like the real server");
        }

        using (HttpResponseMessage response = await http.GetAsync("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"))
        {
            using JsonDocument doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("EndpointSliceList", doc.RootElement.GetProperty("kind").GetString());
            Assert.Equal("discovery.k8s.io/v1", doc.RootElement.GetProperty("apiVersion").GetString());
            Assert.Single(doc.RootElement.GetProperty("items").EnumerateArray());
        }

        // A GET of one object carries kind and apiVersion.
        string one = await http.GetStringAsync("/api/v1/namespaces/default/services/web");
        using JsonDocument single = JsonDocument.Parse(one);
        Assert.Equal("Service", single.RootElement.GetProperty("kind").GetString());
        Assert.Equal("v1", single.RootElement.GetProperty("apiVersion").GetString());
    }

    [Fact]
    public async Task Client_lists_services_all_and_per_namespace()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.Upsert(Service("a", "ns1"));
        server.Upsert(Service("b", "ns1"));
        server.Upsert(Service("c", "ns2"));
        using Kubernetes client = server.CreateClient();

        V1ServiceList all = await client.CoreV1.ListServiceForAllNamespacesAsync();
        Assert.Equal(["a", "b", "c"], all.Items.Select(s => s.Metadata.Name));
        Assert.Equal(server.ResourceVersion.ToString(), all.Metadata.ResourceVersion);
        Assert.Equal("10.96.0.10", all.Items[0].Spec.ClusterIP);
        Assert.Equal("8080", all.Items[0].Spec.Ports[0].TargetPort?.ToString());

        V1ServiceList ns2 = await client.CoreV1.ListNamespacedServiceAsync("ns2");
        Assert.Equal(["c"], ns2.Items.Select(s => s.Metadata.Name));
        Assert.Empty((await client.CoreV1.ListNamespacedServiceAsync("nope")).Items);
    }

    [Fact]
    public async Task Upsert_sets_server_fields_and_update_keeps_identity()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        long before = server.ResourceVersion;
        var input = new V1Service { Metadata = new V1ObjectMeta { Name = "web" }, Spec = new V1ServiceSpec { ClusterIP = "10.96.0.1" } };

        V1Service created = server.Upsert(input);
        Assert.Null(input.Metadata.ResourceVersion); // the caller's object is not modified
        Assert.Equal("default", created.Metadata.NamespaceProperty);
        Assert.Equal((before + 1).ToString(), created.Metadata.ResourceVersion);
        Assert.False(string.IsNullOrEmpty(created.Metadata.Uid));
        Assert.NotNull(created.Metadata.CreationTimestamp);
        Assert.Equal("Service", created.Kind);
        Assert.Equal("v1", created.ApiVersion);

        input.Spec.ClusterIP = "10.96.0.2";
        V1Service updated = server.Upsert(input);
        Assert.Equal((before + 2).ToString(), updated.Metadata.ResourceVersion);
        Assert.Equal(created.Metadata.Uid, updated.Metadata.Uid);
        Assert.Equal(created.Metadata.CreationTimestamp, updated.Metadata.CreationTimestamp);
        Assert.Equal("10.96.0.2", server.Get<V1Service>("default", "web")!.Spec.ClusterIP);

        // One counter for every kind, like etcd.
        V1Node node = server.Upsert(Node("n1", "192.168.0.1"));
        Assert.Equal((before + 3).ToString(), node.Metadata.ResourceVersion);
        Assert.Null(node.Metadata.NamespaceProperty);
        Assert.Single(server.List<V1Node>());
        Assert.Single(server.List<V1Service>("default"));
        Assert.Empty(server.List<V1Service>("other"));

        Assert.True(server.Delete<V1Service>("default", "web"));
        Assert.Equal(before + 4, server.ResourceVersion);
        Assert.False(server.Delete<V1Service>("default", "web"));
        Assert.Null(server.Get<V1Service>("default", "web"));
        Assert.True(server.Delete(node));
        Assert.Throws<ArgumentException>(() => server.Upsert(new V1ConfigMap { Metadata = new V1ObjectMeta { Name = "x" } }));
    }

    [Fact]
    public async Task Get_returns_the_object_or_a_404_status()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.Upsert(Service("web", "prod"));
        server.Upsert(Namespace("prod"));
        server.Upsert(Node("n1", "192.168.0.1"));
        using Kubernetes client = server.CreateClient();

        Assert.Equal("prod", (await client.CoreV1.ReadNamespacedServiceAsync("web", "prod")).Metadata.NamespaceProperty);
        Assert.Equal("prod", (await client.CoreV1.ReadNamespaceAsync("prod")).Metadata.Name);
        Assert.Equal("192.168.0.1", (await client.CoreV1.ReadNodeAsync("n1")).Status.Addresses[0].Address);

        var e = await Assert.ThrowsAsync<HttpOperationException>(() => client.CoreV1.ReadNamespacedServiceAsync("web", "dev"));
        Assert.Equal(HttpStatusCode.NotFound, e.Response.StatusCode);
        V1Status status = KubernetesJson.Deserialize<V1Status>(e.Response.Content);
        Assert.Equal("NotFound", status.Reason);
        Assert.Equal(404, status.Code);
        Assert.Equal("services \"web\" not found", status.Message);
    }

    [Theory]
    [InlineData("app=web", "a,b")]
    [InlineData("app==web", "a,b")]
    [InlineData("app!=web", "c,d")]
    [InlineData("app", "a,b,c")]
    [InlineData("!app", "d")]
    [InlineData("app=web,tier=front", "a")]
    [InlineData("app in (web,db)", "a,b,c")]
    [InlineData("app notin (web)", "c,d")]
    [InlineData("tier,app!=db", "a")]
    [InlineData("", "a,b,c,d")]
    public async Task Label_selectors_filter(string selector, string expected)
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.Upsert(Service("a", labels: Labels("app=web", "tier=front")));
        server.Upsert(Service("b", labels: Labels("app=web")));
        server.Upsert(Service("c", labels: Labels("app=db")));
        server.Upsert(Service("d"));
        using Kubernetes client = server.CreateClient();

        V1ServiceList list = await client.CoreV1.ListServiceForAllNamespacesAsync(labelSelector: selector);
        Assert.Equal(expected, string.Join(",", list.Items.Select(s => s.Metadata.Name)));
    }

    [Fact]
    public async Task Field_selectors_filter_and_unsupported_fields_are_rejected()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.Upsert(Pod("p1", "node-a", "ns1"));
        server.Upsert(Pod("p2", "node-b", "ns1"));
        server.Upsert(Pod("p3", "node-a", "ns2"));
        server.Upsert(Pod("pending", null, "ns2"));
        using Kubernetes client = server.CreateClient();

        async Task<string> Names(string selector) =>
            string.Join(",", (await client.CoreV1.ListPodForAllNamespacesAsync(fieldSelector: selector)).Items.Select(p => p.Metadata.Name));

        Assert.Equal("p1,p3", await Names("spec.nodeName=node-a"));
        Assert.Equal("p2,pending", await Names("spec.nodeName!=node-a"));
        Assert.Equal("pending", await Names("spec.nodeName="));
        Assert.Equal("p3", await Names("metadata.namespace=ns2,spec.nodeName=node-a"));
        Assert.Equal("p2", await Names("metadata.name=p2"));
        Assert.Equal("p1", (await client.CoreV1.ListNamespacedPodAsync("ns1", fieldSelector: "spec.nodeName==node-a")).Items.Single().Metadata.Name);

        var e = await Assert.ThrowsAsync<HttpOperationException>(() => client.CoreV1.ListPodForAllNamespacesAsync(fieldSelector: "spec.bogus=x"));
        Assert.Equal(HttpStatusCode.BadRequest, e.Response.StatusCode);
        Assert.Contains("field label not supported: spec.bogus", e.Response.Content);

        var bad = await Assert.ThrowsAsync<HttpOperationException>(() => client.CoreV1.ListPodForAllNamespacesAsync(labelSelector: "a in (b"));
        Assert.Equal(HttpStatusCode.BadRequest, bad.Response.StatusCode);
    }

    [Fact]
    public async Task Pagination_returns_every_item_from_one_consistent_snapshot()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        var expected = new List<string>();
        foreach (string ns in new[] { "alpha", "beta", "gamma" })
        {
            for (int i = 0; i < 9; i++)
            {
                server.Upsert(Service($"svc-{i:D2}", ns));
                expected.Add($"{ns}/svc-{i:D2}");
            }
        }
        using Kubernetes client = server.CreateClient();

        V1ServiceList page1 = await client.CoreV1.ListServiceForAllNamespacesAsync(limit: 10);
        Assert.Equal(10, page1.Items.Count);
        Assert.False(string.IsNullOrEmpty(page1.Metadata.ContinueProperty));
        Assert.Equal(17, page1.Metadata.RemainingItemCount);
        string listRv = page1.Metadata.ResourceVersion;

        // Changes between pages are not visible in the continued pages (consistent snapshot).
        server.Delete<V1Service>("gamma", "svc-08");
        server.Upsert(Service("svc-99", "gamma"));
        server.Upsert(Service("svc-00", "gamma", clusterIp: "10.96.9.9"));

        var seen = page1.Items.ToList();
        string? token = page1.Metadata.ContinueProperty;
        int pages = 1;
        while (!string.IsNullOrEmpty(token))
        {
            V1ServiceList page = await client.CoreV1.ListServiceForAllNamespacesAsync(limit: 10, continueParameter: token);
            Assert.Equal(listRv, page.Metadata.ResourceVersion);
            seen.AddRange(page.Items);
            token = page.Metadata.ContinueProperty;
            pages++;
        }
        Assert.Equal(3, pages);
        Assert.Equal(expected, seen.Select(s => $"{s.Metadata.NamespaceProperty}/{s.Metadata.Name}"));
        Assert.Equal("10.96.0.10", seen.Single(s => s.Metadata.NamespaceProperty == "gamma" && s.Metadata.Name == "svc-00").Spec.ClusterIP);

        // Without a limit: the current state.
        V1ServiceList now = await client.CoreV1.ListServiceForAllNamespacesAsync();
        Assert.Equal(27, now.Items.Count);
        Assert.Contains(now.Items, s => s.Metadata.Name == "svc-99");

        // A selector with a limit: pages of matching items only.
        V1ServiceList filtered = await client.CoreV1.ListNamespacedServiceAsync("beta", limit: 5);
        Assert.Equal(5, filtered.Items.Count);
        V1ServiceList rest = await client.CoreV1.ListNamespacedServiceAsync("beta", limit: 5, continueParameter: filtered.Metadata.ContinueProperty);
        Assert.Equal(4, rest.Items.Count);
        Assert.Null(rest.Metadata.ContinueProperty);

        // After compaction an old continue token expires (410), like etcd.
        server.Compact();
        var e = await Assert.ThrowsAsync<HttpOperationException>(() => client.CoreV1.ListServiceForAllNamespacesAsync(limit: 10, continueParameter: page1.Metadata.ContinueProperty));
        Assert.Equal(HttpStatusCode.Gone, e.Response.StatusCode);
        Assert.Equal("Expired", KubernetesJson.Deserialize<V1Status>(e.Response.Content).Reason);
    }

    [Fact]
    public async Task Every_served_kind_lists_and_watches()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.Upsert(EndpointSlice("web-abc", "web", "default", "10.244.0.5"));
        server.Upsert(NetworkPolicy("deny", "prod"));
        server.Upsert(Pod("p", "node-a", "prod", "10.244.0.7"));
        server.Upsert(Namespace("prod", Labels("team=x")));
        server.Upsert(Node("node-a", "192.168.0.10"));
        using Kubernetes client = server.CreateClient();

        V1EndpointSliceList slices = await client.DiscoveryV1.ListEndpointSliceForAllNamespacesAsync(labelSelector: "kubernetes.io/service-name=web");
        Assert.Equal("10.244.0.5", slices.Items.Single().Endpoints.Single().Addresses.Single());
        Assert.Single((await client.DiscoveryV1.ListNamespacedEndpointSliceAsync("default")).Items);
        V1NetworkPolicyList policies = await client.NetworkingV1.ListNetworkPolicyForAllNamespacesAsync();
        Assert.Equal("web", policies.Items.Single().Spec.PodSelector.MatchLabels["app"]);
        Assert.Single((await client.NetworkingV1.ListNamespacedNetworkPolicyAsync("prod")).Items);
        Assert.Equal("10.244.0.7", (await client.CoreV1.ListPodForAllNamespacesAsync()).Items.Single().Status.PodIP);
        Assert.Equal("x", (await client.CoreV1.ListNamespaceAsync()).Items.Single().Metadata.Labels["team"]);
        Assert.Equal("node-a", (await client.CoreV1.ListNodeAsync()).Items.Single().Metadata.Name);

        string rv = server.ResourceVersion.ToString();
        await using var sliceWatch = WatchProbe<V1EndpointSlice>.Start((err, ct) => client.DiscoveryV1.WatchListEndpointSliceForAllNamespacesAsync(resourceVersion: rv, onError: err, cancellationToken: ct));
        await using var policyWatch = WatchProbe<V1NetworkPolicy>.Start((err, ct) => client.NetworkingV1.WatchListNamespacedNetworkPolicyAsync("prod", resourceVersion: rv, onError: err, cancellationToken: ct));
        await using var podWatch = WatchProbe<V1Pod>.Start((err, ct) => client.CoreV1.WatchListPodForAllNamespacesAsync(resourceVersion: rv, fieldSelector: "spec.nodeName=node-a", onError: err, cancellationToken: ct));
        await using var nsWatch = WatchProbe<V1Namespace>.Start((err, ct) => client.CoreV1.WatchListNamespaceAsync(resourceVersion: rv, onError: err, cancellationToken: ct));
        await using var nodeWatch = WatchProbe<V1Node>.Start((err, ct) => client.CoreV1.WatchListNodeAsync(resourceVersion: rv, onError: err, cancellationToken: ct));
        foreach (string r in new[] { "endpointslices", "networkpolicies", "pods", "namespaces", "nodes" })
        {
            await server.WaitForWatchesAsync(r);
        }

        server.Upsert(EndpointSlice("web-def", "web", "default", "10.244.0.6"));
        server.Upsert(NetworkPolicy("allow", "prod"));
        server.Upsert(Pod("q", "node-b", "prod"));        // filtered out by the field selector
        server.Upsert(Pod("r", "node-a", "prod"));
        server.Upsert(Namespace("dev"));
        server.Delete<V1Node>(null, "node-a");

        Assert.Equal((WatchEventType.Added, "web-def"), Name(await sliceWatch.NextAsync()));
        Assert.Equal((WatchEventType.Added, "allow"), Name(await policyWatch.NextAsync()));
        Assert.Equal((WatchEventType.Added, "r"), Name(await podWatch.NextAsync()));
        Assert.Equal((WatchEventType.Added, "dev"), Name(await nsWatch.NextAsync()));
        Assert.Equal((WatchEventType.Deleted, "node-a"), Name(await nodeWatch.NextAsync()));

        Assert.Equal(1, server.WatchCount("pods"));
        Assert.Equal(1, server.WatchCount("Node"));
        Assert.Equal(2, server.ListCount("endpointslices"));
    }

    [Fact]
    public async Task Discovery_endpoints_answer()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        using Kubernetes client = server.CreateClient();
        VersionInfo version = await client.Version.GetCodeAsync();
        Assert.Equal("1", version.Major);
        Assert.StartsWith("v1.", version.GitVersion);

        V1APIVersions core = await client.Core.GetAPIVersionsAsync();
        Assert.Equal(["v1"], core.Versions);
        V1APIGroupList groups = await client.Apis.GetAPIVersionsAsync();
        Assert.Equal(["discovery.k8s.io", "networking.k8s.io"], groups.Groups.Select(g => g.Name).Order());
        V1APIResourceList discovery = await client.DiscoveryV1.GetAPIResourcesAsync();
        Assert.Equal("endpointslices", discovery.Resources.Single().Name);
        V1APIResourceList coreResources = await client.CoreV1.GetAPIResourcesAsync();
        Assert.Equal(["namespaces", "nodes", "pods", "services"], coreResources.Resources.Select(r => r.Name).Order());

        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        Assert.Equal("ok", await http.GetStringAsync("/healthz"));
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/api/v1/configmaps")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/apis/apps/v1/deployments")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/api/v1/namespaces/default/services/web/status")).StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await http.DeleteAsync("/api/v1/namespaces/default/services/web")).StatusCode);
    }

    [Fact]
    public async Task Kubeconfig_loads_and_works()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.Upsert(Service("web"));
        string dir = Directory.CreateTempSubdirectory("epx-kubeconfig-").FullName;
        try
        {
            string path = server.WriteKubeconfig(Path.Combine(dir, "config"));
            KubernetesClientConfiguration config = KubernetesClientConfiguration.BuildConfigFromConfigFile(path);
            Assert.Equal(server.BaseAddress.ToString().TrimEnd('/'), config.Host.TrimEnd('/'));
            Assert.Equal("default", config.Namespace);
            using var client = new Kubernetes(config);
            Assert.Equal("web", (await client.CoreV1.ListNamespacedServiceAsync(config.Namespace)).Items.Single().Metadata.Name);
            Assert.Equal($"Bearer {FakeKubeApiServer.Token}", server.RequestLog.Last().Authorization);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Request_log_records_lists_watches_and_statuses()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.Upsert(Service("web")); // so that the watch below has a first event (see the README on empty watches)
        using Kubernetes client = server.CreateClient();
        await client.CoreV1.ListServiceForAllNamespacesAsync();
        await client.CoreV1.ListNamespacedServiceAsync("x", labelSelector: "a=b");
        await Assert.ThrowsAsync<HttpOperationException>(() => client.CoreV1.ReadNamespacedServiceAsync("missing", "x"));
        await using (var watch = WatchProbe<V1Service>.Start((err, ct) => client.CoreV1.WatchListServiceForAllNamespacesAsync(timeoutSeconds: 1, onError: err, cancellationToken: ct)))
        {
            Assert.Null(await watch.WaitEndAsync());
        }

        Assert.Equal(2, server.ListCount("services"));
        Assert.Equal(1, server.WatchCount("services"));
        Assert.Equal(0, server.ListCount("pods"));
        IReadOnlyList<KubeApiRequest> log = server.RequestLog;
        Assert.Equal(4, log.Count);
        Assert.Equal(("GET", "/api/v1/namespaces/x/services", false, 200, "list"), (log[1].Method, log[1].Path, log[1].IsWatch, log[1].StatusCode, log[1].Verb));
        Assert.Contains("labelSelector=a%3Db", log[1].Query);
        Assert.Equal((404, "get"), (log[2].StatusCode, log[2].Verb));
        Assert.Equal((true, 200, "watch"), (log[3].IsWatch, log[3].StatusCode, log[3].Verb));
        server.ClearRequestLog();
        Assert.Empty(server.RequestLog);
    }

    [Fact]
    public async Task Optional_logger_receives_request_and_kestrel_logs()
    {
        var logger = new CollectingLogger();
        await using (FakeKubeApiServer server = await FakeKubeApiServer.StartAsync(logger))
        {
            using Kubernetes client = server.CreateClient();
            await client.CoreV1.ListNodeAsync();
        }
        Assert.Contains(logger.Messages, m => m.Contains("GET /api/v1/nodes"));
        Assert.Contains(logger.Messages, m => m.Contains("Now listening on", StringComparison.OrdinalIgnoreCase)
                                              || m.Contains("Connection id", StringComparison.OrdinalIgnoreCase));
    }

    private sealed class CollectingLogger : Microsoft.Extensions.Logging.ILogger
    {
        public System.Collections.Concurrent.ConcurrentQueue<string> Messages { get; } = new();

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Messages.Enqueue(formatter(state, exception));
    }

    private static (WatchEventType, string) Name<T>((WatchEventType Type, T Object) e) where T : IKubernetesObject<V1ObjectMeta> => (e.Type, e.Object.Metadata.Name);
}
