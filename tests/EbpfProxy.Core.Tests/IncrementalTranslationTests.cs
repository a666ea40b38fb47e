using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Planning;
using EbpfProxy.Core.Translation;
using k8s.Models;

namespace EbpfProxy.Core.Tests;

/// <summary>The change-tracked translator must always agree with a translation from scratch.</summary>
public class IncrementalTranslationTests
{
    private static V1Service Service(int i, int port, string ip) => new()
    {
        Metadata = new V1ObjectMeta { Name = $"svc-{i}", NamespaceProperty = "default", ResourceVersion = Guid.NewGuid().ToString() },
        Spec = new V1ServiceSpec { ClusterIP = ip, Ports = [new V1ServicePort { Name = "p", Port = port, Protocol = "TCP" }] },
    };

    private static V1EndpointSlice Slice(string name, int service, IEnumerable<int> backends) => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = name,
            NamespaceProperty = "default",
            ResourceVersion = Guid.NewGuid().ToString(),
            Labels = new Dictionary<string, string> { ["kubernetes.io/service-name"] = $"svc-{service}" },
        },
        AddressType = "IPv4",
        Ports = [new Discoveryv1EndpointPort { Name = "p", Port = 8080, Protocol = "TCP" }],
        Endpoints = [.. backends.Select(b => new V1Endpoint { Addresses = [$"10.244.0.{b}"] })],
    };

    private static string Render(DesiredLbState state) =>
        string.Join("\n", state.Frontends.Values
            .OrderBy(f => f.Key.ToString(), StringComparer.Ordinal)
            .Select(f => $"{f.Key} {f.Service} {f.Flags} [{string.Join(",", f.Active.Select(b => b.Address))}] [{string.Join(",", f.Terminating.Select(b => b.Address))}]"));

    [Fact]
    public void AFullPassOverManyServicesMatchesTranslatingThemOneAtATime()
    {
        // Enough services for the full pass to translate them in parallel; some clash on a
        // frontend (the earlier key wins) and some fail to translate.
        var store = new ClusterStore();
        var oneByOne = new ServiceTranslator(new NodeContext("node-1"));
        oneByOne.Translate(store.TakeServiceChanges());
        for (int i = 0; i < 600; i++)
        {
            int n = i % 7 == 6 ? i - 1 : i;
            store.Upsert(Service(i, 80, i % 50 == 49 ? "not-an-ip" : $"10.96.{n / 256}.{n % 256}"));
            store.Upsert(Slice($"s-{i}", i, Enumerable.Range(1 + i % 5, 5)));
            oneByOne.Translate(store.TakeServiceChanges());
        }
        var full = ServiceTranslator.Translate(store.Snapshot(), new NodeContext("node-1"));
        var last = oneByOne.Translate(store.TakeServiceChanges());
        Assert.Equal(Render(last.State), Render(full.State));
        Assert.Equal(last.Errors.Select(e => e.ToString()), full.Errors.Select(e => e.ToString()));
        Assert.Contains(full.Errors, e => e.Message.Contains("not-an-ip", StringComparison.Ordinal));
        Assert.Contains(full.Errors, e => e.Message.Contains("already claimed", StringComparison.Ordinal));
    }

    [Fact]
    public void RandomChurnMatchesAFullTranslation()
    {
        var rng = new Random(11);
        var store = new ClusterStore();
        var incremental = new ServiceTranslator(new NodeContext("node-1"));
        var plannedFromChanges = new LbState();
        for (int round = 0; round < 400; round++)
        {
            int i = rng.Next(8);
            switch (rng.Next(6))
            {
                case 0:
                    store.DeleteService($"default/svc-{i}");
                    break;
                case 1:
                    // Two services may claim the same frontend: the clash must resolve the same way.
                    store.Upsert(Service(i, 80 + rng.Next(2), $"10.96.0.{rng.Next(4)}"));
                    break;
                case 2:
                    store.DeleteEndpointSlice($"default/s-{rng.Next(12)}");
                    break;
                case 3:
                    // A slice may move to another service.
                    store.Upsert(Slice($"s-{rng.Next(12)}", i, Enumerable.Range(1, 9).Where(_ => rng.Next(3) == 0)));
                    break;
                default:
                    store.Upsert(Service(i, 80, $"10.96.1.{i}"));
                    break;
            }
            var changes = store.TakeServiceChanges();
            var result = incremental.Translate(changes);
            var fresh = ServiceTranslator.Translate(changes.Snapshot, new NodeContext("node-1"));
            Assert.Equal(Render(fresh.State), Render(result.State));
            Assert.Equal(fresh.Errors.Select(e => e.ToString()).Order(), result.Errors.Select(e => e.ToString()).Order());

            // Planning only the reported changes keeps the maps equal to what the full plan gives.
            foreach (var op in LbPlanner.Plan(plannedFromChanges, result.State, changed: result.ChangedFrontends).Ops)
                plannedFromChanges.Apply(op);
            Assert.Empty(LbPlanner.Plan(plannedFromChanges, result.State).Ops);
        }
    }
}

