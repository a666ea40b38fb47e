using System.Net;
using EbpfProxy.Testing;
using EbpfProxy.Datapath.Maps;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests;

/// <summary>Pod -> ClusterIP through the real daemon, real sockets, in namespaces.</summary>
public class ClusterIpTests(ITestOutputHelper output)
{
    [PrivilegedFact]
    public async Task TcpAndUdpReachEveryBackendAndRepliesComeFromTheVip()
    {
        await using var s = await ProxyScenario.StartAsync(output, 3, ["echo-1", "echo-2", "echo-3"]);

        var tcp = await s.TcpRoundAsync(30);
        Assert.Equal(["echo-1", "echo-2", "echo-3"], tcp.Distinct().Order());
        var udp = await s.UdpRoundAsync(30);
        Assert.Equal(["echo-1", "echo-2", "echo-3"], udp.Distinct().Order());
    }

    [PrivilegedFact]
    public async Task A4KUdpDatagramCrossesTheClusterIpInFragmentsBothWays()
    {
        await using var s = await ProxyScenario.StartAsync(output, 1, ["echo-1"]);
        // Every link has the default 1500-byte MTU: request and reply leave in three fragments each,
        // and only the first carries the ports (bpf/lib/frag.h).
        var payload = string.Concat(Enumerable.Range(0, 4096).Select(i => (char)('a' + (i % 26))));

        var (reply, from) = await UdpProbe.RequestAsync(s.Client.Ns, ProxyScenario.Vip, ProxyScenario.ServicePort, payload, TimeSpan.FromSeconds(5));

        Assert.Equal(new IPEndPoint(ProxyScenario.Vip, ProxyScenario.ServicePort), from);
        Assert.Equal($"echo-1 {payload}", reply);
    }

    [PrivilegedFact]
    public async Task ScalingIsFollowedWithinASecondWithoutBreakingSurvivingConnections()
    {
        await using var s = await ProxyScenario.StartAsync(output, 3, ["echo-1", "echo-2", "echo-3"]);
        await s.WaitForMapBackendsAsync(["echo-1", "echo-2", "echo-3"], TimeSpan.FromSeconds(5));

        // A connection held open across the changes; its backend is the one that survives 3 -> 1.
        using var held = await TcpProbe.ConnectAsync(s.Client.Ns, ProxyScenario.Vip, ProxyScenario.ServicePort, TimeSpan.FromSeconds(3));
        var heldBackend = (await held.RequestAsync("first", TimeSpan.FromSeconds(3))).Split(' ')[0];

        // 3 -> 1
        s.WriteManifest([heldBackend]);
        var took = await s.WaitForMapBackendsAsync([heldBackend], TimeSpan.FromSeconds(5));
        output.WriteLine($"3 -> 1 programmed in {took.TotalMilliseconds:F0} ms");
        Assert.True(took < TimeSpan.FromSeconds(1), $"3 -> 1 took {took}");
        Assert.Equal($"{heldBackend} still-there", await held.RequestAsync("still-there", TimeSpan.FromSeconds(3)));
        Assert.All(await s.TcpRoundAsync(10), b => Assert.Equal(heldBackend, b));
        Assert.All(await s.UdpRoundAsync(10), b => Assert.Equal(heldBackend, b));

        // 1 -> 0: no backend, so a new connection is rejected at once (ICMP port unreachable).
        s.WriteManifest([]);
        took = await s.WaitForMapBackendsAsync([], TimeSpan.FromSeconds(5));
        output.WriteLine($"1 -> 0 programmed in {took.TotalMilliseconds:F0} ms");
        Assert.True(took < TimeSpan.FromSeconds(1), $"1 -> 0 took {took}");
        var refusedIn = System.Diagnostics.Stopwatch.StartNew();
        var refused = await Assert.ThrowsAsync<ProbeFailedException>(() =>
            TcpProbe.RequestAsync(s.Client.Ns, ProxyScenario.Vip, ProxyScenario.ServicePort, "nobody", TimeSpan.FromSeconds(3)));
        output.WriteLine($"with no backend: {refused.Failure} after {refusedIn.ElapsedMilliseconds} ms");
        Assert.Equal(ProbeFailure.Refused, refused.Failure);
        Assert.True(refusedIn.Elapsed < TimeSpan.FromSeconds(1), $"refusal took {refusedIn.Elapsed}");
        await Assert.ThrowsAsync<ProbeFailedException>(() =>
            UdpProbe.RequestAsync(s.Client.Ns, ProxyScenario.Vip, ProxyScenario.ServicePort, "nobody", TimeSpan.FromMilliseconds(700)));

        // 0 -> 2, then a held connection survives 2 -> 3.
        var two = new[] { "echo-1", "echo-2" };
        s.WriteManifest(two);
        took = await s.WaitForMapBackendsAsync(two, TimeSpan.FromSeconds(5));
        output.WriteLine($"0 -> 2 programmed in {took.TotalMilliseconds:F0} ms");
        Assert.True(took < TimeSpan.FromSeconds(1), $"0 -> 2 took {took}");
        var seen = await s.TcpRoundAsync(20);
        Assert.Equal(two, seen.Distinct().Order());

        using var held2 = await TcpProbe.ConnectAsync(s.Client.Ns, ProxyScenario.Vip, ProxyScenario.ServicePort, TimeSpan.FromSeconds(3));
        var held2Backend = (await held2.RequestAsync("a", TimeSpan.FromSeconds(3))).Split(' ')[0];
        s.WriteManifest(["echo-1", "echo-2", "echo-3"]);
        await s.WaitForMapBackendsAsync(["echo-1", "echo-2", "echo-3"], TimeSpan.FromSeconds(5));
        Assert.Equal($"{held2Backend} b", await held2.RequestAsync("b", TimeSpan.FromSeconds(3)));
    }

