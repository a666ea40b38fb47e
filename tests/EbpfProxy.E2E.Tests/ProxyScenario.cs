using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using EbpfProxy.Core.Planning;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Sync;
using EbpfProxy.Testing;
using EbpfProxy.Testing.KubeApi;
using k8s.Models;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests;

/// <summary>
/// One node namespace with a client pod and echo pods, the real `ebpf-proxy run` process in the
/// node namespace with its own bpffs, fed through a manifest folder the test rewrites.
/// </summary>
public sealed class ProxyScenario : IAsyncDisposable
{
    public static readonly IPAddress Vip = IPAddress.Parse("10.96.0.42");
    public const int ServicePort = 80;
    public const int TargetPort = 8080;

    private readonly Topology _topo;
    private readonly BpfFsMount _bpffs;
    private readonly TestCgroup _cgroup;
    private readonly List<EchoServer> _servers = [];
    private readonly ITestOutputHelper _output;

    private ProxyScenario(ITestOutputHelper output)
    {
        _output = output;
        _topo = Topology.Create();
        _bpffs = BpfFsMount.CreateTemp();
        _cgroup = TestCgroup.Create();
        ManifestDir = Directory.CreateTempSubdirectory("ebpfproxy-e2e-manifests-").FullName;
    }

    public string ManifestDir { get; }
    public Pod Client { get; private set; } = null!;
    public Dictionary<string, Pod> Echo { get; } = [];
    public DaemonProcess Daemon { get; private set; } = null!;
    public string PinPath => Path.Combine(_bpffs.Path, "ebpf-proxy");
    public string BpfFsPath => _bpffs.Path;

    /// <summary>
    /// API mode: a fake Kubernetes API server listening inside the node namespace (on its own
    /// loopback, unreachable from anywhere else), the daemon started with --kubeconfig.
    /// </summary>
    public FakeKubeApiServer? Api { get; private set; }

    private string? _kubeconfig;
    private string[] _extraArgs = [];

    public static async Task<ProxyScenario> StartWithApiAsync(ITestOutputHelper output, int echoPods, IEnumerable<string> initialBackends, bool waitForFirstSync = true)
    {
        Privileged.EnsureRoot();
        var s = new ProxyScenario(output);
        try
        {
            var node = s.BuildPods(echoPods);
            s.Api = await FakeKubeApiServer.StartInNamespaceAsync(node.Ns, IPAddress.Loopback, 6443);
            s._kubeconfig = s.Api.WriteKubeconfig(Path.Combine(s.ManifestDir, "kubeconfig"));
            s.Api.Upsert(new V1Node { Metadata = new V1ObjectMeta { Name = "node", Labels = new Dictionary<string, string> { ["topology.kubernetes.io/zone"] = "zone-a" } } });
            s.Api.Upsert(EchoService());
            s.Api.Upsert(EchoSlice(initialBackends.Select(n => s.Echo[n].Ip)));
            if (waitForFirstSync)
            {
                await s.StartDaemonAsync();
                await s.WaitForAttachmentsAsync(1 + echoPods);
            }
            return s;
        }
        catch
        {
            await s.DisposeAsync();
            throw;
        }
    }

    public static V1Service EchoService() => new()
    {
        Metadata = new V1ObjectMeta { Name = "echo", NamespaceProperty = "default" },
        Spec = new V1ServiceSpec
        {
            ClusterIP = Vip.ToString(),
            ClusterIPs = [Vip.ToString()],
            Selector = new Dictionary<string, string> { ["app"] = "echo" },
            Ports =
            [
                new V1ServicePort { Name = "http", Port = ServicePort, TargetPort = TargetPort, Protocol = "TCP" },
                new V1ServicePort { Name = "udp", Port = ServicePort, TargetPort = TargetPort, Protocol = "UDP" },
            ],
        },
    };

    /// <summary>The echo service's EndpointSlice, as the EndpointSlice controller would write it.</summary>
    public static V1EndpointSlice EchoSlice(IEnumerable<IPAddress> backends) => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = "echo-abcde",
            NamespaceProperty = "default",
            Labels = new Dictionary<string, string> { ["kubernetes.io/service-name"] = "echo" },
            Annotations = new Dictionary<string, string> { ["endpoints.kubernetes.io/last-change-trigger-time"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ") },
        },
        AddressType = "IPv4",
        Ports =
        [
            new Discoveryv1EndpointPort { Name = "http", Port = TargetPort, Protocol = "TCP" },
            new Discoveryv1EndpointPort { Name = "udp", Port = TargetPort, Protocol = "UDP" },
        ],
        Endpoints = [.. backends.Select(ip => new V1Endpoint { Addresses = [ip.ToString()], Conditions = new V1EndpointConditions { Ready = true }, NodeName = "node" })],
    };

    /// <summary>Points the echo slice at these backends through the API.</summary>
    public void SetApiBackends(IEnumerable<string> backends) => Api!.Upsert(EchoSlice(backends.Select(n => Echo[n].Ip)));

