using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Policy;
using k8s.Models;

namespace EbpfProxy.Core.Tests.Policy;

/// <summary>
/// A translator carried across changes (caches, reused resolutions, stable numbers) must always
/// say what a fresh one says about the same snapshot, once identity numbers and endpoint ids are
/// replaced by what they stand for.
/// </summary>
public class IncrementalPolicyTests
{
    private static readonly string[] Apps = ["web", "db", "api"];
    private static readonly string[] Namespaces = ["a", "b", "c"];

    private static V1Pod RandomPod(Random rng, int i)
    {
        var labels = new Dictionary<string, string> { ["app"] = Apps[rng.Next(Apps.Length)] };
        if (rng.Next(3) == 0)
            labels["tier"] = rng.Next(2) == 0 ? "front" : "back";
        var ports = new List<V1ContainerPort>();
        if (rng.Next(2) == 0)
            ports.Add(new V1ContainerPort { Name = "http", ContainerPort = 8080 + rng.Next(2), Protocol = rng.Next(4) == 0 ? "UDP" : "TCP" });
        return new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = $"p{i}", NamespaceProperty = Namespaces[i % 3], Labels = labels, ResourceVersion = Guid.NewGuid().ToString() },
            Spec = new V1PodSpec { NodeName = rng.Next(2) == 0 ? "node-1" : "node-2", Containers = [new V1Container { Name = "c", Ports = ports }] },
            // Addresses from a small pool, so ipBlocks, excepts and the odd duplicate address come up.
            Status = new V1PodStatus { Phase = "Running", PodIP = $"10.{rng.Next(2)}.{rng.Next(2)}.{rng.Next(1, 20)}" },
        };
    }

    private static V1LabelSelector Selector(Random rng) => rng.Next(4) switch
    {
        0 => new V1LabelSelector(),
        1 => new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = Apps[rng.Next(Apps.Length)] } },
        2 => new V1LabelSelector { MatchExpressions = [new V1LabelSelectorRequirement { Key = "tier", OperatorProperty = "NotIn", Values = ["front"] }] },
        _ => new V1LabelSelector { MatchExpressions = [new V1LabelSelectorRequirement { Key = "tier", OperatorProperty = rng.Next(2) == 0 ? "Exists" : "Bogus" }] },
    };

    private static V1NetworkPolicyPeer Peer(Random rng) => rng.Next(4) switch
    {
        0 => new V1NetworkPolicyPeer { PodSelector = Selector(rng) },
        1 => new V1NetworkPolicyPeer { NamespaceSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["env"] = rng.Next(2) == 0 ? "prod" : "dev" } } },
        2 => new V1NetworkPolicyPeer { NamespaceSelector = new V1LabelSelector(), PodSelector = Selector(rng) },
        _ => new V1NetworkPolicyPeer { IpBlock = new V1IPBlock { Cidr = $"10.{rng.Next(2)}.0.0/16", Except = rng.Next(2) == 0 ? [$"10.0.{rng.Next(2)}.0/24"] : null } },
    };

    private static List<V1NetworkPolicyPort>? Ports(Random rng) => rng.Next(4) switch
    {
        0 => null,
        1 => [new V1NetworkPolicyPort { Port = "http" }],
        2 => [new V1NetworkPolicyPort { Port = 80, EndPort = 80 + rng.Next(8) }],
        _ => [new V1NetworkPolicyPort { Protocol = "UDP" }],
    };

    private static V1NetworkPolicy RandomPolicy(Random rng, int i)
    {
        var spec = new V1NetworkPolicySpec { PodSelector = Selector(rng) };
        if (rng.Next(3) > 0)
            spec.Ingress = [.. Enumerable.Range(0, rng.Next(3)).Select(_ => new V1NetworkPolicyIngressRule { FromProperty = rng.Next(4) == 0 ? null : [Peer(rng)], Ports = Ports(rng) })];
        if (rng.Next(2) == 0)
            spec.Egress = [.. Enumerable.Range(0, rng.Next(3)).Select(_ => new V1NetworkPolicyEgressRule { To = rng.Next(4) == 0 ? null : [Peer(rng)], Ports = Ports(rng) })];
        if (rng.Next(3) == 0)
            spec.PolicyTypes = rng.Next(2) == 0 ? ["Egress"] : ["Ingress", "Egress"];
        return new V1NetworkPolicy
        {
            Metadata = new V1ObjectMeta { Name = $"np{i}", NamespaceProperty = Namespaces[i % 3], ResourceVersion = Guid.NewGuid().ToString() },
            Spec = spec,
        };
    }

    /// <summary>The state with numbers replaced by meaning: identity keys, pod names.</summary>
    private static List<string> Meaning(DesiredPolicyState state)
    {
        string Id(uint id) => ReservedIdentity.NameOf(id) ?? state.Identities[id].ToString();
        var pods = state.Endpoints.Values.GroupBy(e => e.Id).ToDictionary(g => g.Key, g => $"{g.First().Namespace}/{g.First().Name}");
        return [
            .. state.IpCache.Select(kv => $"ipcache {kv.Key} {Id(kv.Value)}"),
            .. state.Endpoints.Select(kv => $"endpoint {kv.Key} {kv.Value.Namespace}/{kv.Value.Name} {Id(kv.Value.Identity)} {kv.Value.Flags}"),
            .. state.AllRules.Select(r => $"rule {pods[r.EndpointId]} {r.Direction} {Id(r.Identity)} {r.Protocol} {r.PortRange} /{r.PrefixLength}"),
            .. state.Errors.Select(e => $"error {e}"),
        ];
    }

    [Fact]
    public void RandomChurnMatchesAFreshComputation()
    {
        var rng = new Random(17);
        var store = new ClusterStore();
        var translator = new PolicyTranslator("node-1");
        var previousIds = new Dictionary<string, uint>();
        int reused = 0;
        for (int round = 0; round < 300; round++)
        {
            switch (rng.Next(7))
            {
                case 0 or 1 or 2:
                    store.Upsert(RandomPod(rng, rng.Next(15)));
                    break;
                case 3:
                    store.DeletePod($"{Namespaces[round % 3]}/p{rng.Next(15)}");
                    break;
                case 4:
                    store.Upsert(new V1Namespace { Metadata = new V1ObjectMeta { Name = Namespaces[rng.Next(3)], Labels = new Dictionary<string, string> { ["env"] = rng.Next(2) == 0 ? "prod" : "dev" }, ResourceVersion = Guid.NewGuid().ToString() } });
                    break;
                case 5:
                    store.Upsert(RandomPolicy(rng, rng.Next(8)));
                    break;
                default:
                    store.Delete(new V1NetworkPolicy { Metadata = new V1ObjectMeta { Name = $"np{rng.Next(8)}", NamespaceProperty = Namespaces[rng.Next(3)] } });
                    break;
            }
            var snapshot = store.Snapshot();
            var carried = translator.Compute(snapshot);
            reused += translator.LastResolutions.Reused;
            var fresh = PolicyTranslator.ComputeOnce(snapshot, "node-1");
            Assert.Equal(Meaning(fresh).Order(StringComparer.Ordinal), Meaning(carried).Order(StringComparer.Ordinal));

            // A key that stays keeps its number.
            var ids = carried.Identities.ToDictionary(kv => kv.Value.ToString(), kv => kv.Key);
            foreach (var (key, id) in ids)
                if (previousIds.TryGetValue(key, out var before))
                    Assert.Equal(before, id);
            previousIds = ids;
        }
        Assert.True(reused > 100, $"the churn should reuse resolutions ({reused})");
    }
}