    [PrivilegedFact]
    public async Task TraceExplainsPacketsUsingTheRunningDaemonsProgram()
    {
        await using var s = await ProxyScenario.StartAsync(output, 2, ["echo-1", "echo-2"]);

        var text = await Cmd.RunAsync(Binaries.EbpfProxy, ["trace", "--src", "10.244.0.2", "--dst", "10.96.0.42:80", "--proto", "tcp", "--bpffs", s.BpfFsPath]);
        output.WriteLine(text.Stdout);
        Assert.Contains("service default/echo:http", text.Stdout);
        Assert.Contains("2 active: 10.244.0.11:8080, 10.244.0.12:8080", text.Stdout);
        Assert.Matches(@"nat\s+DNAT 10\.96\.0\.42:80 -> 10\.244\.0\.1[12]:8080", text.Stdout);
        Assert.Contains("verdict   forward (service_new)", text.Stdout);

        var json = await Cmd.RunAsync(Binaries.EbpfProxy, ["trace", "--src", "10.244.0.2:5000", "--dst", "10.96.0.42:443", "--bpffs", s.BpfFsPath, "-o", "json"]);
        using var doc = System.Text.Json.JsonDocument.Parse(json.Stdout);
        Assert.Equal("REJECT", doc.RootElement.GetProperty("verdict").GetString());
        Assert.Equal("reject_undefined_port", doc.RootElement.GetProperty("reason").GetString());

        // Tracing created no connection state: a real connection still starts fresh and works.
        Assert.All(await s.TcpRoundAsync(4), b => Assert.Contains(b, new[] { "echo-1", "echo-2" }));
    }

    [PrivilegedFact]
    public async Task APodReachesANodePortOnTheNodesAddressAndRepliesComeFromIt()
    {
        // The pods' gateway 169.254.1.1 is the node's address here; --nodeport-addresses selects it.
        await using var s = await ProxyScenario.StartAsync(output, 2, ["echo-1", "echo-2"], ["--nodeport-addresses", "169.254.1.0/24"]);
        await AssertNodePortServedAsync(s);
    }

    [PrivilegedFact]
    public async Task ANodeObjectInTheManifestsGivesNodePortsTheNodesAddress()
    {
        // Issue 9 item 7: no --nodeport-addresses; the Node named --node-name in the folder says
        // where NodePorts are served (its InternalIP), as the API's Node would.
        await using var s = await ProxyScenario.StartAsync(output, 2, ["echo-1", "echo-2"]);
        s.WriteExtraManifest("node.yaml", """
            apiVersion: v1
            kind: Node
            metadata: {name: node, labels: {topology.kubernetes.io/zone: zone-a}}
            status:
              addresses: [{type: InternalIP, address: 169.254.1.1}, {type: Hostname, address: node}]
            """);
        await AssertNodePortServedAsync(s);
    }

