using System.Net;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Observability;
using EbpfProxy.Datapath.Observe;

namespace EbpfProxy.Datapath.Tests;

/// <summary>The filters of `ct list` and `observe`, on rows and events built by hand.</summary>
public sealed class ObserveFilterTests
{
    private static readonly IPEndPoint Client = IPEndPoint.Parse("10.244.0.2:40000");
    private static readonly IPEndPoint Vip = IPEndPoint.Parse("10.96.0.42:80");
    private static readonly IPEndPoint Backend = IPEndPoint.Parse("10.244.0.11:8080");

    private static ObservedEvent NewConnection(string? service = "default/echo:http") =>
        new(DateTimeOffset.UtcNow, 1, false, Reason.ForwardServiceNew, MetricsDirection.Ingress, 6, Client, Vip, Client, Backend, service, 5, "veth0", 0, 0);

    [Fact]
    public void ServiceMatchesEveryPortOfANameOrOnePort()
    {
        Assert.True(ConntrackFilter.ServiceMatches("default/echo:http", "default/echo"));
        Assert.True(ConntrackFilter.ServiceMatches("default/echo:http", "default/echo:http"));
        Assert.False(ConntrackFilter.ServiceMatches("default/echo:http", "default/echo:udp"));
        Assert.False(ConntrackFilter.ServiceMatches("default/echoes:http", "default/echo"));
        Assert.False(ConntrackFilter.ServiceMatches(null, "default/echo"));
    }

    [Fact]
    public void ObserveFiltersByPodAfterTranslationVerdictReasonAndService()
    {
        var e = NewConnection();
        Assert.True(new ObserveFilter().Matches(e));
        Assert.True(new ObserveFilter(PodAddresses: new HashSet<IPAddress> { Backend.Address }).Matches(e));
        Assert.False(new ObserveFilter(PodAddresses: new HashSet<IPAddress> { IPAddress.Parse("10.244.0.12") }).Matches(e));
        Assert.True(new ObserveFilter(Dropped: false).Matches(e));
        Assert.False(new ObserveFilter(Dropped: true).Matches(e));
        Assert.True(new ObserveFilter(Reason: Reason.ForwardServiceNew).Matches(e));
        Assert.False(new ObserveFilter(Reason: Reason.RejectNoPort).Matches(e));
        Assert.True(new ObserveFilter(Service: "default/echo").Matches(e));
        Assert.False(new ObserveFilter(Service: "default/other").Matches(e));
        Assert.False(new ObserveFilter(Service: "default/echo").Matches(NewConnection(service: null)));
        Assert.Contains("=> 10.244.0.2:40000 -> 10.244.0.11:8080 service default/echo:http", e.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ConntrackFilterMatchesEitherEndTheTranslationAndTheTable()
    {
        var row = new ConntrackRow("service", "service", "TCP", Client.ToString(), Vip.ToString(), $"dst {Backend}", "default/echo:http", null, "active", 1, 1, 3, 1);
        IPEndPoint[] ends = [Client, Vip, Backend];
        Assert.True(new ConntrackFilter(Address: Backend.Address).Matches(row, ends));
        Assert.True(new ConntrackFilter(Port: 40000).Matches(row, ends));
        Assert.False(new ConntrackFilter(Port: 81).Matches(row, ends));
        Assert.False(new ConntrackFilter(Table: "policy").Matches(row, ends));
        Assert.True(new ConntrackFilter(Service: "default/echo", Table: "service").Matches(row, ends));
    }
}
