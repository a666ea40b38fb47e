using EbpfProxy.Datapath.Sync;
using EbpfProxy.Core.Policy;
using System.Net;
using EbpfProxy.Core.Model;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Policy;

namespace EbpfProxy.Datapath.Tests;

/// <summary>
/// The write order of the NetworkPolicy maps, checked against <see cref="PolicyModel"/> after every
/// single write: never admit what neither state admits; in the usual changes, never deny what both
/// admit. (The kernel test PolicyWriterKernelTests runs the same check through the real program.)
/// </summary>
public class PolicyPlannerTests
{
    private const PolicyDirection In = PolicyDirection.Ingress, Out = PolicyDirection.Egress;
    private static readonly IPAddress PodA = PolicyScenarios.PodA;
    private static readonly Dictionary<string, uint> Cluster = PolicyScenarios.Cluster;

    private static PolicyState State(Dictionary<string, uint>? ipcache = null, Dictionary<IPAddress, EndpointEntry>? endpoints = null, IEnumerable<PolicyRule>? rules = null) =>
        PolicyScenarios.State(ipcache, endpoints, rules);

    /// <summary>Every intermediate state admits only what the old or the new one admits; with <paramref name="makeBeforeBreak"/> also everything both admit.</summary>
    private static void AssertSafe(PolicyState old, PolicyState @new, bool makeBeforeBreak, string what = "")
    {
        var ops = PolicyPlanner.Plan(old, @new);
        var scenario = new PolicyScenario(what, old, @new, makeBeforeBreak);
        int i = 0;
        foreach (var step in PolicyModel.Steps(old, ops))
        {
            var failures = PolicyScenarios.Violations(scenario, p => PolicyModel.Admits(step, p), $"{what}after write {i} ({ops[i]})").ToList();
            Assert.True(failures.Count == 0, string.Join("\n", failures) + "\nplan:\n" + string.Join("\n", ops));
            i++;
        }
        Assert.Equal(@new, PolicyModel.Steps(old, ops).LastOrDefault() ?? old);
    }

    [Fact]
    public void AnUnchangedStatePlansNothing()
    {
        var s = State(Cluster, new() { [PodA] = new(1, 299, PolicyIsolation.Ingress) }, [PolicyRule.SinglePort(1, 300, In, L4Protocol.Tcp, 80)]);
        Assert.Empty(PolicyPlanner.Plan(s, s with { }));
    }

    [Theory]
    [MemberData(nameof(PolicyScenarios.Names), MemberType = typeof(PolicyScenarios))]
    public void NamedChangesAreWrittenSafely(string name)
    {
        var s = PolicyScenarios.Named(name);
        AssertSafe(s.Old, s.New, s.MakeBeforeBreak);
    }

    [Fact]
    public void IsolationIsWrittenLastAndARelabelIsRuleIpcacheRule()
    {
        var isolate = PolicyScenarios.Named("a pod becomes isolated: rules first, flag last");
        Assert.IsType<PolicyOp.UpsertEndpoint>(PolicyPlanner.Plan(isolate.Old, isolate.New)[^1]);
        var release = PolicyScenarios.Named("a pod is released for egress only");
        Assert.IsType<PolicyOp.UpsertEndpoint>(PolicyPlanner.Plan(release.Old, release.New)[0]);
        var relabel = PolicyScenarios.Named("a relabelled peer is admitted throughout (301 -> 305)");
        Assert.Equal([typeof(PolicyOp.UpsertRule), typeof(PolicyOp.UpsertIpcache), typeof(PolicyOp.DeleteRule)], PolicyPlanner.Plan(relabel.Old, relabel.New).Select(o => o.GetType()));
    }

    [Fact]
    public void RandomChangesNeverAdmitWhatNeitherStateAdmits()
    {
        var rng = new Random(5);
        for (int n = 0; n < 1500; n++)
        {
            var old = RandomState(rng);
            var @new = RandomState(rng);
            AssertSafe(old, @new, makeBeforeBreak: false, what: $"case {n}: ");
            // Idempotent: from the new state nothing remains to write.
            Assert.Empty(PolicyPlanner.Plan(@new, @new with { }));
        }
    }

