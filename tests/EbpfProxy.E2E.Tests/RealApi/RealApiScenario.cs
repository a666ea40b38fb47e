using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Sync;
using EbpfProxy.Testing;
using EbpfProxy.Testing.RealApi;
using k8s;
using k8s.Models;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests.RealApi;

/// <summary>
/// One node namespace (a client pod, echo pods, an outside client on the node's wire) linked to the shared
/// real control plane, a Kubernetes namespace of its own, and the real `ebpf-proxy run` in the node
/// namespace authenticated with the chart's ServiceAccount. Pods are created through the API with the node's
/// name; the test plays the kubelet and writes their status; the real EndpointSlice controller builds the slices.
/// </summary>
public sealed class RealApiScenario : IAsyncDisposable
{
    public const int TargetPort = 8080;
    public const int OtherTargetPort = 9090;
    public static readonly IPAddress NodeAddress = IPAddress.Parse("192.168.77.1");
    public static readonly IPAddress OutsideAddress = IPAddress.Parse("192.168.77.2");

    private readonly ITestOutputHelper _output;
    private readonly RealApiFixture _fixture;
    private readonly Topology _topo;
    private readonly BpfFsMount _bpffs;
    private readonly TestCgroup _cgroup;
    private readonly List<EchoServer> _servers = [];
    private Node _node = null!;
    private string _kubeconfig = "";

    private RealApiScenario(ITestOutputHelper output, RealApiFixture fixture)
    {
        _output = output;
        _fixture = fixture;
        _topo = Topology.Create();
        _bpffs = BpfFsMount.CreateTemp();
        _cgroup = TestCgroup.Create();
        Namespace = "t-" + Guid.NewGuid().ToString("N")[..10];
    }

    /// <summary>The Kubernetes namespace of this test.</summary>
    public string Namespace { get; }

    public Kubernetes Api => _fixture.Admin;
    public ControlPlane ControlPlane => _fixture.ControlPlane;
    public Pod Client { get; private set; } = null!;
    public NetNs Outside { get; private set; } = null!;
    public Dictionary<string, Pod> Echo { get; } = [];
    public DaemonProcess Daemon { get; private set; } = null!;
    public string PinPath => Path.Combine(_bpffs.Path, "ebpf-proxy");

    /// <summary>The run's bpffs (the daemon's --bpffs).</summary>
    public string BpfFsPath => _bpffs.Path;

    /// <summary>The run's cgroup v2 directory (the daemon's --cgroup-root).</summary>
    public string CgroupPath => _cgroup.Path;

    /// <summary>The kubeconfig authenticating as the chart's ServiceAccount (a bound token).</summary>
    public string Kubeconfig => _kubeconfig;

    /// <summary>The node's network namespace.</summary>
    public NetNs NodeNs => _node.Ns;

