using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using EbpfProxy.Testing;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests.Policy;

/// <summary>One pod of the model: namespace x/y/z, name a/b/c, its address and its Service's ClusterIP.</summary>
public sealed record ModelPod(string Namespace, string Name, Pod Pod, IPAddress ServiceIp)
{
    public string Key => $"{Namespace}/{Name}";
    public IPAddress Ip => Pod.Ip;
    public NetNs Ns => Pod.Ns;

    public override string ToString() => Key;
}

public enum Probe
{
    Tcp80,
    Tcp81,
    Udp80,
    Udp81,
}

/// <summary>
/// The upstream NetworkPolicy test model in namespaces: x, y, z each with pods a, b, c (labels
/// pod=NAME; namespaces labelled ns=NAME), every pod serving TCP and UDP on 80 and 81, one
/// ClusterIP Service per pod, all on one node with the real daemon, fed through a manifest folder
/// that the tests rewrite (policies, labels). <see cref="ExpectAsync"/> probes the 9x9 matrix with
/// real sockets, in parallel, and compares it cell by cell; a blocked probe concludes after
/// <see cref="ProbeTimeout"/>.
/// </summary>
public sealed class PolicyModel : IAsyncDisposable
{
    public static readonly string[] NamespaceNames = ["x", "y", "z"];
    public static readonly string[] PodNames = ["a", "b", "c"];
    public static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(1);

    private readonly ITestOutputHelper _output;
    private readonly Topology _topo;
    private readonly BpfFsMount _bpffs;
    private readonly List<EchoServer> _servers = [];
    private readonly Dictionary<string, Dictionary<string, string>> _namespaceLabels = [];
    private readonly Dictionary<string, Dictionary<string, string>> _podLabels = [];
    private Node _node = null!;

    private PolicyModel(ITestOutputHelper output)
    {
        _output = output;
        _topo = Topology.Create();
        _bpffs = BpfFsMount.CreateTemp();
        ManifestDir = Directory.CreateTempSubdirectory("ebpfproxy-e2e-netpol-").FullName;
    }

    public string ManifestDir { get; }
    public IReadOnlyList<ModelPod> Pods { get; private set; } = [];
    public DaemonProcess Daemon { get; private set; } = null!;
    public string PinPath => Path.Combine(_bpffs.Path, "ebpf-proxy");
    public string BpfFsPath => _bpffs.Path;

    public ModelPod this[string key] => Pods.Single(p => p.Key == key);

    /// <summary>The node's namespace (the daemon and its health server run there, on 127.0.0.1:10256).</summary>
    public NetNs NodeNs => _node.Ns;

