using System.Net;
using System.Net.Sockets;

namespace EbpfProxy.Testing.Tests;

public class NetNsTests
{
    [PrivilegedFact]
    public void Create_brings_lo_up_and_dispose_deletes()
    {
        Privileged.EnsureRoot();
        string name;
        using (NetNs ns = NetNs.Create("solo"))
        {
            name = ns.Name;
            Assert.StartsWith("epx-", name);
            Assert.True(File.Exists(ns.Path));
            Assert.Contains("UP", ns.Ip("-o", "link", "show", "lo").Stdout);
            Assert.Contains("lo", ns.Exec("ip", "-o", "link").Stdout);
            ns.Sysctl("net.ipv4.ip_forward", "1");
            Assert.Equal("1", ns.GetSysctl("net.ipv4.ip_forward"));
            Assert.Equal(1, ns.GetIfIndex("lo"));
        }
        Assert.DoesNotContain(name, TopologyTests.ListNamespaces());
        Assert.False(File.Exists(Path.Combine("/var/run/netns", name)));
    }

    [PrivilegedFact]
    public void Dispose_tolerates_already_deleted_namespace()
    {
        Privileged.EnsureRoot();
        NetNs ns = NetNs.Create("gone");
        Cmd.Run("ip", "netns", "delete", ns.Name);
        ns.Dispose();
        ns.Dispose();
        Assert.True(ns.IsDisposed);
    }

    [PrivilegedFact]
    public void Run_executes_in_the_namespace_and_sockets_stay_there()
    {
        Privileged.EnsureRoot();
        using NetNs ns = NetNs.Create("run");
        ns.Ip("addr", "add", "192.0.2.1/32", "dev", "lo");

        // /proc/thread-self/ns/net differs from the process's namespace inside Run.
        string? root = new FileInfo("/proc/thread-self/ns/net").LinkTarget;
        string? inside = ns.Run(() => new FileInfo("/proc/thread-self/ns/net").LinkTarget);
        string nsInode = Cmd.Run("stat", "-L", "-c", "%i", ns.Path).Stdout.Trim();
        Assert.StartsWith("net:[", root);
        Assert.Equal($"net:[{nsInode}]", inside);
        Assert.NotEqual(root, inside);

        // 192.0.2.1 exists only in the namespace: binding works there, and the socket keeps working afterwards.
        using Socket s = ns.Run(() =>
        {
            var sock = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            sock.Bind(new IPEndPoint(IPAddress.Parse("192.0.2.1"), 0));
            return sock;
        });
        var root2 = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        Assert.Throws<SocketException>(() => root2.Bind(new IPEndPoint(IPAddress.Parse("192.0.2.1"), 0)));
        root2.Dispose();

        // Exceptions propagate with their type.
        Assert.Throws<InvalidTimeZoneException>(() => ns.Run<int>(() => throw new InvalidTimeZoneException("x")));
    }
}
