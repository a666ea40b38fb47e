using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using EbpfProxy.Testing;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests;

/// <summary>
/// Two nodes and an outside client on one LAN (a bridge in its own namespace), the real daemon on
/// each node, real TCP and UDP: NodePort and LB IP from outside with a local and a remote
/// backend, client address preserved only with eTP Local, eTP Local dropping on the node without
/// a local endpoint while its health check says 503, session affinity, and REJECT felt as an
/// immediate refusal.
/// </summary>
public sealed class TwoNodeTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly IPAddress Node1 = IPAddress.Parse("192.168.50.1");
    private static readonly IPAddress Node2 = IPAddress.Parse("192.168.50.2");
    private static readonly IPAddress Client = IPAddress.Parse("192.168.50.100");
    private static readonly IPAddress LbIp = IPAddress.Parse("198.51.100.10");
    private static readonly IPAddress RemoteLbIp = IPAddress.Parse("198.51.100.20");
    private const int TargetPort = 8080;

    private Topology _topo = null!;
    private NetNs _ext = null!;
    private readonly List<EchoServer> _servers = [];
    private readonly List<BpfFsMount> _bpffs = [];
    private readonly List<DaemonProcess> _daemons = [];
    private readonly Dictionary<string, (EchoServer Tcp, EchoServer Udp)> _echo = [];
    private readonly Dictionary<string, Pod> _clients = [];
    private string _manifests = "";

    private const string Manifests = """
        # web: LoadBalancer (its LB IP is routed through node2), eTP Cluster, one backend (be1, on node1).
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: default}
        spec:
          type: LoadBalancer
          clusterIP: 10.96.0.10
          selector: {app: web}
          ports:
          - {name: http, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}
          - {name: udp, port: 80, targetPort: 8080, nodePort: 30080, protocol: UDP}
        status: {loadBalancer: {ingress: [{ip: 198.51.100.20}]}}
        ---
        # local: LoadBalancer, eTP Local, backend be1 (node1 only).
        apiVersion: v1
        kind: Service
        metadata: {name: local, namespace: default}
        spec:
          type: LoadBalancer
          clusterIP: 10.96.0.11
          externalTrafficPolicy: Local
          healthCheckNodePort: 32081
          selector: {app: web}
          ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30081, protocol: TCP}]
        status: {loadBalancer: {ingress: [{ip: 198.51.100.10}]}}
        ---
        # sticky: NodePort with ClientIP affinity over be1 and be2.
        apiVersion: v1
        kind: Service
        metadata: {name: sticky, namespace: default}
        spec:
          type: NodePort
          clusterIP: 10.96.0.12
          sessionAffinity: ClientIP
          selector: {tier: any}
          ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30082, protocol: TCP}]
        ---
        # empty: no endpoint anywhere.
        apiVersion: v1
        kind: Service
        metadata: {name: empty, namespace: default}
        spec:
          type: NodePort
          clusterIP: 10.96.0.13
          selector: {app: nobody}
          ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30083, protocol: TCP}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: be1, namespace: default, labels: {app: web, tier: any}}
        spec: {nodeName: node1, containers: [{name: echo, image: echo, ports: [{containerPort: 8080}]}]}
        status: {phase: Running, podIP: 10.244.1.11, conditions: [{type: Ready, status: "True"}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: be2, namespace: default, labels: {tier: any}}
        spec: {nodeName: node2, containers: [{name: echo, image: echo, ports: [{containerPort: 8080}]}]}
        status: {phase: Running, podIP: 10.244.2.11, conditions: [{type: Ready, status: "True"}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: cl2, namespace: default, labels: {role: client}}
        spec: {nodeName: node2, containers: [{name: client, image: client}]}
        status: {phase: Running, podIP: 10.244.2.21, conditions: [{type: Ready, status: "True"}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: other2, namespace: default, labels: {role: other}}
        spec: {nodeName: node2, containers: [{name: client, image: client}]}
        status: {phase: Running, podIP: 10.244.2.22, conditions: [{type: Ready, status: "True"}]}
        """;

    public async Task InitializeAsync()
    {
        _topo = Topology.Create();
        var lan = _topo.AddNamespace("lan");
        lan.Ip("link", "add", "br0", "type", "bridge");
        lan.Ip("link", "set", "br0", "up");
        var node1 = _topo.AddNode("node1");
        var node2 = _topo.AddNode("node2");
        _ext = _topo.AddNamespace("ext");
        // Every end is created directly in a test namespace: nothing appears in the root namespace.
        foreach (var (ns, address, port) in new[] { (node1.Ns, Node1, "p1"), (node2.Ns, Node2, "p2"), (_ext, Client, "p3") })
        {
            ns.Ip("link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", lan.Name);
            ns.Ip("addr", "add", $"{address}/24", "dev", "eth0");
            ns.Ip("link", "set", "eth0", "up");
            lan.Ip("link", "set", port, "master", "br0");
            lan.Ip("link", "set", port, "up");
        }
        node1.Ns.Ip("route", "add", "10.244.2.0/24", "via", Node2.ToString());
        node2.Ns.Ip("route", "add", "10.244.1.0/24", "via", Node1.ToString());
        // The "load balancer": the client reaches the LB IP through node1.
        _ext.Ip("route", "add", $"{LbIp}/32", "via", Node1.ToString());
        _ext.Ip("route", "add", $"{RemoteLbIp}/32", "via", Node2.ToString());

        foreach (var (node, name, ip) in new[] { (node1, "be1", "10.244.1.11"), (node2, "be2", "10.244.2.11") })
        {
            var pod = node.AddPod(name, IPAddress.Parse(ip));
            var tcp = EchoServer.StartTcp(pod.Ns, pod.Ip, TargetPort, name);
            var udp = EchoServer.StartUdp(pod.Ns, pod.Ip, TargetPort, name);
            _servers.AddRange([tcp, udp]);
            _echo[name] = (tcp, udp);
        }

        foreach (var (name, ip) in new[] { ("cl2", "10.244.2.21"), ("other2", "10.244.2.22") })
            _clients[name] = node2.AddPod(name, IPAddress.Parse(ip));

        _manifests = Directory.CreateTempSubdirectory("ebpfproxy-e2e-2node-").FullName;
        File.WriteAllText(Path.Combine(_manifests, "cluster.yaml"), Manifests);
        foreach (var node in new[] { node1, node2 })
        {
            var bpffs = BpfFsMount.CreateTemp();
            _bpffs.Add(bpffs);
            var daemon = DaemonProcess.Start(node.Ns, Binaries.EbpfProxy,
                ["run", "--manifests", _manifests, "--bpffs", bpffs.Path, "--node-name", node.Name, "--min-sync-interval", "0",
                 "--bpf-dir", Binaries.BpfDir, "--conntrack-max", "65536", "--cluster-cidr", "10.244.0.0/16",
                 "--nodeport-addresses", "192.168.50.0/24", "--healthz-bind-address", "127.0.0.1:10256", "--host-services", "false"]);
            _daemons.Add(daemon);
        }
        foreach (var daemon in _daemons)
        {
            await daemon.WaitForOutputAsync(new Regex("Sync #1 "), TimeSpan.FromSeconds(30));
            // Its pod's veth and the node's wire (found by address: no --netdev-interfaces given).
            await daemon.WaitForLinesAsync("Attached the pod programs", daemon == _daemons[0] ? 1 : 3, TimeSpan.FromSeconds(10));
            await daemon.WaitForLinesAsync("Attached the netdev programs to eth0", 1, TimeSpan.FromSeconds(10));
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var d in _daemons)
        {
            output.WriteLine(d.FormatOutput("ebpf-proxy output"));
            await d.DisposeAsync();
        }
        foreach (var s in _servers)
            await s.DisposeAsync();
        _topo?.Dispose();
        foreach (var b in _bpffs)
            b.Dispose();
        if (_manifests.Length > 0)
            Directory.Delete(_manifests, recursive: true);
    }

    private async Task<string> TcpAsync(IPAddress dst, int port, string line)
    {
        using var conn = await TcpProbe.ConnectAsync(_ext, dst, port, TimeSpan.FromSeconds(3));
        Assert.Equal(new IPEndPoint(dst, port), conn.RemoteEndPoint);
        var reply = await conn.RequestAsync(line, TimeSpan.FromSeconds(3));
        Assert.EndsWith(" " + line, reply);
        return reply.Split(' ')[0];
    }

    private IPAddress LastSeenBy(string pod) => _echo[pod].Tcp.SeenClients[^1].Address;

    [PrivilegedFact]
    public async Task NodePortFromOutsideReachesALocalAndARemoteBackendMasqueraded()
    {
        // Through node1: the backend is local; eTP Cluster masquerades, so it sees node1.
        Assert.Equal("be1", await TcpAsync(Node1, 30080, "via-node1"));
        Assert.Equal(Node1, LastSeenBy("be1"));
        // Through node2: the backend is on node1; node2 masquerades, so the reply comes back
        // through node2, which restores the NodePort as the source.
        Assert.Equal("be1", await TcpAsync(Node2, 30080, "via-node2"));
        Assert.Equal(Node2, LastSeenBy("be1"));

        foreach (var node in new[] { Node1, Node2 })
        {
            var (reply, from) = await UdpProbe.RequestAsync(_ext, node, 30080, $"dgram-{node}", TimeSpan.FromSeconds(3));
            Assert.Equal($"be1 dgram-{node}", reply);
            Assert.Equal(new IPEndPoint(node, 30080), from);
            Assert.Equal(node, _echo["be1"].Udp.SeenClients[^1].Address);
        }
    }

    [PrivilegedFact]
    public async Task AnLbIpRoutedToANodeWithoutTheBackendIsServedThroughThatNode()
    {
        // The load balancer sends 198.51.100.20 to node2; the backend runs on node1.
        Assert.Equal("be1", await TcpAsync(RemoteLbIp, 80, "via-lb-node2"));
        Assert.Equal(Node2, LastSeenBy("be1"));
        var (reply, from) = await UdpProbe.RequestAsync(_ext, RemoteLbIp, 80, "dgram-lb", TimeSpan.FromSeconds(3));
        Assert.Equal("be1 dgram-lb", reply);
        Assert.Equal(new IPEndPoint(RemoteLbIp, 80), from);
    }

    [PrivilegedFact]
    public async Task ExternalTrafficPolicyLocalKeepsTheClientAddressAndDropsWhereNoEndpointIsLocal()
    {
        // LB IP (routed to node1, which has the endpoint): the backend sees the real client.
        Assert.Equal("be1", await TcpAsync(LbIp, 80, "via-lb"));
        Assert.Equal(Client, LastSeenBy("be1"));
        Assert.Equal("be1", await TcpAsync(Node1, 30081, "via-nodeport"));
        Assert.Equal(Client, LastSeenBy("be1"));

        // node2 has no local endpoint: silently dropped (a timeout, not a refusal)...
        var dropped = await Assert.ThrowsAsync<ProbeFailedException>(() => TcpProbe.ConnectAsync(_ext, Node2, 30081, TimeSpan.FromSeconds(1)));
        Assert.Equal(ProbeFailure.Timeout, dropped.Failure);
        // ...and its health check node port tells the load balancer so.
        using var http = new HttpClient(Testing.KubeApi.NetNsHttp.CreateHandler(_ext)) { Timeout = TimeSpan.FromSeconds(5) };
        using var node2Health = await http.GetAsync($"http://{Node2}:32081/");
        using var node1Health = await http.GetAsync($"http://{Node1}:32081/");
        var body = await node2Health.Content.ReadAsStringAsync();
        output.WriteLine($"node2 health: {(int)node2Health.StatusCode} {body}");
        Assert.Equal(503, (int)node2Health.StatusCode);
        Assert.Contains("\"localEndpoints\":0", body, StringComparison.Ordinal);
        Assert.Equal(200, (int)node1Health.StatusCode);
    }

    [PrivilegedFact]
    public async Task SessionAffinityHoldsAnOutsideClientToOneBackend()
    {
        var seen = new List<string>();
        for (int i = 0; i < 12; i++)
            seen.Add(await TcpAsync(Node1, 30082, $"sticky{i}"));
        output.WriteLine(string.Join(" ", seen));
        Assert.Single(seen.Distinct());
    }

    [PrivilegedFact]
    public async Task AServiceWithoutEndpointsIsRefusedAtOnce()
    {
        var sw = Stopwatch.StartNew();
        var refused = await Assert.ThrowsAsync<ProbeFailedException>(() => TcpProbe.ConnectAsync(_ext, Node1, 30083, TimeSpan.FromSeconds(3)));
        output.WriteLine($"{refused.Failure} after {sw.ElapsedMilliseconds} ms");
        Assert.Equal(ProbeFailure.Refused, refused.Failure);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(1), $"refusal took {sw.Elapsed}");
    }

    [PrivilegedFact]
    public async Task NetworkPolicyHoldsAcrossNodes()
    {
        // be1 (node1) admits only pods labelled role=client, wherever they run.
        File.WriteAllText(Path.Combine(_manifests, "policy.yaml"), """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: be1-clients, namespace: default}
            spec:
              podSelector: {matchLabels: {app: web}}
              ingress:
              - from: [{podSelector: {matchLabels: {role: client}}}]
            """);
        var be1 = IPAddress.Parse("10.244.1.11");
        var clusterIp = IPAddress.Parse("10.96.0.10");
        async Task<bool> Reaches(Pod from, IPAddress dst, int port)
        {
            try
            {
                return (await TcpProbe.RequestAsync(from.Ns, dst, port, "hi", TimeSpan.FromSeconds(1))).StartsWith("be1 ", StringComparison.Ordinal);
            }
            catch (ProbeFailedException)
            {
                return false;
            }
        }

        // Wait for node1's daemon to isolate be1.
        var sw = Stopwatch.StartNew();
        while (await Reaches(_clients["other2"], be1, TargetPort))
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), "be1 was never isolated");
        }
        output.WriteLine($"isolated after {sw.ElapsedMilliseconds} ms");

        // A client pod on the other node: by address, and through the ClusterIP (DNAT on node2,
        // ingress judged on node1 with the client's own address).
        Assert.True(await Reaches(_clients["cl2"], be1, TargetPort), "cl2 -> be1 by address");
        Assert.True(await Reaches(_clients["cl2"], clusterIp, 80), "cl2 -> be1 through the ClusterIP");
        Assert.False(await Reaches(_clients["other2"], clusterIp, 80), "other2 -> be1 through the ClusterIP");
        // An outside client through node1's NodePort is masqueraded to node1 itself (admitted as
        // this node); through node2 it arrives from node2's address, which no selector matches.
        Assert.Equal("be1", await TcpAsync(Node1, 30080, "via-node1"));
        await Assert.ThrowsAsync<ProbeFailedException>(() => TcpProbe.ConnectAsync(_ext, Node2, 30080, TimeSpan.FromSeconds(1)));
    }
}
