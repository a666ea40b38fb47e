using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using EbpfProxy.Testing.KubeApi;
using k8s;
using k8s.Models;
using static EbpfProxy.Testing.Tests.KubeApi.KubeApiTestObjects;

namespace EbpfProxy.Testing.Tests.KubeApi;

/// <summary><see cref="FakeKubeApiServer"/> listening inside a test network namespace.</summary>
public class FakeKubeApiServerNamespaceTests
{
    [PrivilegedFact]
    public async Task Server_in_a_node_namespace_serves_its_pods_and_is_unreachable_from_the_root_namespace()
    {
        Privileged.EnsureRoot();
        using Topology topo = Topology.Create();
        Node node = topo.AddNode("node");
        Pod pod = node.AddPod("client", IPAddress.Parse("10.244.7.10"));

        // Reserve a port in the root namespace with a bound, non-listening socket: connecting to it there is
        // refused for sure, whatever else runs on this machine. The server uses the same port number in the node.
        using var reserved = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        reserved.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        int port = ((IPEndPoint)reserved.LocalEndPoint!).Port;

        await using FakeKubeApiServer server = await FakeKubeApiServer.StartInNamespaceAsync(node.Ns, IPAddress.Any, port);
        Assert.Equal(port, server.EndPoint.Port);
        Assert.Same(node.Ns, server.Namespace);
        Assert.Equal(new Uri($"http://127.0.0.1:{port}/"), server.BaseAddress);
        server.Upsert(Service("kubernetes", clusterIp: "10.96.0.1"));

        // 1. Raw HTTP/1.1 from the pod namespace to the node (the pods' gateway address is local to the node).
        (int status, string body) = await RawGetAsync(pod.Ns, Topology.PodGateway, port, "/api/v1/services");
        Assert.Equal(200, status);
        using (JsonDocument doc = JsonDocument.Parse(body))
        {
            Assert.Equal("ServiceList", doc.RootElement.GetProperty("kind").GetString());
            Assert.Equal("kubernetes", doc.RootElement.GetProperty("items")[0].GetProperty("metadata").GetProperty("name").GetString());
        }

        // 2. The real KubernetesClient from the pod namespace (connections made inside it), list and watch.
        KubernetesClientConfiguration podConfig = new KubernetesClientConfiguration { Host = $"http://{Topology.PodGateway}:{port}" }.UseNetNs(pod.Ns);
        using (var client = new Kubernetes(podConfig))
        {
            V1ServiceList list = await client.CoreV1.ListServiceForAllNamespacesAsync();
            Assert.Equal("10.96.0.1", list.Items.Single().Spec.ClusterIP);
            await using var watch = WatchProbe<V1Service>.Start((err, ct) =>
                client.CoreV1.WatchListServiceForAllNamespacesAsync(resourceVersion: list.Metadata.ResourceVersion, onError: err, cancellationToken: ct));
            await server.WaitForWatchesAsync("services");
            server.Upsert(Service("web"));
            var e = await watch.NextAsync();
            Assert.Equal((WatchEventType.Added, "web"), (e.Type, e.Object.Metadata.Name));
        }

        // 3. From inside the node namespace itself, BaseAddress (loopback) works.
        using (var nodeClient = new Kubernetes(server.CreateClientConfiguration().UseNetNs(node.Ns)))
        {
            Assert.Equal(2, (await nodeClient.CoreV1.ListServiceForAllNamespacesAsync()).Items.Count);
        }

        // 4. The root namespace cannot reach it: same address and port there are refused.
        using (var root = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            var refused = await Assert.ThrowsAsync<SocketException>(async () => await root.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port)));
            Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
        }
        using (var http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(5) })
        {
            await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync("/api/v1/services"));
        }

        Assert.Contains(server.RequestLog, r => r.Verb == "watch" && r.StatusCode == 200);
        Assert.Equal(3, server.ListCount("services"));
    }

    [PrivilegedFact]
    public async Task Kubeconfig_written_for_a_namespaced_server_names_its_loopback_address()
    {
        Privileged.EnsureRoot();
        using NetNs ns = NetNs.Create("kapi");
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartInNamespaceAsync(ns, IPAddress.Loopback, 0);
        Assert.NotEqual(0, server.EndPoint.Port);
        server.Upsert(Namespace("default"));
        string dir = Directory.CreateTempSubdirectory("epx-kubeconfig-").FullName;
        try
        {
            string path = server.WriteKubeconfig(Path.Combine(dir, "kubeconfig"));
            Assert.Contains($"server: http://127.0.0.1:{server.EndPoint.Port}", File.ReadAllText(path));
            // What the daemon does inside the namespace (here: in-process, connecting from the namespace).
            KubernetesClientConfiguration config = KubernetesClientConfiguration.BuildConfigFromConfigFile(path).UseNetNs(ns);
            using var client = new Kubernetes(config);
            Assert.Equal("default", (await client.CoreV1.ListNamespaceAsync()).Items.Single().Metadata.Name);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>A raw <c>GET</c> (HTTP/1.1, <c>Connection: close</c>) over a socket created inside <paramref name="ns"/>.</summary>
    private static async Task<(int Status, string Body)> RawGetAsync(NetNs ns, IPAddress address, int port, string path)
    {
        using Socket socket = ns.Run(() => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await socket.ConnectAsync(new IPEndPoint(address, port), timeout.Token);
        await socket.SendAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: {address}:{port}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"), timeout.Token);
        var response = new MemoryStream();
        var buffer = new byte[8192];
        int n;
        while ((n = await socket.ReceiveAsync(buffer, timeout.Token)) > 0)
        {
            response.Write(buffer, 0, n);
        }
        string text = Encoding.UTF8.GetString(response.ToArray());
        int split = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        string head = text[..split];
        Assert.Contains("Content-Length:", head, StringComparison.OrdinalIgnoreCase); // non-watch responses are not chunked
        int status = int.Parse(head.Split(' ')[1]);
        return (status, text[(split + 4)..]);
    }
}
