using System.Net;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Testing;
using EbpfProxy.Testing.Packets;

namespace EbpfProxy.Datapath.Tests;

/// <summary>
/// from_netdev / to_netdev and masquerade on crafted packets (BPF_PROG_TEST_RUN, real object, maps
/// seeded by the real syncer): the stateful side the trace-based flow suite cannot show (the
/// reply of a masqueraded connection, node-port collisions, eTP Local replies on the netdev).
/// </summary>
public class NetdevProgramTests
{
    private const string NodeIp = "192.168.1.10";
    private static readonly IPAddress Node = IPAddress.Parse(NodeIp);
    private static readonly IPAddress Outside = IPAddress.Parse("198.18.0.50");
    internal static readonly IPAddress Backend = IPAddress.Parse("10.244.2.1");

    internal static string NodePortService(string policy) => """
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: default}
        spec: {type: NodePort, clusterIP: 10.96.3.1, externalTrafficPolicy: POLICY, ports: [{port: 80, nodePort: 30080, protocol: TCP}, {name: dns, port: 53, nodePort: 30053, protocol: UDP}]}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
        addressType: IPv4
        ports: [{port: 8080, protocol: TCP}, {name: dns, port: 5353, protocol: UDP}]
        endpoints:
        - {addresses: [BACKEND], nodeName: node-1}
        """.Replace("POLICY", policy, StringComparison.Ordinal).Replace("BACKEND", Backend.ToString(), StringComparison.Ordinal);

    private static PodDatapath Start(string policy = "Cluster")
    {
        var dp = new PodDatapath();
        dp.Apply(NodePortService(policy), "node-1", NodeIp);
        dp.ConfigureMasquerade(NodeIp);
        return dp;
    }

    [PrivilegedTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void AMasqueradedConnectionIsRestoredOnTheWayBack(bool udp)
    {
        using var dp = Start();
        ushort nodePort = udp ? (ushort)30053 : (ushort)30080, backendPort = udp ? (ushort)5353 : (ushort)8080;
        var request = udp
            ? PacketBuilder.Udp(Outside, 41000, Node, nodePort, "query"u8)
            : PacketBuilder.Tcp(Outside, 41000, Node, nodePort, TcpFlags.Syn);

        var (verdict, output) = dp.FromNetdev(request);

        Assert.NotEqual(PodDatapath.TcActShot, verdict);
        var fwd = Packet.Parse(output);
        Assert.Equal(Backend, fwd.Destination);
        Assert.Equal(backendPort, fwd.DestinationPort);
        Assert.Equal(Node, fwd.Source); // masqueraded: the backend answers the node
        var natPort = fwd.SourcePort;
        Assert.True(fwd.IpChecksumValid && fwd.L4ChecksumValid, fwd.ToString());

        // The backend's reply comes back to the node (from a remote backend: on the netdev).
        var reply = udp
            ? PacketBuilder.Udp(Backend, backendPort, Node, natPort, "answer"u8)
            : PacketBuilder.Tcp(Backend, backendPort, Node, natPort, TcpFlags.Syn | TcpFlags.Ack, seq: 9, ack: 2);
        (verdict, output) = dp.FromNetdev(reply);

        Assert.NotEqual(PodDatapath.TcActShot, verdict);
        var back = Packet.Parse(output);
        Assert.Equal(Node, back.Source);
        Assert.Equal(nodePort, back.SourcePort); // the frontend the client addressed
        Assert.Equal(Outside, back.Destination);
        Assert.Equal(41000, back.DestinationPort);
        Assert.True(back.IpChecksumValid && back.L4ChecksumValid, back.ToString());
        Assert.Equal(1UL, dp.Counter(Reason.ForwardSnatReverse, MetricsDirection.Ingress));

        // The client's next packet uses the same translation (conntrack + snat4).
        var next = udp
            ? PacketBuilder.Udp(Outside, 41000, Node, nodePort, "again"u8)
            : PacketBuilder.Tcp(Outside, 41000, Node, nodePort, TcpFlags.Ack, seq: 2, ack: 10);
        var again = Packet.Parse(dp.FromNetdev(next).Packet);
        Assert.Equal((Node, natPort, Backend, backendPort), (again.Source!, again.SourcePort, again.Destination!, again.DestinationPort));
        Assert.Equal(1UL, dp.Counter(Reason.ForwardServiceEstablished, MetricsDirection.Ingress));
    }

    [PrivilegedFact]
    public void TwoClientsWithTheSamePortGetDistinctNodePorts()
    {
        using var dp = Start();
        var other = IPAddress.Parse("198.18.0.51");
        var a = Packet.Parse(dp.FromNetdev(PacketBuilder.Tcp(Outside, 42000, Node, 30080, TcpFlags.Syn)).Packet);
        var b = Packet.Parse(dp.FromNetdev(PacketBuilder.Tcp(other, 42000, Node, 30080, TcpFlags.Syn)).Packet);

        Assert.Equal(42000, a.SourcePort); // the client's own port when free, as MASQUERADE prefers
        Assert.NotEqual(a.SourcePort, b.SourcePort);

        // Each reply finds its own client.
        var ra = Packet.Parse(dp.FromNetdev(PacketBuilder.Tcp(Backend, 8080, Node, a.SourcePort, TcpFlags.Syn | TcpFlags.Ack)).Packet);
        var rb = Packet.Parse(dp.FromNetdev(PacketBuilder.Tcp(Backend, 8080, Node, b.SourcePort, TcpFlags.Syn | TcpFlags.Ack)).Packet);
        Assert.Equal(Outside, ra.Destination);
        Assert.Equal(other, rb.Destination);
    }

    [PrivilegedFact]
    public void WithExternalTrafficPolicyLocalTheClientKeepsItsAddressAndTheReplyIsTranslatedOnTheNetdev()
    {
        using var dp = Start("Local");
        var (verdict, output) = dp.FromNetdev(PacketBuilder.Tcp(Outside, 43000, Node, 30080, TcpFlags.Syn));
        Assert.Equal(PodDatapath.TcActOk, verdict); // plain DNAT: the kernel routes it to the pod
        var fwd = Packet.Parse(output);
        Assert.Equal((Outside, (ushort)43000, Backend, (ushort)8080), (fwd.Source!, fwd.SourcePort, fwd.Destination!, fwd.DestinationPort));

        // The pod's reply leaves through the netdev: to_netdev restores the NodePort as source.
        (verdict, output) = dp.ToNetdev(PacketBuilder.Tcp(Backend, 8080, Outside, 43000, TcpFlags.Syn | TcpFlags.Ack));
        Assert.Equal(PodDatapath.TcActOk, verdict);
        var back = Packet.Parse(output);
        Assert.Equal((Node, (ushort)30080), (back.Source!, back.SourcePort));
        Assert.True(back.IpChecksumValid && back.L4ChecksumValid, back.ToString());
    }

    [PrivilegedFact]
    public void AReplyToTheNodeThatIsNoMasqueradedFlowIsUntouched()
    {
        using var dp = Start();
        var input = PacketBuilder.Tcp(Backend, 8080, Node, 50000, TcpFlags.Syn | TcpFlags.Ack);
        var (verdict, output) = dp.FromNetdev(input);
        Assert.Equal(PodDatapath.TcActOk, verdict);
        Assert.Equal(input, output);
    }
}