public class HealthCheckTranslationTests
{
    [Fact]
    public void LoadBalancerWithLocalPolicyGetsAHealthCheckCountingLocalReadyEndpoints()
    {
        var store = new ClusterStore();
        store.Upsert(new V1Service
        {
            Metadata = new V1ObjectMeta { Name = "lb", NamespaceProperty = "shop" },
            Spec = new V1ServiceSpec { Type = "LoadBalancer", ClusterIP = "10.96.0.9", ExternalTrafficPolicy = "Local", HealthCheckNodePort = 32001, Ports = [new V1ServicePort { Port = 80 }] },
        });
        store.Upsert(new V1EndpointSlice
        {
            Metadata = new V1ObjectMeta { Name = "lb-1", NamespaceProperty = "shop", Labels = new Dictionary<string, string> { ["kubernetes.io/service-name"] = "lb" } },
            AddressType = "IPv4",
            Ports = [new Discoveryv1EndpointPort { Port = 8080 }],
            Endpoints =
            [
                new V1Endpoint { Addresses = ["10.244.0.1"], NodeName = "node-1" },
                new V1Endpoint { Addresses = ["10.244.0.2"], NodeName = "node-1", Conditions = new V1EndpointConditions { Ready = false, Serving = true, Terminating = true } },
                new V1Endpoint { Addresses = ["10.244.0.3"], NodeName = "node-2" },
            ],
        });
        store.Upsert(new V1Service
        {
            Metadata = new V1ObjectMeta { Name = "cluster", NamespaceProperty = "shop" },
            Spec = new V1ServiceSpec { Type = "LoadBalancer", ClusterIP = "10.96.0.10", HealthCheckNodePort = 32002, Ports = [new V1ServicePort { Port = 80 }] },
        });

        var translator = new ServiceTranslator(new NodeContext("node-1"));
        var result = translator.Translate(store.TakeServiceChanges());
        Assert.Equal([new HealthCheckTarget(32001, "shop", "lb", 1)], result.HealthChecks);

        store.DeleteService("shop/lb");
        Assert.Empty(translator.Translate(store.TakeServiceChanges()).HealthChecks);
    }
}

public class NodeContextTests
{
    [Fact]
    public void NodePortAddressesArePrimaryByDefaultAndFilteredByCidrsOtherwise()
    {
        var node = new V1Node
        {
            Metadata = new V1ObjectMeta { Name = "n1", Labels = new Dictionary<string, string> { ["topology.kubernetes.io/zone"] = "z1" } },
            Status = new V1NodeStatus { Addresses = [new V1NodeAddress { Type = "InternalIP", Address = "192.168.1.10" }, new V1NodeAddress { Type = "Hostname", Address = "n1" }] },
        };
        var primary = NodeContext.From("n1", node, [], [System.Net.IPAddress.Parse("10.0.0.5")]);
        Assert.Equal(["192.168.1.10"], primary.Addresses.Select(a => a.ToString()));
        Assert.Equal("z1", primary.Zone);

        var local = new[] { System.Net.IPAddress.Parse("10.0.0.5"), System.Net.IPAddress.Parse("172.16.0.1") };
        var selected = NodeContext.From("n1", node, [System.Net.IPNetwork.Parse("10.0.0.0/8"), System.Net.IPNetwork.Parse("192.168.0.0/16")], local);
        Assert.Equal(["10.0.0.5", "192.168.1.10"], selected.Addresses.Select(a => a.ToString()));
        Assert.NotEqual(primary, selected);
    }
}