    public static async Task<PolicyModel> StartAsync(ITestOutputHelper output)
    {
        Privileged.EnsureRoot();
        var m = new PolicyModel(output);
        try
        {
            m.Build();
            m.WriteCluster();
            m.WritePolicies();
            await m.StartDaemonAsync();
            return m;
        }
        catch
        {
            await m.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts the daemon and waits until its first sync is done and every pod has its programs.</summary>
    public async Task StartDaemonAsync()
    {
        if (Daemon is not null && !_stopped)
            _outputs.Add(Daemon.FormatOutput("ebpf-proxy output (earlier run)"));
        _stopped = false;
        Daemon = DaemonProcess.Start(_node.Ns, Binaries.EbpfProxy,
            ["run", "--manifests", ManifestDir, "--bpffs", _bpffs.Path, "--node-name", "node", "--min-sync-interval", "0",
             "--bpf-dir", Binaries.BpfDir, "--conntrack-max", "65536", "--cluster-cidr", "10.244.0.0/16",
             "--healthz-bind-address", "127.0.0.1:10256", "--host-services", "false"]);
        await Daemon.WaitForOutputAsync(new Regex("Sync #1 "), TimeSpan.FromSeconds(30));
        await Daemon.WaitForLinesAsync("Attached the pod programs", Pods.Count, TimeSpan.FromSeconds(10));
    }

    /// <summary>Stops the daemon (SIGTERM): its programs stay attached and its maps pinned.</summary>
    public async Task StopDaemonAsync()
    {
        _outputs.Add(Daemon.FormatOutput("ebpf-proxy output (stopped)"));
        await Daemon.DisposeAsync();
        _stopped = true;
    }

    private bool _stopped;

    private readonly List<string> _outputs = [];

    private void Build()
    {
        _node = _topo.AddNode("node");
        // The node's own address (a real node always has one): masquerade, hairpin included, uses it.
        _node.Ns.Ip("addr", "add", "192.168.99.1/32", "dev", "lo");
        var pods = new List<ModelPod>();
        for (int n = 0; n < NamespaceNames.Length; n++)
        {
            var ns = NamespaceNames[n];
            _namespaceLabels[ns] = new() { ["ns"] = ns, ["kubernetes.io/metadata.name"] = ns };
            for (int p = 0; p < PodNames.Length; p++)
            {
                var name = PodNames[p];
                // Pod namespaces are named after the pod; the model's namespace goes into the name.
                var pod = _node.AddPod($"{ns}{name}", IPAddress.Parse($"10.244.0.{(n + 1) * 10 + p + 1}"));
                var key = $"{ns}/{name}";
                _podLabels[key] = new() { ["pod"] = name };
                foreach (var port in new[] { 80, 81 })
                {
                    _servers.Add(EchoServer.StartTcp(pod.Ns, pod.Ip, port, key));
                    _servers.Add(EchoServer.StartUdp(pod.Ns, pod.Ip, port, key));
                }
                pods.Add(new ModelPod(ns, name, pod, IPAddress.Parse($"10.96.{n + 1}.{p + 1}")));
            }
        }
        Pods = pods;
    }

    /// <summary>Replaces the labels of a namespace (ns and kubernetes.io/metadata.name are kept unless overridden).</summary>
    public void SetNamespaceLabels(string ns, IDictionary<string, string> labels)
    {
        _namespaceLabels[ns] = new(labels) { ["kubernetes.io/metadata.name"] = ns };
        WriteCluster();
    }

    /// <summary>Replaces the labels of a pod ("x/a").</summary>
    public void SetPodLabels(string key, IDictionary<string, string> labels)
    {
        _podLabels[key] = new(labels);
        WriteCluster();
    }

    /// <summary>
    /// Declares a pod in the manifests (on this node, with its address, labels pod=NAME) whose
    /// interface does not exist yet: the API knows it before the CNI has run.
    /// </summary>
    public void DeclarePendingPod(string ns, string name, IPAddress ip) =>
        WriteAtomically($"pending-{ns}-{name}.yaml", $$$"""
            apiVersion: v1
            kind: Pod
            metadata: {name: {{{name}}}, namespace: {{{ns}}}, labels: {pod: {{{name}}}}}
            spec: {nodeName: node, containers: [{name: serve, image: agnhost}]}
            status: {phase: Running, podIP: {{{ip}}}, conditions: [{type: Ready, status: "True"}]}
            """);

    /// <summary>Creates a pod's namespace and veth now, as a CNI would while the daemon runs, with a UDP echo on port 80.</summary>
    public Pod CreatePodInterface(string name, IPAddress ip, string identity)
    {
        var pod = _node.AddPod(name, ip);
        _servers.Add(EchoServer.StartUdp(pod.Ns, pod.Ip, 80, identity));
        return pod;
    }

    /// <summary>Replaces every NetworkPolicy with these YAML documents.</summary>
    public void WritePolicies(params string[] policies) =>
        WriteAtomically("policies.yaml", string.Join("\n---\n", policies));

    private void WriteCluster()
    {
        var sb = new StringBuilder();
        foreach (var ns in NamespaceNames)
        {
            sb.Append($"""
                apiVersion: v1
                kind: Namespace
                metadata: {"{"}name: {ns}, labels: {Flow(_namespaceLabels[ns])}{"}"}
                ---

                """);
        }
        foreach (var p in Pods)
        {
            sb.Append($$"""
                apiVersion: v1
                kind: Pod
                metadata: {name: {{p.Name}}, namespace: {{p.Namespace}}, labels: {{Flow(_podLabels[p.Key])}}}
                spec:
                  nodeName: node
                  containers:
                  - name: serve
                    image: agnhost
                    ports:
                    - {name: serve-80-tcp, containerPort: 80, protocol: TCP}
                    - {name: serve-80-udp, containerPort: 80, protocol: UDP}
                    - {name: serve-81-tcp, containerPort: 81, protocol: TCP}
                    - {name: serve-81-udp, containerPort: 81, protocol: UDP}
                status: {phase: Running, podIP: {{p.Ip}}, conditions: [{type: Ready, status: "True"}]}
                ---
                apiVersion: v1
                kind: Service
                metadata: {name: s-{{p.Name}}, namespace: {{p.Namespace}}}
                spec:
                  clusterIP: {{p.ServiceIp}}
                  selector: {pod: {{p.Name}}}
                  ports:
                  - {name: tcp-80, port: 80, targetPort: 80, protocol: TCP}
                  - {name: udp-80, port: 80, targetPort: 80, protocol: UDP}
                  - {name: tcp-81, port: 81, targetPort: 81, protocol: TCP}
                  - {name: udp-81, port: 81, targetPort: 81, protocol: UDP}
                ---

                """);
        }
        WriteAtomically("cluster.yaml", sb.ToString());
    }

    private static string Flow(Dictionary<string, string> labels) =>
        "{" + string.Join(", ", labels.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"\"{kv.Key}\": \"{kv.Value}\"")) + "}";

    private void WriteAtomically(string fileName, string content)
    {
        var tmp = Path.Combine(ManifestDir, "." + fileName + ".tmp");
        File.WriteAllText(tmp, content);
        File.Move(tmp, Path.Combine(ManifestDir, fileName), overwrite: true);
    }

    /// <summary>One probe from <paramref name="from"/> to <paramref name="to"/> (its address, or its Service).</summary>
    public static async Task<bool> ProbeAsync(ModelPod from, ModelPod to, Probe probe, bool viaService)
    {
        var dst = viaService ? to.ServiceIp : to.Ip;
        int port = probe is Probe.Tcp80 or Probe.Udp80 ? 80 : 81;
        try
        {
            string reply = probe is Probe.Tcp80 or Probe.Tcp81
                ? await TcpProbe.RequestAsync(from.Ns, dst, port, "hi", ProbeTimeout)
                : (await UdpProbe.RequestAsync(from.Ns, dst, port, "hi", ProbeTimeout)).Reply;
            return reply == $"{to.Key} hi";
        }
        catch (ProbeFailedException)
        {
            return false;
        }
    }

    /// <summary>The 9x9 matrix for one probe kind: [from, to] = reachable.</summary>
    public async Task<bool[,]> ProbeMatrixAsync(Probe probe, bool viaService)
    {
        var cells = new Task<bool>[Pods.Count, Pods.Count];
        for (int i = 0; i < Pods.Count; i++)
            for (int j = 0; j < Pods.Count; j++)
                cells[i, j] = ProbeAsync(Pods[i], Pods[j], probe, viaService);
        var result = new bool[Pods.Count, Pods.Count];
        for (int i = 0; i < Pods.Count; i++)
            for (int j = 0; j < Pods.Count; j++)
                result[i, j] = await cells[i, j];
        return result;
    }

    /// <summary>
    /// Probes until the matrix equals <paramref name="expected"/> or <paramref name="within"/>
    /// passes, then asserts cell by cell. Returns how long the matrix took to converge. A pod
    /// reaching itself by address is always expected to work (that traffic never leaves the pod,
    /// as the upstream model assumes). Through its own Service it is not compared: kube-proxy
    /// masquerades that hairpin to the node, so the pod's ingress sees the node (admitted) while
    /// its egress is judged on itself; the flow suite and NetdevProgramTests cover hairpin.
    /// </summary>
    public async Task<TimeSpan> ExpectAsync(Func<ModelPod, ModelPod, bool> expected, Probe probe, bool viaService = false, TimeSpan? within = null)
    {
        var deadline = within ?? TimeSpan.FromSeconds(5);
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var started = sw.Elapsed;
            var actual = await ProbeMatrixAsync(probe, viaService);
            var wrong = new List<string>();
            for (int i = 0; i < Pods.Count; i++)
                for (int j = 0; j < Pods.Count; j++)
                {
                    if (i == j && viaService)
                        continue; // hairpin: masqueraded to the node (see the summary)
                    bool want = i == j || expected(Pods[i], Pods[j]);
                    if (actual[i, j] != want)
                        wrong.Add($"{Pods[i]} -> {Pods[j]}: expected {(want ? "allowed" : "blocked")}, got {(actual[i, j] ? "allowed" : "blocked")}");
                }
            if (wrong.Count == 0)
            {
                _output.WriteLine($"{probe}{(viaService ? " via services" : "")}: matrix as expected after {started.TotalMilliseconds:F0} ms (+{(sw.Elapsed - started).TotalMilliseconds:F0} ms probing)");
                return started;
            }
            if (sw.Elapsed > deadline)
            {
                Assert.Fail($"{probe}{(viaService ? " via services" : "")}: {wrong.Count} of {Pods.Count * Pods.Count} cells differ after {sw.Elapsed.TotalSeconds:F1} s\n"
                    + Format(actual, expected, viaService) + string.Join("\n", wrong) + "\n" + Daemon.FormatOutput());
            }
        }
    }

