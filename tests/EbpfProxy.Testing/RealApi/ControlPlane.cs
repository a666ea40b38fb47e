using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using EbpfProxy.Testing.KubeApi;
using k8s;
using k8s.Models;

namespace EbpfProxy.Testing.RealApi;

/// <summary>
/// A real Kubernetes control plane for tests: etcd, kube-apiserver and kube-controller-manager
/// (EndpointSlice, namespace, garbage-collector and service-account controllers; no kubelet, no
/// scheduler: tests write pod status themselves) in a network namespace of their own.
/// </summary>
/// <remarks>
/// <para>Nothing listens outside that namespace. A node namespace reaches the API server through a veth pair
/// (<see cref="AttachAsync"/>) with link-local addresses, so the daemon does not take the link for a node network
/// device. The test process talks to the API from inside the namespace (<see cref="NetNsHttp"/>).</para>
/// <para>Every process runs in the namespace, started by PID with <c>setsid</c>, and is stopped by PID on
/// <see cref="DisposeAsync"/>, even when start-up failed halfway. Should the test process itself die,
/// <see cref="StaleCleanup"/> in the next run kills whatever still runs in the dead run's namespaces before
/// deleting them, and removes its data folder (etcd's data, the certificates).</para>
/// <para>The recipe (flags, no node lifecycle controller, SIGKILL for an outage since a SIGTERM'd server
/// keeps serving open watches) follows shared/k8s/README.md.</para>
/// </remarks>
public sealed class ControlPlane : IAsyncDisposable
{
    /// <summary>The API server's address on the veths toward attached nodes.</summary>
    public static readonly IPAddress ApiAddress = IPAddress.Parse("169.254.255.1");

    /// <summary>The advertised address (the <c>kubernetes</c> Service's endpoint), on the namespace's loopback.</summary>
    public static readonly IPAddress AdvertiseAddress = IPAddress.Parse("10.255.255.1");

    /// <summary>The API server's port.</summary>
    public const int ApiPort = 6443;

    /// <summary>The service CIDR the API server allocates ClusterIPs from.</summary>
    public const string ServiceCidr = "10.96.0.0/12";

    private const int EtcdPort = 2379;
    private const int EtcdPeerPort = 2380;

    private readonly List<DaemonProcess> _stopped = [];
    private readonly List<(NetNs Node, string CpSide)> _links = [];
    private readonly Lock _gate = new();
    private int _linkCounter;
    private string[] _apiServerArgs = [];

    private ControlPlane(NetNs ns, string dir)
    {
        Ns = ns;
        Folder = dir;
    }

    /// <summary>The control plane's network namespace.</summary>
    public NetNs Ns { get; }

    /// <summary>The run folder: certificates, kubeconfigs, etcd's data.</summary>
    public string Folder { get; }

    /// <summary>etcd, running.</summary>
    public DaemonProcess Etcd { get; private set; } = null!;

    /// <summary>The current kube-apiserver process (replaced by <see cref="RestartApiServerAsync"/>).</summary>
    public DaemonProcess ApiServer { get; private set; } = null!;

    /// <summary>kube-controller-manager, running.</summary>
    public DaemonProcess ControllerManager { get; private set; } = null!;

    /// <summary>A cluster-admin client (client certificate in <c>system:masters</c>) connecting from inside <see cref="Ns"/>.</summary>
    public Kubernetes Admin { get; private set; } = null!;

    private string CaPem => File.ReadAllText(Path.Combine(Folder, "ca.crt"));

    /// <summary>Starts etcd, the API server (ready) and the controller manager.</summary>
    public static async Task<ControlPlane> StartAsync()
    {
        Privileged.EnsureRoot();
        foreach (var p in ControlPlaneAssets.Programs)
            ControlPlaneAssets.Require(p);
        StaleCleanup.EnsureRanOnce();
        var ns = NetNs.Create("k8s");
        var dir = Names.TempPath("k8s");
        Directory.CreateDirectory(dir);
        var cp = new ControlPlane(ns, dir);
        try
        {
            ns.Ip("link", "set", "lo", "up");
            ns.Ip("addr", "add", $"{AdvertiseAddress}/32", "dev", "lo");
            await cp.WriteCertificatesAsync();
            await cp.StartEtcdAsync();
            cp._apiServerArgs = cp.ApiServerArgs();
            await cp.StartApiServerAsync();
            cp.WriteKubeconfig(Path.Combine(dir, "admin.kubeconfig"), $"https://127.0.0.1:{ApiPort}",
                user: $"client-certificate-data: {B64(File.ReadAllText(Path.Combine(dir, "admin.crt")))}\n    client-key-data: {B64(File.ReadAllText(Path.Combine(dir, "admin.key")))}");
            var config = KubernetesClientConfiguration.BuildConfigFromConfigFile(Path.Combine(dir, "admin.kubeconfig")).UseNetNs(ns);
            cp.Admin = new Kubernetes(config);
            cp.StartControllerManager();
            return cp;
        }
        catch
        {
            await cp.DisposeAsync();
            throw;
        }
    }

