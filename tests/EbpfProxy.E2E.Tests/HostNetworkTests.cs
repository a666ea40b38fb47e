using System.Text.RegularExpressions;
using EbpfProxy.Testing;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests;

/// <summary>
/// The node's own processes (host network) reaching a ClusterIP: translated at connect/sendmsg by
/// the cgroup socket hooks (attached to a test cgroup, only processes the test moves in are
/// affected), real sockets, the real daemon.
/// </summary>
public class HostNetworkTests(ITestOutputHelper output)
{
    private const string Vip = "10.96.0.42";

    [PrivilegedFact]
    public async Task HostProcessesReachTheClusterIpOverTcpAndUdpAndAreRefusedWithoutEndpoints()
    {
        await using var s = await ProxyScenario.StartAsync(output, 2, ["echo-1", "echo-2"]);
        await WaitForHooksAsync(s);

        // TCP: connect() is translated; the reply comes from a backend.
        var tcp = await s.Cgroup.RunAsync(s.NodeNs, $"exec 3<>/dev/tcp/{Vip}/80 && echo hi >&3 && head -n1 <&3");
        output.WriteLine($"tcp: exit {tcp.ExitCode} {tcp.Stdout.Trim()} {tcp.Stderr.Trim()}");
        Assert.Equal(0, tcp.ExitCode);
        Assert.Matches(@"^echo-[12] hi\s*$", tcp.Stdout);

        // Connected UDP.
        var udp = await s.Cgroup.RunAsync(s.NodeNs, $"exec 3<>/dev/udp/{Vip}/80 && echo hi >&3 && timeout 2 head -n1 <&3");
        Assert.Equal(0, udp.ExitCode);
        Assert.Matches(@"^echo-[12] hi\s*$", udp.Stdout);

        // Unconnected UDP (sendmsg, recvmsg): socat sends with sendto and checks the reply comes
        // from the address it sent to, which the recvmsg hook restores.
        var dgram = await s.Cgroup.RunAsync(s.NodeNs, $"echo hi | timeout 3 socat -T2 - UDP-SENDTO:{Vip}:80");
        output.WriteLine($"udp sendto: exit {dgram.ExitCode} {dgram.Stdout.Trim()} {dgram.Stderr.Trim()}");
        Assert.Matches(@"^echo-[12] hi\s*$", dgram.Stdout);

        // A process outside the cgroup is untouched: the ClusterIP is not routed in the node.
        var outside = await Cmd.TryRunAsync("ip", ["netns", "exec", s.NodeNs.Name, "bash", "-c", $"exec 3<>/dev/tcp/{Vip}/80"]);
        Assert.NotEqual(0, outside.ExitCode);
        Assert.Contains("unreachable", outside.Stderr, StringComparison.OrdinalIgnoreCase);

        // No endpoint: refused at once.
        s.WriteManifest([]);
        await s.WaitForMapBackendsAsync([], TimeSpan.FromSeconds(5));
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var refused = await s.Cgroup.RunAsync(s.NodeNs, $"exec 3<>/dev/tcp/{Vip}/80");
        output.WriteLine($"no endpoint: exit {refused.ExitCode} after {sw.ElapsedMilliseconds} ms: {refused.Stderr.Trim()}");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("refused", refused.Stderr, StringComparison.OrdinalIgnoreCase);
    }