    private string Format(bool[,] actual, Func<ModelPod, ModelPod, bool> expected, bool viaService)
    {
        var sb = new StringBuilder("from\\to " + string.Join(" ", Pods.Select(p => p.Key)) + "\n");
        for (int i = 0; i < Pods.Count; i++)
        {
            sb.Append(Pods[i].Key.PadRight(7));
            for (int j = 0; j < Pods.Count; j++)
            {
                bool want = i == j || expected(Pods[i], Pods[j]);
                if (i == j && viaService)
                {
                    sb.Append("   - ");
                    continue;
                }
                sb.Append("  ").Append(actual[i, j] == want ? (want ? " . " : " X ") : (actual[i, j] ? "!. " : "!X "));
            }
            sb.Append('\n');
        }
        return sb.Append("(. allowed, X blocked, ! differs from the expectation)\n").ToString();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var earlier in _outputs.Where(o => o.Length > 0))
            _output.WriteLine(earlier);
        if (Daemon is not null && !_stopped)
        {
            _output.WriteLine(Daemon.FormatOutput("ebpf-proxy output"));
            await Daemon.DisposeAsync();
        }
        foreach (var s in _servers)
            await s.DisposeAsync();
        _topo.Dispose();
        _bpffs.Dispose();
        try
        {
            Directory.Delete(ManifestDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
