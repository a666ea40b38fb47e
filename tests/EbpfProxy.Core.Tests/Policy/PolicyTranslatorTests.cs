using System.Net;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Policy;
using k8s.Models;

namespace EbpfProxy.Core.Tests.Policy;

public class PolicyTranslatorTests
{
    internal static V1Pod Pod(string ns, string name, string ip, string node = "node-1", params (string Key, string Value)[] labels) => new()
    {
        ApiVersion = "v1",
        Kind = "Pod",
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns, Labels = labels.ToDictionary(l => l.Key, l => l.Value) },
        Spec = new V1PodSpec { NodeName = node, Containers = [new V1Container { Name = "c", Image = "i" }] },
        Status = new V1PodStatus { Phase = "Running", PodIP = ip },
    };

    private static V1Namespace Namespace(string name, params (string Key, string Value)[] labels) => new()
    {
        ApiVersion = "v1",
        Kind = "Namespace",
        Metadata = new V1ObjectMeta { Name = name, Labels = labels.ToDictionary(l => l.Key, l => l.Value) },
    };

    private static V1NetworkPolicy Policy(string ns, string name, V1NetworkPolicySpec spec) => new()
    {
        ApiVersion = "networking.k8s.io/v1",
        Kind = "NetworkPolicy",
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns },
        Spec = spec,
    };

    private static V1LabelSelector Labels(string key, string value) => new() { MatchLabels = new Dictionary<string, string> { [key] = value } };

    private static uint IdentityAt(DesiredPolicyState state, string address) => state.IpCache[new IPNetwork(IPAddress.Parse(address), 32)];

    private static ClusterStore ThreePods()
    {
        var store = new ClusterStore();
        store.Upsert(Pod("prod", "web-1", "10.244.1.11", "node-1", ("app", "web")));
        store.Upsert(Pod("prod", "web-2", "10.244.1.12", "node-1", ("app", "web")));
        store.Upsert(Pod("prod", "db", "10.244.2.11", "node-2", ("app", "db")));
        return store;
    }

    [Fact]
    public void PodsWithTheSameLabelsShareAnIdentity()
    {
        var state = PolicyTranslator.ComputeOnce(ThreePods().Snapshot(), "node-1");
        Assert.Equal(IdentityAt(state, "10.244.1.11"), IdentityAt(state, "10.244.1.12"));
        Assert.NotEqual(IdentityAt(state, "10.244.1.11"), IdentityAt(state, "10.244.2.11"));
        Assert.All(state.Identities.Keys, id => Assert.True(id >= ReservedIdentity.FirstAllocated));
        Assert.Equal(2, state.Identities.Count);
    }

    [Fact]
    public void ARelabelChangesThatPodsIdentityOnly()
    {
        var store = ThreePods();
        var translator = new PolicyTranslator("node-1");
        var before = translator.Compute(store.Snapshot());
        var web = IdentityAt(before, "10.244.1.11");
        var db = IdentityAt(before, "10.244.2.11");

        store.Upsert(Pod("prod", "web-1", "10.244.1.11", "node-1", ("app", "web"), ("canary", "true")));
        var after = translator.Compute(store.Snapshot());
        var relabelled = IdentityAt(after, "10.244.1.11");
        Assert.NotEqual(web, relabelled);
        Assert.Equal(web, IdentityAt(after, "10.244.1.12"));
        Assert.Equal(db, IdentityAt(after, "10.244.2.11"));
        Assert.Equal(before.Endpoints[IPAddress.Parse("10.244.1.11")].Id, after.Endpoints[IPAddress.Parse("10.244.1.11")].Id);
        Assert.Equal(relabelled, after.Endpoints[IPAddress.Parse("10.244.1.11")].Identity);
        // Only the relabelled pod's ipcache entry changed.
        var changed = after.IpCache.Where(kv => !before.IpCache.TryGetValue(kv.Key, out var id) || id != kv.Value).Select(kv => kv.Key.ToString());
        Assert.Equal(["10.244.1.11/32"], changed);

        // Back to the old labels: the identity web-2 still holds.
        store.Upsert(Pod("prod", "web-1", "10.244.1.11", "node-1", ("app", "web")));
        Assert.Equal(web, IdentityAt(translator.Compute(store.Snapshot()), "10.244.1.11"));
    }

    [Fact]
    public void IdentitiesAreStableAcrossRecomputationAndNotReusedAtOnce()
    {
        var store = ThreePods();
        var translator = new PolicyTranslator("node-1");
        var first = translator.Compute(store.Snapshot());
        var db = IdentityAt(first, "10.244.2.11");

        // A pod whose key sorts first arrives: numbers already handed out do not move.
        store.Upsert(Pod("aaa", "early", "10.244.3.1", "node-2", ("app", "a")));
        var second = translator.Compute(store.Snapshot());
        foreach (var (prefix, id) in first.IpCache)
            Assert.Equal(id, second.IpCache[prefix]);

        // The db identity goes away with its last pod; a new key does not get its number back.
        store.DeletePod("prod/db");
        var third = translator.Compute(store.Snapshot());
        Assert.DoesNotContain(db, third.Identities.Keys);
        store.Upsert(Pod("prod", "cache", "10.244.2.12", "node-2", ("app", "cache")));
        var fourth = translator.Compute(store.Snapshot());
        Assert.True(IdentityAt(fourth, "10.244.2.12") > IdentityAt(second, "10.244.3.1"));
    }

    [Fact]
    public void ANamespaceRelabelChangesTheIdentitiesOfItsPodsOnly()
    {
        var store = ThreePods();
        store.Upsert(Pod("dev", "tool", "10.244.1.21", "node-1", ("app", "web")));
        var translator = new PolicyTranslator("node-1");
        var before = translator.Compute(store.Snapshot());
        store.Upsert(Namespace("prod", ("env", "prod")));
        var after = translator.Compute(store.Snapshot());
        Assert.NotEqual(IdentityAt(before, "10.244.1.11"), IdentityAt(after, "10.244.1.11"));
        Assert.NotEqual(IdentityAt(before, "10.244.2.11"), IdentityAt(after, "10.244.2.11"));
        Assert.Equal(IdentityAt(before, "10.244.1.21"), IdentityAt(after, "10.244.1.21"));
    }

    [Fact]
    public void ARestartedTranslatorReadoptsNumbersFromThePinnedMaps()
    {
        var store = ThreePods();
        var old = new PolicyTranslator("node-1");
        // Churn first, so the numbers are not what a fresh translator would hand out.
        store.Upsert(Pod("prod", "gone", "10.244.9.9", "node-1", ("app", "gone")));
        old.Compute(store.Snapshot());
        store.DeletePod("prod/gone");
        store.Upsert(Pod("aaa", "early", "10.244.3.1", "node-2", ("app", "a")));
        store.Upsert(Pod("prod", "web-1", "10.244.1.11", "node-1", ("app", "web"), ("v", "2")));
        var pinned = old.Compute(store.Snapshot());

        var hints = new PolicyHints(pinned.IpCache, pinned.Endpoints.ToDictionary(kv => kv.Key, kv => kv.Value.Id));
        var restarted = new PolicyTranslator("node-1", hints: hints).Compute(store.Snapshot());
        Assert.Equal(pinned.IpCache, restarted.IpCache);
        Assert.Equal(pinned.Endpoints, restarted.Endpoints);
        Assert.Equal(pinned.Identities.Keys.Order(), restarted.Identities.Keys.Order());

        var fresh = PolicyTranslator.ComputeOnce(store.Snapshot(), "node-1");
        Assert.NotEqual(pinned.IpCache, fresh.IpCache); // the hints did the work
    }

    [Fact]
    public void HintsThatDisagreeGoToTheMajorityAndNewNumbersAvoidEveryHintedOne()
    {
        // While the daemon was down, web-1 was relabelled: the pinned ipcache still says 500 for
        // both web pods. The unchanged pair keeps 500; web-1 gets a number above every hinted one.
        var store = new ClusterStore();
        store.Upsert(Pod("prod", "web-1", "10.244.1.11", "node-1", ("app", "web"), ("v", "2")));
        store.Upsert(Pod("prod", "web-2", "10.244.1.12", "node-1", ("app", "web")));
        store.Upsert(Pod("prod", "web-3", "10.244.1.13", "node-1", ("app", "web")));
        var ipcache = new Dictionary<IPNetwork, uint>
        {
            [IPNetwork.Parse("10.244.1.11/32")] = 500,
            [IPNetwork.Parse("10.244.1.12/32")] = 500,
            [IPNetwork.Parse("10.244.1.13/32")] = 500,
            [IPNetwork.Parse("10.244.7.7/32")] = 900, // a pod that is gone
        };
        var state = new PolicyTranslator("node-1", hints: new PolicyHints(ipcache, new Dictionary<IPAddress, uint>())).Compute(store.Snapshot());
        Assert.Equal(500u, IdentityAt(state, "10.244.1.12"));
        Assert.Equal(500u, IdentityAt(state, "10.244.1.13"));
        Assert.Equal(901u, IdentityAt(state, "10.244.1.11"));
    }

    [Fact]
    public void DeletingEveryPolicyRestoresFullConnectivity()
    {
        var store = ThreePods();
        store.Upsert(Policy("prod", "deny", new V1NetworkPolicySpec { PodSelector = new V1LabelSelector(), PolicyTypes = ["Ingress", "Egress"] }));
        var translator = new PolicyTranslator("node-1");
        var isolated = translator.Compute(store.Snapshot());
        Assert.All(isolated.Endpoints.Values, e => Assert.Equal(EndpointFlags.IngressIsolated | EndpointFlags.EgressIsolated, e.Flags));
        Assert.NotEmpty(isolated.AllRules);

        store.Delete(Policy("prod", "deny", new V1NetworkPolicySpec()));
        var open = translator.Compute(store.Snapshot());
        Assert.All(open.Endpoints.Values, e => Assert.Equal(EndpointFlags.None, e.Flags));
        Assert.Empty(open.AllRules);
        Assert.Equal(isolated.Endpoints.Keys.Select(a => a.ToString()).Order(), open.Endpoints.Keys.Select(a => a.ToString()).Order());
    }

    [Fact]
    public void EndpointsWhoseRulesDidNotChangeKeepTheirSetInstance()
    {
        var store = ThreePods();
        store.Upsert(Pod("prod", "api", "10.244.1.13", "node-1", ("app", "api")));
        store.Upsert(Policy("prod", "web-from-db", new V1NetworkPolicySpec
        {
            PodSelector = Labels("app", "web"),
            Ingress = [new V1NetworkPolicyIngressRule { FromProperty = [new V1NetworkPolicyPeer { PodSelector = Labels("app", "db") }] }],
        }));
        store.Upsert(Policy("prod", "api-from-web", new V1NetworkPolicySpec
        {
            PodSelector = Labels("app", "api"),
            Ingress = [new V1NetworkPolicyIngressRule { FromProperty = [new V1NetworkPolicyPeer { PodSelector = Labels("app", "web") }] }],
        }));
        var translator = new PolicyTranslator("node-1");
        var before = translator.Compute(store.Snapshot());
        var web = before.Endpoints[IPAddress.Parse("10.244.1.11")].Id;
        var api = before.Endpoints[IPAddress.Parse("10.244.1.13")].Id;

        // A new db pod changes what web admits; api's rules (from web) are untouched.
        store.Upsert(Pod("prod", "db-2", "10.244.2.12", "node-2", ("app", "db"), ("v", "2")));
        var after = translator.Compute(store.Snapshot());
        Assert.Same(before.RulesByEndpoint[api], after.RulesByEndpoint[api]);
        Assert.NotSame(before.RulesByEndpoint[web], after.RulesByEndpoint[web]);
        Assert.Contains(PolicyRuleKey.AnyPort(web, IdentityAt(after, "10.244.2.12"), PolicyDirection.Ingress), after.RulesByEndpoint[web]);
    }

    [Fact]
    public void AUdpOnlyRuleNeverAdmitsTcp()
    {
        var store = ThreePods();
        store.Upsert(Policy("prod", "udp", new V1NetworkPolicySpec
        {
            PodSelector = Labels("app", "web"),
            Ingress = [new V1NetworkPolicyIngressRule { Ports = [new V1NetworkPolicyPort { Protocol = "UDP" }] }],
        }));
        var state = PolicyTranslator.ComputeOnce(store.Snapshot(), "node-1");
        var ep = state.Endpoints[IPAddress.Parse("10.244.1.11")];
        Assert.Equal(EndpointFlags.IngressIsolated, ep.Flags);
        var rules = state.RulesByEndpoint[ep.Id].Where(r => r.Identity != ReservedIdentity.Host).ToList();
        Assert.Equal([PolicyRuleKey.AllPortsOf(ep.Id, ReservedIdentity.Any, PolicyDirection.Ingress, L4Protocol.Udp)], rules);
        Assert.DoesNotContain(state.AllRules, r => r.EndpointId == ep.Id && r.Identity != ReservedIdentity.Host && r.Protocol is L4Protocol.Tcp or L4Protocol.Any);
    }

    [Fact]
    public void AnInvalidPolicyFailsClosedWithoutTakingOthersDown()
    {
        var store = ThreePods();
        store.Upsert(Policy("prod", "bad", new V1NetworkPolicySpec
        {
            PodSelector = Labels("app", "web"),
            Ingress = [new V1NetworkPolicyIngressRule { FromProperty = [new V1NetworkPolicyPeer { PodSelector = new V1LabelSelector { MatchExpressions = [new V1LabelSelectorRequirement { Key = "app", OperatorProperty = "In" }] } }] }],
        }));
        store.Upsert(Policy("prod", "good", new V1NetworkPolicySpec
        {
            PodSelector = Labels("app", "web"),
            Ingress = [new V1NetworkPolicyIngressRule { FromProperty = [new V1NetworkPolicyPeer { PodSelector = Labels("app", "db") }] }],
        }));
        // Odd shapes must not throw: a null spec selects every pod for ingress; null rules and peers are errors.
        store.Upsert(Policy("prod", "null-spec", null!));
        store.Upsert(Policy("prod", "null-rule", new V1NetworkPolicySpec { PodSelector = Labels("app", "db"), Ingress = [null!] }));
        store.Upsert(Policy("prod", "null-peer", new V1NetworkPolicySpec { Egress = [new V1NetworkPolicyEgressRule { To = [null!] }] }));

        var state = PolicyTranslator.ComputeOnce(store.Snapshot(), "node-1");
        Assert.Contains(state.Errors, e => e.Kind == "NetworkPolicy" && e.Object == "prod/bad" && e.Message.Contains("fails closed", StringComparison.Ordinal));
        Assert.Contains(state.Errors, e => e.Object == "prod/null-peer");
        Assert.DoesNotContain(state.Errors, e => e.Object is "prod/good" or "prod/null-spec" or "prod/null-rule");
        var ep = state.Endpoints[IPAddress.Parse("10.244.1.11")];
        Assert.Equal(EndpointFlags.IngressIsolated | EndpointFlags.EgressIsolated, ep.Flags);
        var db = IdentityAt(state, "10.244.2.11");
        // good still allows db; bad and null-spec add isolation only; null-peer isolates egress and allows nothing.
        Assert.Equal(
            [PolicyRuleKey.AnyPort(ep.Id, ReservedIdentity.Host, PolicyDirection.Ingress), PolicyRuleKey.AnyPort(ep.Id, db, PolicyDirection.Ingress)],
            state.RulesByEndpoint[ep.Id].Order());
    }

    [Fact]
    public void AnAnyPeerEntryMakesNarrowerOnesRedundant()
    {
        var store = ThreePods();
        store.Upsert(Policy("prod", "narrow", new V1NetworkPolicySpec
        {
            PodSelector = Labels("app", "web"),
            Ingress = [new V1NetworkPolicyIngressRule
            {
                FromProperty = [new V1NetworkPolicyPeer { PodSelector = Labels("app", "db") }],
                Ports = [new V1NetworkPolicyPort { Port = 80 }, new V1NetworkPolicyPort { Port = 443 }],
            }],
        }));
        store.Upsert(Policy("prod", "https-from-anyone", new V1NetworkPolicySpec
        {
            PodSelector = Labels("app", "web"),
            Ingress = [new V1NetworkPolicyIngressRule { Ports = [new V1NetworkPolicyPort { Port = 443 }] }],
        }));
        var state = PolicyTranslator.ComputeOnce(store.Snapshot(), "node-1");
        var ep = state.Endpoints[IPAddress.Parse("10.244.1.11")].Id;
        var db = IdentityAt(state, "10.244.2.11");
        var rules = state.RulesByEndpoint[ep].Order().Select(r => r.ToString()).ToList();
        Assert.Equal(["ingress any TCP/443", "ingress host *", $"ingress {db} TCP/80"], rules);
    }

    [Fact]
    public void TheNodesAddressesAreTheHostIdentity()
    {
        var store = ThreePods();
        store.Upsert(new V1Node
        {
            ApiVersion = "v1",
            Kind = "Node",
            Metadata = new V1ObjectMeta { Name = "node-1" },
            Status = new V1NodeStatus { Addresses = [new V1NodeAddress { Type = "InternalIP", Address = "192.168.1.10" }, new V1NodeAddress { Type = "Hostname", Address = "node-1" }] },
        });
        var state = new PolicyTranslator("node-1", [IPAddress.Parse("10.244.1.1"), IPAddress.Parse("fd00::1")]).Compute(store.Snapshot());
        Assert.Equal(ReservedIdentity.Host, IdentityAt(state, "192.168.1.10"));
        Assert.Equal(ReservedIdentity.Host, IdentityAt(state, "10.244.1.1"));
        Assert.Equal(5, state.IpCache.Count);
    }

    [Fact]
    public void OfTwoPodsClaimingOneAddressTheOneNotBeingDeletedWins()
    {
        var store = new ClusterStore();
        var old = Pod("prod", "a-old", "10.244.1.11", "node-1", ("app", "old"));
        old.Metadata.DeletionTimestamp = DateTime.UnixEpoch;
        store.Upsert(old);
        store.Upsert(Pod("prod", "b-new", "10.244.1.11", "node-1", ("app", "new")));
        var state = PolicyTranslator.ComputeOnce(store.Snapshot(), "node-1");
        var ep = Assert.Single(state.Endpoints.Values);
        Assert.Equal("b-new", ep.Name);
        Assert.Equal("new", Assert.Single(state.Identities.Values).PodLabels.Pairs.Single().Value);
    }

    [Fact]
    public void AnIpv6BlockMatchesNothingAndIsNoError()
    {
        var store = ThreePods();
        store.Upsert(Policy("prod", "v6", new V1NetworkPolicySpec
        {
            PodSelector = Labels("app", "web"),
            Ingress = [new V1NetworkPolicyIngressRule { FromProperty = [new V1NetworkPolicyPeer { IpBlock = new V1IPBlock { Cidr = "fd00::/8", Except = ["fd00:1::/32"] } }] }],
        }));
        var state = PolicyTranslator.ComputeOnce(store.Snapshot(), "node-1");
        Assert.Empty(state.Errors);
        var ep = state.Endpoints[IPAddress.Parse("10.244.1.11")].Id;
        Assert.Equal([PolicyRuleKey.AnyPort(ep, ReservedIdentity.Host, PolicyDirection.Ingress)], state.RulesByEndpoint[ep]);
    }
}