    [PrivilegedFact]
    public async Task HostProcessesMeetTheSourceRangesAndTheServiceCidrAsPodsDo()
    {
        await using var s = await ProxyScenario.StartAsync(output, 1, ["echo-1"], ["--service-cidr", "10.96.0.0/16"]);
        // Two LoadBalancer services on the echo pod: one admits every source, one only a range
        // the node is not in.
        s.WriteExtraManifest("lb.yaml", """
            apiVersion: v1
            kind: Service
            metadata: {name: lb-open, namespace: default}
            spec:
              type: LoadBalancer
              clusterIP: 10.96.0.60
              selector: {app: echo}
              loadBalancerSourceRanges: [0.0.0.0/0]
              ports: [{name: tcp, port: 80, targetPort: 8080, nodePort: 30081, protocol: TCP}]
            status: {loadBalancer: {ingress: [{ip: 198.51.100.60}]}}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: lb-closed, namespace: default}
            spec:
              type: LoadBalancer
              clusterIP: 10.96.0.61
              selector: {app: echo}
              loadBalancerSourceRanges: [203.0.113.0/24]
              ports: [{name: tcp, port: 80, targetPort: 8080, nodePort: 30082, protocol: TCP}]
            status: {loadBalancer: {ingress: [{ip: 198.51.100.61}]}}
            """);
        await WaitForHooksAsync(s);
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        CommandResult open;
        while (true)
        {
            open = await s.Cgroup.RunAsync(s.NodeNs, "exec 3<>/dev/tcp/198.51.100.60/80 && echo hi >&3 && timeout 2 head -n1 <&3");
            if (open.ExitCode == 0 || deadline.Elapsed > TimeSpan.FromSeconds(10))
                break;
            await Task.Delay(200); // the LB services are not programmed yet
        }
        output.WriteLine($"open LB: exit {open.ExitCode} {open.Stdout.Trim()} {open.Stderr.Trim()}");
        Assert.Equal("echo-1 hi", open.Stdout.Trim());

        // Excluded by loadBalancerSourceRanges: EPERM at connect(), as the tc path drops.
        var closed = await s.Cgroup.RunAsync(s.NodeNs, "exec 3<>/dev/tcp/198.51.100.61/80");
        output.WriteLine($"closed LB: exit {closed.ExitCode} {closed.Stderr.Trim()}");
        Assert.NotEqual(0, closed.ExitCode);
        Assert.Contains("not permitted", closed.Stderr, StringComparison.OrdinalIgnoreCase);

        // Inside --service-cidr but no ClusterIP: EHOSTUNREACH at once, as the tc path drops.
        var unallocated = await s.Cgroup.RunAsync(s.NodeNs, "exec 3<>/dev/tcp/10.96.0.99/80");
        output.WriteLine($"unallocated: exit {unallocated.ExitCode} {unallocated.Stderr.Trim()}");
        Assert.NotEqual(0, unallocated.ExitCode);
        Assert.Contains("no route to host", unallocated.Stderr, StringComparison.OrdinalIgnoreCase);
    }

    [PrivilegedFact]
    public async Task ARestartedDaemonTakesOverItsPinnedSocketHooks()
    {
        await using var s = await ProxyScenario.StartAsync(output, 1, ["echo-1"]);
        await WaitForHooksAsync(s);
        await s.Daemon.DisposeAsync();
        // Stopped: the hooks stay attached (pinned links) and keep translating.
        var during = await s.Cgroup.RunAsync(s.NodeNs, $"exec 3<>/dev/tcp/{Vip}/80 && echo a >&3 && head -n1 <&3");
        Assert.Equal("echo-1 a", during.Stdout.Trim());

        await s.StartDaemonAsync();
        await WaitForHooksAsync(s);
        var after = await s.Cgroup.RunAsync(s.NodeNs, $"exec 3<>/dev/tcp/{Vip}/80 && echo b >&3 && head -n1 <&3");
        Assert.Equal("echo-1 b", after.Stdout.Trim());
        var links = Directory.GetFiles(Path.Combine(s.PinPath, "links")).Select(f => new FileInfo(f).Name).Order().ToArray();
        Assert.Equal(["sock4_connect", "sock4_getpeername", "sock4_recvmsg", "sock4_sendmsg"], links);
    }

    private static Task WaitForHooksAsync(ProxyScenario s) =>
        s.Daemon.WaitForOutputAsync(new Regex("Socket hooks for host-network processes attached"), TimeSpan.FromSeconds(10));
}