    /// <summary>Builds the namespaces, links the node to the API server and creates the Kubernetes namespace (no daemon yet).</summary>
    public static async Task<RealApiScenario> CreateAsync(ITestOutputHelper output, RealApiFixture fixture, int echoPods)
    {
        var s = new RealApiScenario(output, fixture);
        try
        {
            s._node = s._topo.AddNode(RealApiFixture.NodeName);
            s.Outside = s._topo.AddNamespace("ext");
            s.Outside.Ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", s._node.Ns.Name);
            foreach (var (ns, address) in new[] { (s._node.Ns, NodeAddress), (s.Outside, OutsideAddress) })
            {
                ns.Ip("addr", "add", $"{address}/24", "dev", "eth0");
                ns.Ip("link", "set", "eth0", "up");
            }
            s.Client = s._node.AddPod("client", IPAddress.Parse("10.244.0.2"));
            for (int i = 1; i <= echoPods; i++)
            {
                var name = $"echo-{i}";
                var pod = s._node.AddPod(name, IPAddress.Parse($"10.244.0.{10 + i}"));
                s.Echo[name] = pod;
                s._servers.Add(EchoServer.StartTcp(pod.Ns, pod.Ip, TargetPort, name));
                s._servers.Add(EchoServer.StartUdp(pod.Ns, pod.Ip, TargetPort, name));
                s._servers.Add(EchoServer.StartTcp(pod.Ns, pod.Ip, OtherTargetPort, name + ":" + OtherTargetPort));
            }
            s._kubeconfig = await fixture.ControlPlane.AttachAsync(s._node.Ns, RealApiFixture.ReleaseNamespace, RealApiFixture.Release);
            await s.Api.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = s.Namespace, Labels = new Dictionary<string, string> { ["test"] = "e2e" } } });
            return s;
        }
        catch
        {
            await s.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts `ebpf-proxy run --kubeconfig` in the node namespace; waits for its first sync unless told not to; returns that sync's line.</summary>
    public Task<string> StartDaemonAsync(bool waitForFirstSync = true) =>
        StartDaemonAsync(Binaries.EbpfProxy,
            ["run", "--kubeconfig", _kubeconfig, "--bpffs", _bpffs.Path, "--node-name", RealApiFixture.NodeName, "--min-sync-interval", "0",
             "--bpf-dir", Binaries.BpfDir, "--conntrack-max", "65536", "--cgroup-root", _cgroup.Path, "--cluster-cidr", "10.244.0.0/16",
             "--nodeport-addresses", "192.168.77.0/24", "--service-cidr", ControlPlane.ServiceCidr],
            env: null, waitForFirstSync);

    /// <summary>
    /// Starts <paramref name="fileName"/> as the daemon in the node namespace (the chart's container run by
    /// Chart/container-run.sh in the chart tests); waits for its first sync unless told not to.
    /// </summary>
    public async Task<string> StartDaemonAsync(string fileName, IEnumerable<string> args, IDictionary<string, string>? env, bool waitForFirstSync = true)
    {
        Daemon = DaemonProcess.Start(_node.Ns, fileName, args, env);
        if (!waitForFirstSync)
            return "";
        var m = await Daemon.WaitForOutputAsync(new Regex(@"Sync #1 .*"), TimeSpan.FromSeconds(60));
        return m.Value;
    }

    /// <summary>Waits until the daemon has attached to the client's and every echo pod's veth and to the node's wire.</summary>
    public async Task WaitForAttachmentsAsync()
    {
        await Daemon.WaitForLinesAsync("Attached the pod programs", 1 + Echo.Count, TimeSpan.FromSeconds(20));
        await Daemon.WaitForLinesAsync("Attached the netdev programs to eth0", 1, TimeSpan.FromSeconds(20));
    }

    /// <summary>A Service selecting app=echo: TCP 80 -> <paramref name="targetPort"/> and UDP 80 -> 8080; the API server allocates the ClusterIP (and NodePort).</summary>
    public async Task<V1Service> CreateServiceAsync(string name = "echo", string type = "ClusterIP", int targetPort = TargetPort)
    {
        var svc = new V1Service
        {
            Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = Namespace },
            Spec = new V1ServiceSpec
            {
                Type = type,
                Selector = new Dictionary<string, string> { ["app"] = "echo" },
                Ports =
                [
                    new V1ServicePort { Name = "http", Port = 80, TargetPort = targetPort, Protocol = "TCP" },
                    new V1ServicePort { Name = "udp", Port = 80, TargetPort = TargetPort, Protocol = "UDP" },
                ],
            },
        };
        return await Api.CoreV1.CreateNamespacedServiceAsync(svc, Namespace);
    }

    /// <summary>Creates pod <paramref name="name"/> (labels app=echo unless given) on the node and, playing the kubelet, marks it Running with its address and the given readiness.</summary>
    public async Task CreatePodAsync(string name, bool ready = true, IDictionary<string, string>? labels = null, long? grace = null)
    {
        await Api.CoreV1.CreateNamespacedPodAsync(new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = Namespace, Labels = labels ?? new Dictionary<string, string> { ["app"] = "echo" } },
            Spec = new V1PodSpec
            {
                NodeName = RealApiFixture.NodeName,
                TerminationGracePeriodSeconds = grace,
                Containers = [new V1Container { Name = "echo", Image = "echo", Ports = [new V1ContainerPort { ContainerPort = TargetPort, Name = "http" }] }],
            },
        }, Namespace);
        await SetReadyAsync(name, ready);
    }

    /// <summary>Writes the pod's status as a kubelet would: Running, its address, Ready = <paramref name="ready"/>.</summary>
    /// <summary>Registers the client pod in the API (on this node, labelled role=<paramref name="role"/>) and makes it ready.</summary>
    public async Task CreateClientPodAsync(string role)
    {
        await Api.CoreV1.CreateNamespacedPodAsync(new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = "client", NamespaceProperty = Namespace, Labels = new Dictionary<string, string> { ["role"] = role } },
            Spec = new V1PodSpec { NodeName = RealApiFixture.NodeName, Containers = [new V1Container { Name = "c", Image = "c" }] },
        }, Namespace);
        await SetReadyAsync("client", true);
    }

    /// <summary>NetworkPolicy only-clients: the echo pods admit ingress from pods labelled role=client only (on <paramref name="port"/> when given).</summary>
    public async Task CreateOnlyClientsPolicyAsync(int? port = null) =>
        await Api.NetworkingV1.CreateNamespacedNetworkPolicyAsync(new V1NetworkPolicy
        {
            Metadata = new V1ObjectMeta { Name = "only-clients", NamespaceProperty = Namespace },
            Spec = new V1NetworkPolicySpec
            {
                PodSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = "echo" } },
                PolicyTypes = ["Ingress"],
                Ingress = [new V1NetworkPolicyIngressRule
                {
                    FromProperty = [new V1NetworkPolicyPeer { PodSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["role"] = "client" } } }],
                    Ports = port is { } p ? [new V1NetworkPolicyPort { Port = p, Protocol = "TCP" }] : null,
                }],
            },
        }, Namespace);

    public async Task SetReadyAsync(string name, bool ready)
    {
        var ip = (name == "client" ? Client : Echo[name]).Ip.ToString();
        var status = new
        {
            status = new
            {
                phase = "Running",
                podIP = ip,
                podIPs = new[] { new { ip } },
                hostIP = NodeAddress.ToString(),
                conditions = new[]
                {
                    new { type = "Ready", status = ready ? "True" : "False", lastTransitionTime = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ") },
                    new { type = "ContainersReady", status = ready ? "True" : "False", lastTransitionTime = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ") },
                },
            },
        };
        await Api.CoreV1.PatchNamespacedPodStatusAsync(new V1Patch(JsonSerializer.Serialize(status), V1Patch.PatchType.MergePatch), name, Namespace);
    }

    /// <summary>Deletes pod <paramref name="name"/> with this grace period (0: at once; otherwise it stays terminating, since no kubelet finishes it).</summary>
    public async Task DeletePodAsync(string name, long grace) =>
        await Api.CoreV1.DeleteNamespacedPodAsync(name, Namespace, new V1DeleteOptions { GracePeriodSeconds = grace });

    /// <summary>Applies a JSON merge patch to pod <paramref name="name"/> (labels, say).</summary>
    public async Task PatchPodAsync(string name, object patch) =>
        await Api.CoreV1.PatchNamespacedPodAsync(new V1Patch(JsonSerializer.Serialize(patch), V1Patch.PatchType.MergePatch), name, Namespace);

    /// <summary>Applies a JSON merge patch to service <paramref name="name"/>.</summary>
    public async Task PatchServiceAsync(string name, object patch) =>
        await Api.CoreV1.PatchNamespacedServiceAsync(new V1Patch(JsonSerializer.Serialize(patch), V1Patch.PatchType.MergePatch), name, Namespace);

    public async Task<V1Service> ReadServiceAsync(string name = "echo") => await Api.CoreV1.ReadNamespacedServiceAsync(name, Namespace);

    /// <summary>The backend addresses of the active slots the pinned maps hold for <paramref name="vip"/>:<paramref name="port"/>/TCP (terminating fallbacks left out), or null when the frontend is absent.</summary>
    public HashSet<IPAddress>? MapBackends(IPAddress vip, int port = 80, EbpfProxy.Core.Model.L4Protocol protocol = EbpfProxy.Core.Model.L4Protocol.Tcp)
    {
        if (!File.Exists(Path.Combine(PinPath, LbMaps.Services)))
            return null;
        using var maps = LbMaps.OpenPinned(PinPath);
        var state = LbMapIo.Read(maps);
        var fe = state.Frontends.FirstOrDefault(kv => kv.Key.Frontend.Address.Equals(vip) && kv.Key.Frontend.Port == port && kv.Key.Frontend.Protocol == protocol).Value;
        if (fe?.Service is not { } svc)
            return null;
        // A torn read (a slot naming a backend written after our read of the backends map) shows as 0.0.0.0.
        return fe.Slots.Where(s => s.Key >= 1 && s.Key <= svc.Count)
            .Select(s => state.Backends.TryGetValue(s.Value, out var be) ? be.Address.Address : IPAddress.Any).ToHashSet();
    }

    /// <summary>Waits until the maps hold exactly these echo pods for the frontend (an empty list: a frontend without backends; null: no frontend); returns how long it took.</summary>
    public async Task<TimeSpan> WaitForMapBackendsAsync(IPAddress vip, IEnumerable<string>? expected, TimeSpan timeout, int port = 80)
    {
        var want = expected?.Select(n => Echo[n].Ip).ToHashSet();
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var have = MapBackends(vip, port);
            if (want is null ? have is null : have is not null && have.SetEquals(want))
                return sw.Elapsed;
            if (sw.Elapsed > timeout)
                throw new TimeoutException($"maps hold [{string.Join(", ", have ?? [])}] for {vip}:{port} after {timeout}, want [{string.Join(", ", want ?? [])}]\n{Daemon.FormatOutput()}");
            await Task.Delay(10);
        }
    }

    /// <summary>Opens <paramref name="n"/> fresh TCP connections from <paramref name="from"/> (the client pod by default) and returns who answered each.</summary>
    public Task<List<string>> TcpRoundAsync(IPAddress vip, int port, int n, NetNs? from = null) => ProxyScenario.TcpRoundAsync(from ?? Client.Ns, vip, port, n);

    public async ValueTask DisposeAsync()
    {
        if (Daemon is not null)
        {
            _output.WriteLine(Daemon.FormatOutput("ebpf-proxy output"));
            await Daemon.DisposeAsync();
        }
        try
        {
            // The namespace controller removes what the test created; later tests do not wait for it.
            await Api.CoreV1.DeleteNamespaceAsync(Namespace);
        }
        catch (Exception e) when (e is k8s.Autorest.HttpOperationException or HttpRequestException or InvalidOperationException)
        {
        }
        if (_node is not null)
            _fixture.ControlPlane.Detach(_node.Ns);
        foreach (var s in _servers)
            await s.DisposeAsync();
        _topo.Dispose();
        _bpffs.Dispose();
        _cgroup.Dispose();
    }
}
