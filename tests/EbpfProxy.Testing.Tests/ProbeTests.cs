using System.Net;

namespace EbpfProxy.Testing.Tests;

public class ProbeTests
{
    [PrivilegedFact]
    public async Task Failures_are_classified()
    {
        Privileged.EnsureRoot();
        using Topology topo = Topology.Create();
        Node node = topo.AddNode("node");
        Pod a = node.AddPod("a", IPAddress.Parse("10.244.2.1"));
        Pod b = node.AddPod("b", IPAddress.Parse("10.244.2.2"));

        // Nothing listens: RST -> Refused.
        var refused = await Assert.ThrowsAsync<ProbeFailedException>(() => TcpProbe.RequestAsync(a.Ns, b.Ip, 1, "x", TimeSpan.FromSeconds(5)));
        Assert.Equal(ProbeFailure.Refused, refused.Failure);

        // UDP: no server -> no reply -> Timeout (unconnected sockets do not see ICMP errors).
        var udp = await Assert.ThrowsAsync<ProbeFailedException>(() => UdpProbe.RequestAsync(a.Ns, b.Ip, 1, "x", TimeSpan.FromMilliseconds(300)));
        Assert.Equal(ProbeFailure.Timeout, udp.Failure);

        // An address routed to the pod's host veth whose owner does not exist: ARP never resolves -> Timeout.
        node.Ns.Ip("route", "add", "10.244.2.99/32", "dev", b.HostInterface);
        var timeout = await Assert.ThrowsAsync<ProbeFailedException>(() => TcpProbe.ConnectAsync(a.Ns, IPAddress.Parse("10.244.2.99"), 80, TimeSpan.FromMilliseconds(300)));
        Assert.Equal(ProbeFailure.Timeout, timeout.Failure);

        // Server accepts, then the client's request gets a reset / close.
        await using EchoServer server = EchoServer.StartTcp(b.Ns, b.Ip, 80, "b");
        using TcpProbeConnection conn = await TcpProbe.ConnectAsync(a.Ns, b.Ip, 80, TimeSpan.FromSeconds(5));
        Assert.Equal("b 1", await conn.RequestAsync("1", TimeSpan.FromSeconds(5)));
        await server.DisposeAsync(); // closes the accepted connection (FIN)
        var closed = await Assert.ThrowsAsync<ProbeFailedException>(() => conn.RequestAsync("2", TimeSpan.FromSeconds(5)));
        Assert.True(closed.Failure is ProbeFailure.Closed or ProbeFailure.Reset, closed.Message);
    }

    [PrivilegedFact]
    public async Task Echo_server_survives_client_resets()
    {
        Privileged.EnsureRoot();
        using Topology topo = Topology.Create();
        Node node = topo.AddNode("node");
        Pod a = node.AddPod("a", IPAddress.Parse("10.244.3.1"));
        Pod b = node.AddPod("b", IPAddress.Parse("10.244.3.2"));
        await using EchoServer server = EchoServer.StartTcp(b.Ns, IPAddress.Any, 0, "b");
        Assert.NotEqual(0, server.Port);

        for (int i = 0; i < 5; i++)
        {
            TcpProbeConnection conn = await TcpProbe.ConnectAsync(a.Ns, b.Ip, server.Port, TimeSpan.FromSeconds(5));
            await conn.Socket.SendAsync("partial line without newline"u8.ToArray());
            conn.Socket.LingerState = new System.Net.Sockets.LingerOption(true, 0); // close => RST
            conn.Dispose();
        }
        Assert.Equal("b ok", await TcpProbe.RequestAsync(a.Ns, b.Ip, server.Port, "ok", TimeSpan.FromSeconds(5)));
        Assert.Null(server.Fault);
        Assert.Equal(6, server.SeenClients.Count);
    }
}
