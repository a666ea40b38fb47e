using System.CommandLine;
using System.Net;
using System.Text.RegularExpressions;
using EbpfProxy.Testing;

// The seed scenario of examples/echo: a node namespace with a client pod and three `echo` pods,
// the real ebpf-proxy daemon attached to the node's pod veths, and real TCP/UDP requests to the
// Service VIP 10.96.0.42:80. Everything lives in namespaces created here and removed at the end.

var exeOption = new Option<string>("--ebpf-proxy") { Description = "path to the ebpf-proxy executable", Required = true };
var manifestsOption = new Option<string>("--manifests") { Description = "folder with the scenario's manifests", Required = true };
var root = new RootCommand("ebpf-proxy demo") { exeOption, manifestsOption };
root.SetAction(async (parse, ct) => await Demo.RunAsync(parse.GetValue(exeOption)!, parse.GetValue(manifestsOption)!, ct));
return await root.Parse(args).InvokeAsync();

internal static class Demo
{
    // These match examples/echo/echo.yaml.
    private static readonly IPAddress Vip = IPAddress.Parse("10.96.0.42");
    private const int ServicePort = 80;
    private const int TargetPort = 8080;
    private static readonly (string Name, IPAddress Ip)[] EchoPods =
    [
        ("echo-1", IPAddress.Parse("10.244.0.11")),
        ("echo-2", IPAddress.Parse("10.244.0.12")),
        ("echo-3", IPAddress.Parse("10.244.0.13")),
    ];
    private static readonly IPAddress ClientIp = IPAddress.Parse("10.244.0.2");

    public static async Task<int> RunAsync(string exe, string manifests, CancellationToken ct)
    {
        Privileged.EnsureRoot();
        StaleCleanup.RemoveLeftovers();
        exe = Path.GetFullPath(exe);
        var servers = new List<EchoServer>();
        using var topo = Topology.Create();
        using var bpffs = BpfFsMount.CreateTemp();
        var manifestDir = Directory.CreateTempSubdirectory("epx-demo-manifests-").FullName;
        DaemonProcess? daemon = null;
        try
        {
            foreach (var f in Directory.GetFiles(manifests, "*.yaml"))
                File.Copy(f, Path.Combine(manifestDir, Path.GetFileName(f)));

            Step("Building node-1 with a client pod and 3 echo pods (network namespaces)");
            var node = topo.AddNode("node-1");
            var client = node.AddPod("client", ClientIp);
            foreach (var (name, ip) in EchoPods)
            {
                var pod = node.AddPod(name, ip);
                servers.Add(EchoServer.StartTcp(pod.Ns, ip, TargetPort, name));
                servers.Add(EchoServer.StartUdp(pod.Ns, ip, TargetPort, name));
                Console.WriteLine($"  {name,-7} {ip}:{TargetPort} (TCP+UDP echo) on host veth {pod.HostInterface}");
            }
            Console.WriteLine($"  client  {ClientIp}");

            Step($"Starting ebpf-proxy in node-1 (bpffs {bpffs.Path}, manifests {manifestDir})");
            daemon = DaemonProcess.Start(node.Ns, exe,
                ["run", "--manifests", manifestDir, "--bpffs", bpffs.Path, "--node-name", "node-1", "--min-sync-interval", "0.1",
                 // The demo leaves the machine's cgroups alone: no socket hooks for host processes.
                 "--host-services", "false"]);
            await daemon.WaitForOutputAsync(new Regex(@"Sync #1 .*[1-9]\d* writes"), TimeSpan.FromSeconds(30), ct);
            await WaitForAttachments(daemon, 4, ct);
            foreach (var line in daemon.Output)
                Console.WriteLine($"  | {line}");

            Step($"TCP: 6 connections from the client to {Vip}:{ServicePort}");
            var seen = new HashSet<string>();
            for (int i = 1; i <= 6; i++)
            {
                using var conn = await TcpProbe.ConnectAsync(client.Ns, Vip, ServicePort, TimeSpan.FromSeconds(5), ct);
                var reply = await conn.RequestAsync($"hello {i}", TimeSpan.FromSeconds(5), ct);
                seen.Add(reply.Split(' ')[0]);
                Console.WriteLine($"  {conn.LocalEndPoint} -> {conn.RemoteEndPoint}: \"{reply}\"");
            }

            Step($"UDP: 4 datagrams from the client to {Vip}:{ServicePort} (unconnected socket: see who answers)");
            for (int i = 1; i <= 4; i++)
            {
                var (reply, from) = await UdpProbe.RequestAsync(client.Ns, Vip, ServicePort, $"ping {i}", TimeSpan.FromSeconds(5), ct);
                seen.Add(reply.Split(' ')[0]);
                Console.WriteLine($"  reply from {from}: \"{reply}\"");
            }
            Console.WriteLine($"  backends that answered: {string.Join(", ", seen.Order())}");

            Step("ebpf-proxy lb list (read from the pinned maps)");
            var list = await Cmd.RunAsync(exe, ["lb", "list", "--bpffs", bpffs.Path], cancellationToken: ct);
            Console.Write(list.Stdout);
            Step("Done; cleaning up");
            return 0;
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine($"demo failed: {ex.Message}");
            if (daemon is not null)
                Console.Error.WriteLine(daemon.FormatOutput("ebpf-proxy output"));
            return 1;
        }
        finally
        {
            if (daemon is not null)
                await daemon.DisposeAsync();
            foreach (var s in servers)
                await s.DisposeAsync();
            Directory.Delete(manifestDir, recursive: true);
        }
    }

    private static Task WaitForAttachments(DaemonProcess daemon, int count, CancellationToken ct) =>
        daemon.WaitForLinesAsync("Attached the pod programs", count, TimeSpan.FromSeconds(10), ct);

    private static void Step(string text) => Console.WriteLine($"\n== {text}");
}