    private DaemonProcess Start(string program, string[] args)
    {
        var p = DaemonProcess.Start(Ns, ControlPlaneAssets.Require(program), args);
        File.AppendAllText(Path.Combine(Folder, "pids"), $"{p.Pid} {program}\n");
        return p;
    }

    private void StartControllerManager() =>
        ControllerManager = Start("kube-controller-manager",
            ["--kubeconfig", Path.Combine(Folder, "admin.kubeconfig"),
             "--controllers", "endpointslice,endpointslicemirroring,namespace,garbagecollector,serviceaccount",
             "--leader-elect=false", "--bind-address", "127.0.0.1", "--service-cluster-ip-range", ServiceCidr,
             "--cluster-cidr", "10.244.0.0/16", "--concurrent-service-endpoint-syncs", "5"]);

    private async Task StartEtcdAsync()
    {
        Etcd = Start("etcd",
            ["--name", "default", "--data-dir", Path.Combine(Folder, "etcd"),
             "--listen-client-urls", $"http://127.0.0.1:{EtcdPort}", "--advertise-client-urls", $"http://127.0.0.1:{EtcdPort}",
             "--listen-peer-urls", $"http://127.0.0.1:{EtcdPeerPort}", "--initial-advertise-peer-urls", $"http://127.0.0.1:{EtcdPeerPort}",
             "--initial-cluster", $"default=http://127.0.0.1:{EtcdPeerPort}", "--log-level", "warn"]);
        using var http = new HttpClient(NetNsHttp.CreateHandler(Ns)) { Timeout = TimeSpan.FromSeconds(2) };
        await PollAsync(Etcd, async () => (await http.GetStringAsync($"http://127.0.0.1:{EtcdPort}/health")).Contains("true", StringComparison.Ordinal), "etcd /health");
    }

    private string[] ApiServerArgs() =>
        ["--etcd-servers", $"http://127.0.0.1:{EtcdPort}", "--bind-address", "0.0.0.0", "--secure-port", ApiPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
         "--advertise-address", AdvertiseAddress.ToString(),
         "--tls-cert-file", Path.Combine(Folder, "apiserver.crt"), "--tls-private-key-file", Path.Combine(Folder, "apiserver.key"),
         "--client-ca-file", Path.Combine(Folder, "ca.crt"),
         "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
         "--service-account-key-file", Path.Combine(Folder, "sa.pub"), "--service-account-signing-key-file", Path.Combine(Folder, "sa.key"),
         "--service-cluster-ip-range", ServiceCidr, "--authorization-mode", "Node,RBAC",
         // As kubeadm's API servers: the chart's optional init container is privileged.
         "--allow-privileged=true",
         // No kubelet creates the "default" ServiceAccount's token volume: pods need no account here.
         "--disable-admission-plugins", "ServiceAccount", "--enable-priority-and-fairness=false"];