    private Node BuildPods(int echoPods)
    {
        var node = _topo.AddNode("node");
        _node = node;
        Client = node.AddPod("client", IPAddress.Parse("10.244.0.2"));
        for (int i = 1; i <= echoPods; i++)
        {
            var name = $"echo-{i}";
            var pod = node.AddPod(name, IPAddress.Parse($"10.244.0.{10 + i}"));
            Echo[name] = pod;
            _servers.Add(EchoServer.StartTcp(pod.Ns, pod.Ip, TargetPort, name));
            _servers.Add(EchoServer.StartUdp(pod.Ns, pod.Ip, TargetPort, name));
        }
        return node;
    }

    public static async Task<ProxyScenario> StartAsync(ITestOutputHelper output, int echoPods, IEnumerable<string> initialBackends, string[]? extraArgs = null)
    {
        Privileged.EnsureRoot();
        var s = new ProxyScenario(output) { _extraArgs = extraArgs ?? [] };
        try
        {
            s.BuildPods(echoPods);
            s.WriteManifest(initialBackends);
            await s.StartDaemonAsync();
            await s.WaitForAttachmentsAsync(1 + echoPods);
            return s;
        }
        catch
        {
            await s.DisposeAsync();
            throw;
        }
    }

    private Node _node = null!;

    /// <summary>Starts `ebpf-proxy run` in the node namespace and waits for its first sync; returns that sync's log line.</summary>
    public async Task<string> StartDaemonAsync(bool waitForFirstSync = true)
    {
        string[] source = _kubeconfig is null ? ["--manifests", ManifestDir] : ["--kubeconfig", _kubeconfig];
        Daemon = DaemonProcess.Start(_node.Ns, Binaries.EbpfProxy,
            ["run", .. source, "--bpffs", _bpffs.Path, "--node-name", "node", "--min-sync-interval", "0",
             "--bpf-dir", Binaries.BpfDir, .. (_extraArgs.Contains("--conntrack-max") ? Array.Empty<string>() : ["--conntrack-max", "65536"]),
             "--cgroup-root", _cgroup.Path, .. _extraArgs]);
        if (!waitForFirstSync)
            return "";
        var m = await Daemon.WaitForOutputAsync(new Regex(@"Sync #1 .*"), TimeSpan.FromSeconds(30));
        return m.Value;
    }

    public NetNs NodeNs => _node.Ns;

    /// <summary>The daemon's socket hooks attach here; processes started by <see cref="TestCgroup.RunAsync"/> are "host network" of the node.</summary>
    public TestCgroup Cgroup => _cgroup;

    /// <summary>GET http://127.0.0.1:10256{path} from inside the node namespace: (status, body).</summary>
    public Task<(int Status, string Body)> GetHealthAsync(string path = "/healthz") => GetAsync(10256, path);

    /// <summary>GET http://127.0.0.1:{port}{path} from inside the node namespace: (status, body).</summary>
    public async Task<(int Status, string Body)> GetAsync(int port, string path = "/")
    {
        using var http = new HttpClient(NetNsHttp.CreateHandler(_node.Ns)) { Timeout = TimeSpan.FromSeconds(5) };
        using var response = await http.GetAsync($"http://127.0.0.1:{port}{path}");
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>Number of entries in the pinned lb4_services map (0 when the daemon has not written it).</summary>
    public int ServiceMapEntries()
    {
        if (!File.Exists(Path.Combine(PinPath, LbMaps.Services)))
            return 0;
        using var maps = LbMaps.OpenPinned(PinPath);
        return maps.Lb4Services.Keys().Count();
    }

    /// <summary>Writes another manifest file next to echo.yaml.</summary>
    public void WriteExtraManifest(string fileName, string yaml)
    {
        var tmp = Path.Combine(ManifestDir, "." + fileName + ".tmp");
        File.WriteAllText(tmp, yaml);
        File.Move(tmp, Path.Combine(ManifestDir, fileName), overwrite: true);
    }

    /// <summary>Rewrites the manifest: Service echo (TCP and UDP port 80 -> 8080) and the named pods.</summary>
    public void WriteManifest(IEnumerable<string> backends)
    {
        var sb = new StringBuilder("""
            apiVersion: v1
            kind: Service
            metadata: {name: echo, namespace: default}
            spec:
              clusterIP: 10.96.0.42
              selector: {app: echo}
              ports:
              - {name: http, port: 80, targetPort: 8080, protocol: TCP}
              - {name: udp, port: 80, targetPort: 8080, protocol: UDP}

            """);
        foreach (var name in backends)
        {
            sb.Append($$$"""
                ---
                apiVersion: v1
                kind: Pod
                metadata: {name: {{{name}}}, namespace: default, labels: {app: echo}}
                spec: {nodeName: node, containers: [{name: echo, image: echo}]}
                status: {phase: Running, podIP: {{{Echo[name].Ip}}}, conditions: [{type: Ready, status: "True"}]}

                """);
        }
        // Write then rename, as editors and ConfigMap updates do.
        var tmp = Path.Combine(ManifestDir, ".echo.yaml.tmp");
        File.WriteAllText(tmp, sb.ToString());
        File.Move(tmp, Path.Combine(ManifestDir, "echo.yaml"), overwrite: true);
    }

    /// <summary>The backend addresses the pinned maps hold for the TCP frontend, or null when it is absent.</summary>
    public HashSet<IPAddress>? MapBackends()
    {
        using var maps = LbMaps.OpenPinned(PinPath);
        var state = LbMapIo.Read(maps);
        var fe = state.Frontends.FirstOrDefault(kv => kv.Key.Frontend.Address.Equals(Vip) && kv.Key.Frontend.Protocol == Core.Model.L4Protocol.Tcp).Value;
        if (fe?.Service is not { } svc)
            return null;
        // The daemon may be writing while we read: a slot can name a backend written after our
        // read of the backends map. Report such a torn read as "unknown" (0.0.0.0).
        return fe.Slots.Where(s => s.Key <= svc.Count + svc.TerminatingCount)
            .Select(s => state.Backends.TryGetValue(s.Value, out var be) ? be.Address.Address : IPAddress.Any).ToHashSet();
    }

    /// <summary>Waits until the maps hold exactly <paramref name="expected"/>; returns how long that took.</summary>
    public async Task<TimeSpan> WaitForMapBackendsAsync(IEnumerable<string> expected, TimeSpan timeout)
    {
        var want = expected.Select(n => Echo[n].Ip).ToHashSet();
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var have = MapBackends();
            if (have is not null && have.SetEquals(want))
                return sw.Elapsed;
            if (sw.Elapsed > timeout)
                throw new TimeoutException($"maps hold [{string.Join(", ", have ?? [])}] after {timeout}, want [{string.Join(", ", want)}]\n{Daemon.FormatOutput()}");
            await Task.Delay(10);
        }
    }

