using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Sync;
using EbpfProxy.Testing;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests;

/// <summary>
/// ICMP errors about translated connections reach the client's socket (bpf/lib/icmp.h): a
/// backend's port unreachable, and fragmentation needed from a link with a smaller MTU on the path
/// (path-MTU discovery through a ClusterIP).
/// </summary>
public class IcmpErrorE2ETests(ITestOutputHelper output)
{
    private static readonly IPAddress SilentVip = IPAddress.Parse("10.96.0.43");
    private static readonly IPAddress FarVip = IPAddress.Parse("10.96.0.44");
    private static readonly IPAddress Far = IPAddress.Parse("10.245.0.10");

    private static ulong Counter(ProxyScenario s, Reason reason, MetricsDirection dir)
    {
        using var maps = LbMaps.OpenPinned(s.PinPath);
        return (maps.Metrics.Lookup(ReasonInfo.MetricsIndex(reason, dir)) ?? []).Aggregate(0UL, (sum, v) => sum + v.Packets);
    }

    private static async Task WaitForFrontendAsync(ProxyScenario s, IPAddress vip, Core.Model.L4Protocol protocol)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            using (var maps = LbMaps.OpenPinned(s.PinPath))
            {
                var state = LbMapIo.Read(maps);
                if (state.Frontends.Any(kv => kv.Key.Frontend.Address.Equals(vip) && kv.Key.Frontend.Protocol == protocol && kv.Value.Service is { Count: > 0 }))
                    return;
            }
            if (sw.Elapsed > TimeSpan.FromSeconds(30))
                throw new TimeoutException($"{vip} {protocol} not programmed with a backend\n{s.Daemon.FormatOutput()}");
            await Task.Delay(50);
        }
    }

    [PrivilegedFact]
    public async Task ABackendsPortUnreachableReachesTheClientAsConnectionRefused()
    {
        await using var s = await ProxyScenario.StartAsync(output, 1, ["echo-1"]);
        // A service whose backend pod has nothing listening on the target port.
        s.WriteExtraManifest("silent.yaml", $$$"""
            apiVersion: v1
            kind: Service
            metadata: {name: silent, namespace: default}
            spec:
              clusterIP: {{{SilentVip}}}
              selector: {app: echo}
              ports: [{name: udp, port: 81, targetPort: 9999, protocol: UDP}]
            """);
        await WaitForFrontendAsync(s, SilentVip, Core.Model.L4Protocol.Udp);

        var error = s.Client.Ns.Run(() =>
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            socket.ReceiveTimeout = 10_000;
            socket.Connect(SilentVip, 81);
            socket.Send("anyone?"u8);
            try
            {
                socket.Receive(new byte[64]);
                return SocketError.Success;
            }
            catch (SocketException e)
            {
                return e.SocketErrorCode;
            }
        });

        Assert.Equal(SocketError.ConnectionRefused, error);
        // The refusal is the backend's, translated back (not the datapath's own REJECT).
        Assert.Equal(1UL, Counter(s, Reason.ForwardIcmpReverseNat, MetricsDirection.Egress));
        Assert.Equal(0UL, Counter(s, Reason.RejectNoEndpoint, MetricsDirection.Ingress));
    }

    [PrivilegedFact]
    public async Task PathMtuDiscoveryThroughAClusterIpWorks()
    {
        await using var s = await ProxyScenario.StartAsync(output, 1, ["echo-1"]);
        // node --(MTU 1280)-- router --(1500)-- far backend: neither end knows the small link, so
        // only fragmentation needed from the node (for the client's packets) and from the router
        // (for the backend's) lets a bulk transfer through.
        using var router = NetNs.Create("router");
        using var far = NetNs.Create("far");
        router.Sysctl("net.ipv4.ip_forward", "1");
        var nodeIf = Names.Interface("rtn");
        var farIf = Names.Interface("rtf");
        s.NodeNs.Ip("link", "add", nodeIf, "mtu", "1280", "type", "veth", "peer", "name", "up0", "mtu", "1280", "netns", router.Name);
        router.Ip("link", "add", farIf, "type", "veth", "peer", "name", "eth0", "netns", far.Name);
        s.NodeNs.Ip("addr", "add", "10.250.0.1/30", "dev", nodeIf);
        s.NodeNs.Ip("link", "set", nodeIf, "up");
        s.NodeNs.Ip("route", "add", "10.245.0.0/24", "via", "10.250.0.2");
        router.Ip("addr", "add", "10.250.0.2/30", "dev", "up0");
        router.Ip("link", "set", "up0", "up");
        router.Ip("addr", "add", "10.245.0.1/24", "dev", farIf);
        router.Ip("link", "set", farIf, "up");
        router.Ip("route", "add", "default", "via", "10.250.0.1");
        far.Ip("addr", "add", $"{Far}/24", "dev", "eth0");
        far.Ip("link", "set", "eth0", "up");
        far.Ip("link", "set", "lo", "up");
        far.Ip("route", "add", "default", "via", "10.245.0.1");
        await using var server = EchoServer.StartTcp(far, Far, ProxyScenario.TargetPort, "far");

        s.WriteExtraManifest("far.yaml", $$$"""
            apiVersion: v1
            kind: Service
            metadata: {name: far, namespace: default}
            spec:
              clusterIP: {{{FarVip}}}
              selector: {app: far}
              ports: [{name: http, port: 80, targetPort: {{{ProxyScenario.TargetPort}}}, protocol: TCP}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: far-1, namespace: default, labels: {app: far}}
            spec: {nodeName: other, containers: [{name: far, image: far}]}
            status: {phase: Running, podIP: {{{Far}}}, conditions: [{type: Ready, status: "True"}]}
            """);
        await WaitForFrontendAsync(s, FarVip, Core.Model.L4Protocol.Tcp);

        // 64 KB each way, in segments of the 1500-byte MTU the client and the backend start with.
        var line = new StringBuilder().Append('x', 64 * 1024).ToString();
        using var conn = await TcpProbe.ConnectAsync(s.Client.Ns, FarVip, ProxyScenario.ServicePort, TimeSpan.FromSeconds(5));
        var reply = await conn.RequestAsync(line, TimeSpan.FromSeconds(30));

        Assert.Equal($"far {line}", reply);
        var route = s.Client.Ns.Ip("route", "get", FarVip.ToString()).Stdout;
        output.WriteLine(route);
        Assert.Contains("mtu 1280", route);
        Assert.True(Counter(s, Reason.ForwardIcmpReverseNat, MetricsDirection.Egress) >= 1);
    }
}