    private async Task StartApiServerAsync()
    {
        ApiServer = Start("kube-apiserver", _apiServerArgs);
        // /readyz is public once RBAC's bootstrap policy is in: then the API is usable.
        var handler = NetNsHttp.CreateHandler(Ns);
        handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(2) };
        await PollAsync(ApiServer, async () =>
        {
            using var r = await http.GetAsync($"https://127.0.0.1:{ApiPort}/readyz");
            return r.IsSuccessStatusCode;
        }, "kube-apiserver /readyz");
    }

    /// <summary>SIGKILLs the API server (an outage: a SIGTERM'd server would keep serving open watches).</summary>
    public async Task KillApiServerAsync()
    {
        ApiServer.SendSignal(Native.Libc.SIGKILL);
        await ApiServer.StopAsync(TimeSpan.FromSeconds(10));
        lock (_gate)
            _stopped.Add(ApiServer);
    }

    /// <summary>
    /// Starts the API server again (after <see cref="KillApiServerAsync"/>) and waits until it is ready.
    /// The controller manager is restarted with it: its informers back off for up to a minute after an
    /// outage, and the tests that share this control plane after the outage test need slices built promptly.
    /// </summary>
    public async Task RestartApiServerAsync()
    {
        await StartApiServerAsync();
        var old = ControllerManager;
        await old.StopAsync(TimeSpan.FromSeconds(10));
        lock (_gate)
            _stopped.Add(old);
        StartControllerManager();
    }

    /// <summary>
    /// Compacts etcd's history up to its current revision (through etcd's JSON gateway): a watch resuming
    /// from an older resource version then gets 410 Gone from storage.
    /// </summary>
    public async Task<long> CompactEtcdAsync()
    {
        using var http = new HttpClient(NetNsHttp.CreateHandler(Ns)) { Timeout = TimeSpan.FromSeconds(10) };
        var range = await http.PostAsync($"http://127.0.0.1:{EtcdPort}/v3/kv/range",
            new StringContent("{\"key\":\"Lw==\",\"limit\":1}", Encoding.UTF8, "application/json"));
        range.EnsureSuccessStatusCode();
        var body = await range.Content.ReadAsStringAsync();
        var revision = long.Parse(Regex.Match(body, "\"revision\":\"?(\\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        var compact = await http.PostAsync($"http://127.0.0.1:{EtcdPort}/v3/kv/compaction",
            new StringContent($"{{\"revision\":\"{revision}\",\"physical\":true}}", Encoding.UTF8, "application/json"));
        compact.EnsureSuccessStatusCode();
        return revision;
    }

    /// <summary>
    /// Creates the ServiceAccount, ClusterRole and ClusterRoleBinding of the rendered Helm chart
    /// (<paramref name="renderedChart"/>: every manifest `helm template` prints; the other kinds are left out)
    /// in <paramref name="ns"/> unless they exist.
    /// </summary>
    public async Task ApplyChartRbacAsync(string renderedChart, string ns)
    {
        var text = string.Join("\n---\n", renderedChart.Split("\n---\n")
            .Where(d => Regex.IsMatch(d, @"^kind: (ServiceAccount|ClusterRole|ClusterRoleBinding)$", RegexOptions.Multiline)));
        foreach (var o in KubernetesYaml.LoadAllFromString(text))
        {
            try
            {
                switch (o)
                {
                    case V1ServiceAccount sa:
                        await Admin.CoreV1.CreateNamespacedServiceAccountAsync(sa, ns);
                        break;
                    case V1ClusterRole role:
                        await Admin.RbacAuthorizationV1.CreateClusterRoleAsync(role);
                        break;
                    case V1ClusterRoleBinding binding:
                        await Admin.RbacAuthorizationV1.CreateClusterRoleBindingAsync(binding);
                        break;
                    default:
                        throw new InvalidOperationException($"the chart's RBAC holds an unexpected object {o.GetType().Name}");
                }
            }
            catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict)
            {
            }
        }
    }

    /// <summary>
    /// Links <paramref name="node"/> to the API server (a veth pair, link-local addresses) and writes a
    /// kubeconfig there that authenticates as ServiceAccount <paramref name="serviceAccountNamespace"/>/<paramref name="serviceAccount"/>
    /// with a bound token (TokenRequest). Returns the kubeconfig's path.
    /// </summary>
    public async Task<string> AttachAsync(NetNs node, string serviceAccountNamespace, string serviceAccount)
    {
        int n;
        lock (_gate)
            n = ++_linkCounter;
        var nodeAddress = IPAddress.Parse($"169.254.{200 + (n / 250)}.{2 + (n % 250)}");
        var cpSide = $"node{n}";
        Ns.Ip("link", "add", cpSide, "type", "veth", "peer", "name", "k8sapi", "netns", node.Name);
        lock (_gate)
            _links.Add((node, cpSide));
        Ns.Ip("addr", "add", $"{ApiAddress}/32", "dev", cpSide);
        Ns.Ip("link", "set", cpSide, "up");
        Ns.Ip("route", "add", $"{nodeAddress}/32", "dev", cpSide);
        node.Ip("addr", "add", $"{nodeAddress}/32", "dev", "k8sapi");
        node.Ip("link", "set", "k8sapi", "up");
        node.Ip("route", "add", $"{ApiAddress}/32", "dev", "k8sapi", "src", nodeAddress.ToString());

        var request = await Admin.CoreV1.CreateNamespacedServiceAccountTokenAsync(
            new Authenticationv1TokenRequest { Spec = new V1TokenRequestSpec { ExpirationSeconds = 3600 } }, serviceAccount, serviceAccountNamespace);
        var path = Path.Combine(Folder, $"node{n}.kubeconfig");
        WriteKubeconfig(path, $"https://{ApiAddress}:{ApiPort}", user: $"token: {request.Status.Token}");
        return path;
    }

    /// <summary>Removes the link <see cref="AttachAsync"/> made to <paramref name="node"/> (when the node namespace is still there).</summary>
    public void Detach(NetNs node)
    {
        List<string> sides;
        lock (_gate)
        {
            sides = _links.Where(l => l.Node == node).Select(l => l.CpSide).ToList();
            _links.RemoveAll(l => l.Node == node);
        }
        foreach (var side in sides)
            Cmd.TryRun("ip", "-n", Ns.Name, "link", "del", side);
    }

    private void WriteKubeconfig(string path, string server, string user)
    {
        File.WriteAllText(path, $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: test
              cluster:
                server: {server}
                certificate-authority-data: {B64(CaPem)}
            users:
            - name: test
              user:
                {user}
            contexts:
            - name: test
              context: {"{"}cluster: test, user: test{"}"}
            current-context: test

            """);
    }

    private static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));

    private async Task WriteCertificatesAsync()
    {
        async Task Ssl(params string[] args) => await Cmd.RunAsync("openssl", args, TimeSpan.FromSeconds(60));
        string F(string name) => Path.Combine(Folder, name);
        await Ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", F("ca.key"), "-out", F("ca.crt"), "-days", "2", "-subj", "/CN=epx-test-ca");
        File.WriteAllText(F("server.ext"),
            $"subjectAltName=IP:127.0.0.1,IP:{ApiAddress},IP:{AdvertiseAddress},IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n");
        File.WriteAllText(F("client.ext"), "extendedKeyUsage=clientAuth\n");
        foreach (var (name, subject, ext) in new[] { ("apiserver", "/CN=kube-apiserver", "server.ext"), ("admin", "/O=system:masters/CN=admin", "client.ext") })
        {
            await Ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", F(name + ".key"), "-out", F(name + ".csr"), "-subj", subject);
            await Ssl("x509", "-req", "-in", F(name + ".csr"), "-CA", F("ca.crt"), "-CAkey", F("ca.key"), "-CAcreateserial",
                "-out", F(name + ".crt"), "-days", "2", "-extfile", F(ext));
        }
        await Ssl("genrsa", "-out", F("sa.key"), "2048");
        await Ssl("rsa", "-in", F("sa.key"), "-pubout", "-out", F("sa.pub"));
    }

    private static async Task PollAsync(DaemonProcess process, Func<Task<bool>> ready, string what)
    {
        var sw = Stopwatch.StartNew();
        Exception? last = null;
        while (sw.Elapsed < TimeSpan.FromSeconds(90))
        {
            if (process.HasExited)
                throw new InvalidOperationException($"{what}: the process exited\n{process.FormatOutput()}");
            try
            {
                if (await ready())
                    return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
            {
                last = e;
            }
            await Task.Delay(100);
        }
        throw new TimeoutException($"{what} not ready within 90 s (last error: {last?.Message})\n{process.FormatOutput()}");
    }

    /// <summary>The output of every process, for a failing test's log.</summary>
    public string FormatOutput(int lastLines = 40)
    {
        var sb = new StringBuilder();
        foreach (var p in new[] { Etcd, ApiServer, ControllerManager })
        {
            if (p is null)
                continue;
            sb.AppendLine($"----- {Path.GetFileName(p.CommandLine.Split(' ').Skip(4).FirstOrDefault() ?? "")} (pid {p.Pid}) last {lastLines} lines -----");
            foreach (var l in p.Output.TakeLast(lastLines))
                sb.AppendLine(l);
        }
        return sb.ToString();
    }

    /// <summary>Stops every process by PID (controller manager, API server, etcd), removes the links, the namespace and the folder.</summary>
    public async ValueTask DisposeAsync()
    {
        Admin?.Dispose();
        foreach (var p in new[] { ControllerManager, ApiServer, Etcd }.Concat(_stopped))
        {
            if (p is null)
                continue;
            try
            {
                await p.DisposeAsync();
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"[EbpfProxy.Testing] stopping {p}: {e.Message}");
            }
        }
        List<(NetNs, string)> links;
        lock (_gate)
            links = [.. _links];
        foreach (var (node, _) in links)
            Detach(node);
        Ns.Dispose();
        try
        {
            Directory.Delete(Folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