    public Task WaitForAttachmentsAsync(int count) =>
        Daemon.WaitForLinesAsync("Attached the pod programs", count, TimeSpan.FromSeconds(10));

    /// <summary>Opens <paramref name="n"/> fresh TCP connections to the VIP and returns who answered each.</summary>
    public Task<List<string>> TcpRoundAsync(int n) => TcpRoundAsync(Client.Ns, Vip, ServicePort, n);

    /// <summary>Opens <paramref name="n"/> fresh TCP connections from <paramref name="from"/> to <paramref name="vip"/>:<paramref name="port"/>; each must come back from that address and echo its request; returns who answered each.</summary>
    public static async Task<List<string>> TcpRoundAsync(NetNs from, IPAddress vip, int port, int n)
    {
        var who = new List<string>();
        for (int i = 0; i < n; i++)
        {
            using var conn = await TcpProbe.ConnectAsync(from, vip, port, TimeSpan.FromSeconds(3));
            Assert.Equal(new IPEndPoint(vip, port), conn.RemoteEndPoint);
            var reply = await conn.RequestAsync($"req{i}", TimeSpan.FromSeconds(3));
            Assert.EndsWith($" req{i}", reply);
            who.Add(reply.Split(' ')[0]);
        }
        return who;
    }

    /// <summary>Sends <paramref name="n"/> UDP requests to the VIP from fresh sockets; every reply must come from the VIP.</summary>
    public async Task<List<string>> UdpRoundAsync(int n)
    {
        var who = new List<string>();
        for (int i = 0; i < n; i++)
        {
            var (reply, from) = await UdpProbe.RequestAsync(Client.Ns, Vip, ServicePort, $"dgram{i}", TimeSpan.FromSeconds(3));
            Assert.Equal(new IPEndPoint(Vip, ServicePort), from);
            Assert.EndsWith($" dgram{i}", reply);
            who.Add(reply.Split(' ')[0]);
        }
        return who;
    }

    public async ValueTask DisposeAsync()
    {
        if (Daemon is not null)
        {
            _output.WriteLine(Daemon.FormatOutput("ebpf-proxy output"));
            await Daemon.DisposeAsync();
        }
        if (Api is not null)
            await Api.DisposeAsync();
        foreach (var s in _servers)
            await s.DisposeAsync();
        _topo.Dispose();
        _bpffs.Dispose();
        _cgroup.Dispose();
        try
        {
            Directory.Delete(ManifestDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Locates the built executable and BPF objects (make build puts them in artifacts/bin).</summary>
public static class Binaries
{
    public static string RepoRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "EbpfProxy.sln")))
                dir = dir.Parent;
            return dir?.FullName ?? throw new InvalidOperationException("repository root (EbpfProxy.sln) not found above " + AppContext.BaseDirectory);
        }
    }

    public static string EbpfProxy => Require(Environment.GetEnvironmentVariable("EBPF_PROXY_BIN") ?? Path.Combine(RepoRoot, "artifacts", "bin", "ebpf-proxy"));

    public static string BpfDir => Path.GetDirectoryName(Require(Path.Combine(Path.GetDirectoryName(EbpfProxy)!, "pod.bpf.o")))!;

    private static string Require(string path) =>
        File.Exists(path) ? path : throw new FileNotFoundException($"{path} not found: run `make build` first", path);
}
