using System.Diagnostics;
using System.Net;
using Xunit.Abstractions;

namespace EbpfProxy.Testing.Tests;

public class TopologyTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    internal static string[] ListNamespaces() =>
        Cmd.Run("ip", "netns", "list").Stdout
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ')[0])
            .ToArray();

    [PrivilegedFact]
    public async Task Three_pods_talk_tcp_and_udp_through_the_node()
    {
        Privileged.EnsureRoot();
        string[] names;
        using (Topology topo = Topology.Create())
        {
            Node node = topo.AddNode("node");
            Pod pod1 = node.AddPod("pod1", IPAddress.Parse("10.244.0.11"));
            Pod pod2 = node.AddPod("pod2", IPAddress.Parse("10.244.0.12"));
            Pod pod3 = node.AddPod("pod3", IPAddress.Parse("10.244.0.13"));
            names = topo.NamespaceNames.ToArray();
            Assert.Equal(4, names.Length);
            Assert.All(names, n => Assert.Contains(n, ListNamespaces()));

            // Node sysctls and pod wiring.
            Assert.Equal("1", node.Ns.GetSysctl("net.ipv4.ip_forward"));
            Assert.Equal("0", node.Ns.GetSysctl("net.ipv4.conf.all.rp_filter"));
            Assert.Equal("0", node.Ns.GetSysctl($"net.ipv4.conf.{pod1.HostInterface}.rp_filter"));
            Assert.StartsWith("veth", pod1.HostInterface);
            Assert.True(pod1.HostInterface.Length <= 15);
            Assert.Equal(3, new[] { pod1, pod2, pod3 }.Select(p => p.HostIfIndex).Distinct().Count());
            Assert.Contains("169.254.1.1/32", node.Ns.Ip("-o", "addr", "show", "dev", pod2.HostInterface).Stdout);
            Assert.Contains("10.244.0.12/32", pod2.Ns.Ip("-o", "addr", "show", "dev", "eth0").Stdout);
            Assert.Contains("default via 169.254.1.1 dev eth0", pod2.Ns.Ip("route").Stdout);
            Assert.Contains($"10.244.0.12 dev {pod2.HostInterface}", node.Ns.Ip("route").Stdout);
            Assert.Contains($"{pod3.HostIfIndex}: {pod3.HostInterface}@", node.Ns.Ip("-o", "link").Stdout);
            Assert.Same(pod2, node["pod2"]);
            Assert.Same(node, topo["node"]);

            // TCP pod1 -> pod2 (routed through the node).
            await using (EchoServer tcp = EchoServer.StartTcp(pod2.Ns, IPAddress.Any, 8080, "pod2"))
            {
                using TcpProbeConnection conn = await TcpProbe.ConnectAsync(pod1.Ns, pod2.Ip, 8080, Timeout);
                Assert.Equal("pod2 hello", await conn.RequestAsync("hello", Timeout));
                Assert.Equal("pod2 again", await conn.RequestAsync("again", Timeout));
                Assert.Equal(pod1.Ip, conn.LocalEndPoint.Address);
                Assert.Equal(new IPEndPoint(pod2.Ip, 8080), conn.RemoteEndPoint);

                Assert.Equal("pod2 x", await TcpProbe.RequestAsync(pod3.Ns, pod2.Ip, 8080, "x", Timeout));
                Assert.Contains(tcp.SeenClients, e => e.Address.Equals(pod1.Ip) && e.Port == conn.LocalEndPoint.Port);
                Assert.True(tcp.HasSeen(pod3.Ip));
                Assert.Equal(3, tcp.RequestCount);
                Assert.Null(tcp.Fault);
            }

            // UDP pod1 -> pod2: reply comes from pod2's address.
            await using (EchoServer udp = EchoServer.StartUdp(pod2.Ns, IPAddress.Any, 5353, "pod2"))
            {
                (string reply, IPEndPoint from) = await UdpProbe.RequestAsync(pod1.Ns, pod2.Ip, 5353, "ping", Timeout);
                Assert.Equal("pod2 ping", reply);
                Assert.Equal(new IPEndPoint(pod2.Ip, 5353), from);
                Assert.True(udp.HasSeen(pod1.Ip));
                Assert.Single(udp.SeenClients);
            }

            // Node -> pod works too (source 169.254.1.1).
            await using (EchoServer tcp3 = EchoServer.StartTcp(pod3.Ns, pod3.Ip, 9000, "pod3"))
            {
                Assert.Equal("pod3 n", await TcpProbe.RequestAsync(node.Ns, pod3.Ip, 9000, "n", Timeout));
                Assert.True(tcp3.HasSeen(Topology.PodGateway));
            }
        }

        string[] after = ListNamespaces();
        Assert.All(names, n => Assert.DoesNotContain(n, after));
    }

    [PrivilegedFact]
    public void Half_built_pod_is_cleaned_up()
    {
        Privileged.EnsureRoot();
        string[] names;
        using (Topology topo = Topology.Create())
        {
            Node node = topo.AddNode("node");
            // A route for the address already exists on the node, so AddPod fails after creating the pod namespace.
            node.Ns.Ip("route", "add", "blackhole", "10.244.9.9/32");
            Assert.Throws<CommandFailedException>(() => node.AddPod("broken", IPAddress.Parse("10.244.9.9")));
            names = topo.NamespaceNames.ToArray();
            Assert.Equal(2, names.Length); // node + the half-built pod, both tracked
            Assert.Empty(node.Pods);
        }
        string[] after = ListNamespaces();
        Assert.All(names, n => Assert.DoesNotContain(n, after));
    }

    [PrivilegedFact]
    public void Rejects_duplicates_and_ipv6()
    {
        Privileged.EnsureRoot();
        using Topology topo = Topology.Create();
        Node node = topo.AddNode("n");
        Assert.Throws<ArgumentException>(() => topo.AddNode("n"));
        node.AddPod("a", IPAddress.Parse("10.1.0.1"));
        Assert.Throws<ArgumentException>(() => node.AddPod("a", IPAddress.Parse("10.1.0.2")));
        Assert.Throws<ArgumentException>(() => node.AddPod("b", IPAddress.Parse("10.1.0.1")));
        Assert.Throws<ArgumentException>(() => node.AddPod("c", IPAddress.Parse("fd00::1")));
    }

    [PrivilegedFact]
    public async Task Eight_pods_are_quick_and_all_reachable()
    {
        Privileged.EnsureRoot();
        using Topology topo = Topology.Create();
        Node node = topo.AddNode("node");
        var sw = Stopwatch.StartNew();
        var pods = Enumerable.Range(1, 8).Select(i => node.AddPod($"p{i}", IPAddress.Parse($"10.244.1.{i}"))).ToList();
        TimeSpan elapsed = sw.Elapsed;
        output.WriteLine($"8 pods in {elapsed.TotalMilliseconds:0} ms ({elapsed.TotalMilliseconds / 8:0} ms/pod)");
        Assert.True(elapsed < TimeSpan.FromSeconds(16), $"8 pods took {elapsed}");

        var servers = pods.Select(p => EchoServer.StartUdp(p.Ns, p.Ip, 7000, p.Name)).ToList();
        try
        {
            var replies = await Task.WhenAll(pods.Select((p, i) =>
                UdpProbe.RequestAsync(p.Ns, pods[(i + 1) % pods.Count].Ip, 7000, "hi", Timeout)));
            for (int i = 0; i < pods.Count; i++)
            {
                Assert.Equal($"{pods[(i + 1) % pods.Count].Name} hi", replies[i].Reply);
            }
        }
        finally
        {
            foreach (EchoServer s in servers)
            {
                await s.DisposeAsync();
            }
        }
    }

    [PrivilegedFact]
    public void Extra_namespaces_are_owned_too()
    {
        Privileged.EnsureRoot();
        string name;
        using (Topology topo = Topology.Create())
        {
            NetNs client = topo.AddNamespace("client");
            name = client.Name;
            Assert.Contains(name, ListNamespaces());
        }
        Assert.DoesNotContain(name, ListNamespaces());
    }
}