    /// <summary>Adds a TCP+UDP NodePort 30080 service and checks that a pod reaches both backends on 169.254.1.1:30080.</summary>
    private static async Task AssertNodePortServedAsync(ProxyScenario s)
    {
        s.WriteExtraManifest("nodeport.yaml", """
            apiVersion: v1
            kind: Service
            metadata: {name: np, namespace: default}
            spec:
              type: NodePort
              clusterIP: 10.96.0.50
              selector: {app: echo}
              ports:
              - {name: tcp, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}
              - {name: udp, port: 80, targetPort: 8080, nodePort: 30080, protocol: UDP}
            """);
        var nodeIp = IPAddress.Parse("169.254.1.1");
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        var seen = new HashSet<string>();
        while (seen.Count < 2)
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(10), $"only {string.Join(",", seen)} answered on the NodePort");
            try
            {
                using var conn = await TcpProbe.ConnectAsync(s.Client.Ns, nodeIp, 30080, TimeSpan.FromSeconds(1));
                Assert.Equal(new IPEndPoint(nodeIp, 30080), conn.RemoteEndPoint);
                seen.Add((await conn.RequestAsync("np", TimeSpan.FromSeconds(2))).Split(' ')[0]);
            }
            catch (ProbeFailedException)
            {
                await Task.Delay(100); // not programmed yet
            }
        }
        var (reply, from) = await UdpProbe.RequestAsync(s.Client.Ns, nodeIp, 30080, "np-udp", TimeSpan.FromSeconds(3));
        Assert.Equal(new IPEndPoint(nodeIp, 30080), from);
        Assert.EndsWith(" np-udp", reply);
    }

    [PrivilegedTheory]
    [InlineData("tc")]
    [InlineData("tcx")]
    public async Task CleanupRemovesExactlyWhatTheProxyCreated(string mode)
    {
        await using var s = await ProxyScenario.StartAsync(output, 1, ["echo-1"], ["--attach-mode", mode]);
        Assert.Single(await s.TcpRoundAsync(1));
        var veth = s.Echo["echo-1"].HostInterface;
        Assert.Equal(mode == "tc", s.NodeNs.Exec("tc", "filter", "show", "dev", veth, "ingress").Stdout.Contains("from_pod"));
        if (mode == "tcx")
        {
            // Debian's bpftool 7.1 does not list tcx links: read the pinned links themselves.
            foreach (var (point, program) in new[] { ("ingress", "from_pod"), ("egress", "to_pod") })
            {
                using var link = LibBpf.Net.BpfLink.OpenPinned(Path.Combine(s.PinPath, "tcx", veth, point));
                var info = link.GetInfo();
                using var prog = LibBpf.Net.BpfProgram.FromId(info.ProgramId);
                Assert.Equal((s.Echo["echo-1"].HostIfIndex, program), (info.TcxIfindex, prog.GetInfo().Name));
            }
        }
        var status = s.NodeNs.TryExec(Binaries.EbpfProxy, "status");
        Assert.Matches(mode == "tcx" ? @"attach +tcx links on \d+ interfaces; new interfaces by netlink events" : @"attach +clsact filters on \d+ interfaces", status.Stdout);
        await s.Daemon.StopAsync(TimeSpan.FromSeconds(10));

        var result = s.NodeNs.Exec(Binaries.EbpfProxy, "cleanup", "--bpffs", s.BpfFsPath);
        output.WriteLine(result.Stdout);
        Assert.Contains($"detached from {veth} ingress (from_pod", result.Stdout);
        Assert.Contains($"detached from {veth} egress (to_pod", result.Stdout);
        Assert.False(Directory.Exists(s.PinPath), "pins remain");
        Assert.DoesNotContain("bpf", s.NodeNs.Exec("tc", "filter", "show", "dev", veth, "ingress").Stdout);
        // The clsact qdisc stays: other tools may use it.
        if (mode == "tc")
            Assert.Contains("clsact", s.NodeNs.Exec("tc", "qdisc", "show", "dev", veth).Stdout);

        // Pods still reach each other; the VIP is no longer translated.
        Assert.Equal("echo-1 direct", await TcpProbe.RequestAsync(s.Client.Ns, s.Echo["echo-1"].Ip, ProxyScenario.TargetPort, "direct", TimeSpan.FromSeconds(3)));
        await Assert.ThrowsAsync<ProbeFailedException>(() =>
            TcpProbe.RequestAsync(s.Client.Ns, ProxyScenario.Vip, ProxyScenario.ServicePort, "x", TimeSpan.FromSeconds(1)));
    }

    [PrivilegedFact]
    public async Task CleanupRefusesWhileTheDaemonRunsAndLeavesAnotherToolsPins()
    {
        await using var s = await ProxyScenario.StartAsync(output, 1, ["echo-1"]);
        using var held = await TcpProbe.ConnectAsync(s.Client.Ns, ProxyScenario.Vip, ProxyScenario.ServicePort, TimeSpan.FromSeconds(3));
        Assert.StartsWith("echo-1", await held.RequestAsync("before", TimeSpan.FromSeconds(3)));
        // Another tool's map pinned in the same folder (issue 14 item 6: cleanup removed it).
        var foreign = Path.Combine(s.PinPath, "other_tool_map");
        using (var map = LibBpf.Net.BpfMap.OpenPinned(Path.Combine(s.PinPath, LbMaps.Services)))
            map.Pin(foreign);

        var refused = s.NodeNs.TryExec(Binaries.EbpfProxy, "cleanup", "--bpffs", s.BpfFsPath, "--bpf-dir", Binaries.BpfDir);
        output.WriteLine(refused.Stdout + refused.Stderr);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("daemon is running", refused.Stderr);
        Assert.True(s.ServiceMapEntries() > 0, "the refused cleanup removed the maps");
        Assert.StartsWith("echo-1", await held.RequestAsync("after-refusal", TimeSpan.FromSeconds(3)));

        await s.Daemon.StopAsync(TimeSpan.FromSeconds(10));
        var result = s.NodeNs.TryExec(Binaries.EbpfProxy, "cleanup", "--bpffs", s.BpfFsPath, "--bpf-dir", Binaries.BpfDir);
        output.WriteLine(result.Stdout + result.Stderr);
        Assert.Equal(0, result.ExitCode);
        Assert.False(File.Exists(Path.Combine(s.PinPath, LbMaps.Services)), "our pins remain");
        Assert.True(File.Exists(foreign), "another tool's pin was removed");
        Assert.Contains("left 1 pins that ebpf-proxy did not create: other_tool_map", result.Stdout);
        // libbpf's "Parent Qdisc doesn't exists" for interfaces without clsact is not printed (item 8).
        Assert.DoesNotContain("Qdisc", result.Stderr);
        File.Delete(foreign);
    }

    [PrivilegedFact]
    public async Task StatusListsManifestErrorsAndExitsNonZero()
    {
        await using var s = await ProxyScenario.StartAsync(output, 1, ["echo-1"]);
        var clean = s.NodeNs.TryExec(Binaries.EbpfProxy, "status");
        output.WriteLine(clean.Stdout + clean.Stderr);
        Assert.Equal(0, clean.ExitCode);

        // Issue 14 item 7: a file the daemon cannot apply shows in `status`, which then fails.
        s.WriteExtraManifest("broken.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: broken\n");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        CommandResult status;
        do
        {
            await Task.Delay(200);
            status = s.NodeNs.TryExec(Binaries.EbpfProxy, "status");
        }
        while (!status.Stdout.Contains("broken.yaml") && DateTime.UtcNow < deadline);
        output.WriteLine(status.Stdout + status.Stderr);
        Assert.Equal(1, status.ExitCode);
        Assert.Contains("1 objects skipped", status.Stdout);
        Assert.Contains("manifest", status.Stdout);
        Assert.Contains("broken.yaml", status.Stdout);
        // The good service still works.
        Assert.Single(await s.TcpRoundAsync(1));
    }

    [PrivilegedFact]
    public void CommandsRunWithoutPrivilegesSayOneClearLine()
    {
        // As nobody, with no capabilities: each command answers with one line, no stack trace (issue 14 item 8).
        foreach (var command in new[] { new[] { "cleanup" }, ["observe"], ["lb", "list"], ["ct", "list"], ["maps"], ["ipcache", "list"], ["policy", "get", "default/x"], ["trace", "--src", "10.0.0.1", "--dst", "10.96.0.1:80"], ["run", "--manifests", "/tmp"] })
        {
            var result = Cmd.TryRun("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "env", "HOME=/tmp", Binaries.EbpfProxy, .. command]);
            output.WriteLine($"{string.Join(' ', command)} -> {result.ExitCode}: {result.Stderr}");
            Assert.NotEqual(0, result.ExitCode);
            var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Single(lines);
            Assert.Contains("needs root", lines[0]);
            Assert.DoesNotContain("   at ", result.Stderr);
        }
    }

    [PrivilegedFact]
    public async Task RestartedDaemonKeepsTheDatapathAndEstablishedConnections()
    {
        await using var s = await ProxyScenario.StartAsync(output, 2, ["echo-1", "echo-2"]);
        using var held = await TcpProbe.ConnectAsync(s.Client.Ns, ProxyScenario.Vip, ProxyScenario.ServicePort, TimeSpan.FromSeconds(3));
        var backend = (await held.RequestAsync("before", TimeSpan.FromSeconds(3))).Split(' ')[0];

        // The daemon stopping does not stop the datapath.
        await s.Daemon.StopAsync(TimeSpan.FromSeconds(10));
        Assert.Equal($"{backend} while-stopped", await held.RequestAsync("while-stopped", TimeSpan.FromSeconds(3)));
        Assert.Equal(["echo-1", "echo-2"], (await s.TcpRoundAsync(20)).Distinct().Order());

        // A new daemon re-adopts the pinned maps: against an unchanged cluster it writes nothing,
        // and the held connection keeps its backend.
        await s.Daemon.DisposeAsync();
        var firstSync = await s.StartDaemonAsync();
        Assert.Contains(": 0 writes, 0 deletes", firstSync);
        await s.WaitForAttachmentsAsync(3);
        Assert.Equal($"{backend} after-restart", await held.RequestAsync("after-restart", TimeSpan.FromSeconds(3)));
        Assert.Equal(["echo-1", "echo-2"], (await s.TcpRoundAsync(20)).Distinct().Order());
    }
}