    private static PolicyState RandomState(Random rng)
    {
        string[] prefixes = ["10.244.1.1/32", "10.244.1.2/32", "10.244.2.7/32", "10.244.0.11/32", "10.244.1.0/24", "10.244.0.0/16", "192.168.1.10/32", "203.0.113.0/24", "0.0.0.0/0"];
        uint[] identities = [PolicyIdentity.Host, 300, 301, 302, 303];
        var ipcache = prefixes.Where(_ => rng.Next(3) > 0).ToDictionary(IPNetwork.Parse, _ => identities[rng.Next(identities.Length)]);
        var endpoints = new Dictionary<IPAddress, EndpointEntry>();
        foreach (var local in PolicyScenarios.Locals)
        {
            if (rng.Next(4) > 0)
                endpoints[local] = new EndpointEntry((uint)rng.Next(1, 4), 299, (PolicyIsolation)rng.Next(4));
        }
        uint[] ruleIds = [PolicyIdentity.Any, PolicyIdentity.World, 300, 301, 302, 303];
        var rules = new HashSet<PolicyRule>();
        for (int i = rng.Next(8); i > 0; i--)
        {
            var ep = (uint)rng.Next(1, 4);
            var id = ruleIds[rng.Next(ruleIds.Length)];
            var dir = rng.Next(2) == 0 ? In : Out;
            rules.Add(rng.Next(4) switch
            {
                0 => PolicyRule.AllTraffic(ep, id, dir),
                1 => PolicyRule.AllPorts(ep, id, dir, L4Protocol.Tcp),
                2 => PolicyRule.SinglePort(ep, id, dir, L4Protocol.Tcp, 80),
                _ => PolicyRule.SinglePort(ep, id, dir, L4Protocol.Udp, 53),
            });
        }
        return new PolicyState { Ipcache = ipcache, Endpoints = endpoints, Rules = rules };
    }

    [Theory]
    [InlineData(80, 80, new[] { "80/16" })]
    [InlineData(1, 65535, new[] { "1/16", "2/15", "4/14", "8/13", "16/12", "32/11", "64/10", "128/9", "256/8", "512/7", "1024/6", "2048/5", "4096/4", "8192/3", "16384/2", "32768/1" })]
    [InlineData(32000, 32768, new[] { "32000/8", "32256/7", "32768/16" })]
    [InlineData(8080, 8083, new[] { "8080/14" })]
    public void PortRangesBecomeAlignedBlocks(int first, int last, string[] blocks)
    {
        var rules = PolicyRule.PortRange(1, 300, In, L4Protocol.Tcp, (ushort)first, (ushort)last).ToList();
        Assert.Equal(blocks, rules.Select(r => $"{r.Port}/{r.PortBits}"));
        Assert.All(rules, r => Assert.Null(r.Problem()));
        // Exactly the range, every port once.
        for (int port = 0; port <= 65535; port++)
            Assert.Equal(port >= first && port <= last ? 1 : 0, rules.Count(r => r.Covers(L4Protocol.Tcp, (ushort)port)));
    }

    [Fact]
    public void InvalidStatesAreRefusedWithTheReason()
    {
        var bad = State(new() { ["10.0.0.0/8"] = 0 }, new() { [PodA] = new(0, 1, PolicyIsolation.Ingress) },
            [new PolicyRule(1, 300, In, L4Protocol.Tcp, 81, 15), new PolicyRule(1, 300, In, L4Protocol.Any, 80, 16)]);
        var problems = bad.Validate();
        Assert.Equal(4, problems.Count);
        Assert.Contains(problems, p => p.Contains("identity 0", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("bits beyond", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("needs a protocol", StringComparison.Ordinal));
    }
}
