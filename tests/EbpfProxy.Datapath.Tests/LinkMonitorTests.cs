using EbpfProxy.Datapath.Attach;
using EbpfProxy.Testing;

namespace EbpfProxy.Datapath.Tests;

/// <summary>The netlink link monitor hears interfaces come and go in its own namespace only (issue 10 item 5).</summary>
public class LinkMonitorTests
{
    [PrivilegedFact]
    public void AnnouncesNewAndDeletedLinksAndAddressesOfItsNamespace()
    {
        using var ns = NetNs.Create("linkmon");
        using var other = NetNs.Create("linkmon-other");
        using var monitor = ns.Run(() => new LinkMonitor());
        var name = Names.Interface("vmon");

        other.Ip("link", "add", "other7", "type", "veth", "peer", "name", "other8"); // another namespace: not announced here
        ns.Ip("link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", other.Name);
        int ifindex = ns.GetIfIndex(name);
        ns.Ip("addr", "add", "10.9.9.1/32", "dev", name);
        ns.Ip("link", "del", name);

        var seen = new List<LinkEvent>();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!seen.Any(e => e.Kind == LinkEventKind.DelLink) && DateTime.UtcNow < deadline)
            seen.AddRange(monitor.Receive(200) ?? throw new InvalidOperationException("overflow"));

        Assert.Equal(new LinkEvent(LinkEventKind.NewLink, ifindex, name), seen.First(e => e.Kind == LinkEventKind.NewLink));
        Assert.Contains(new LinkEvent(LinkEventKind.Address, ifindex, null), seen);
        Assert.Contains(new LinkEvent(LinkEventKind.DelLink, ifindex, name), seen);
        Assert.DoesNotContain(seen, e => e.Name is "other7" or "other8");
    }
}
