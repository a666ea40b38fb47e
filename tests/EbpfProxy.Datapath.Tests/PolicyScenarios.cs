using EbpfProxy.Datapath.Sync;
using EbpfProxy.Core.Policy;
using System.Net;
using EbpfProxy.Core.Model;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Policy;

namespace EbpfProxy.Datapath.Tests;

/// <summary>A change of the policy maps and whether the write order promises no transient denial for it.</summary>
public sealed record PolicyScenario(string Name, PolicyState Old, PolicyState New, bool MakeBeforeBreak)
{
    public override string ToString() => Name;
}

/// <summary>
/// Named changes of the policy maps, run against <see cref="PolicyModel"/> (PolicyPlannerTests) and
/// through the real program (PolicyWriterKernelTests), with the probes that check them.
/// </summary>
public static class PolicyScenarios
{
    private const PolicyDirection In = PolicyDirection.Ingress, Out = PolicyDirection.Egress;
    public static readonly IPAddress PodA = IPAddress.Parse("10.244.0.10"), PodB = IPAddress.Parse("10.244.0.11");
    public static readonly IPAddress[] Locals = [PodA, PodB];
    public static readonly IPAddress[] Peers = [.. new[] { "10.244.1.1", "10.244.1.2", "10.244.2.7", "10.244.0.11", "192.168.1.10", "203.0.113.9" }.Select(IPAddress.Parse)];
    private static readonly (L4Protocol, ushort)[] Ports = [(L4Protocol.Tcp, 80), (L4Protocol.Tcp, 443), (L4Protocol.Udp, 53)];

    /// <summary>New flows in both directions between the local pods and the peers.</summary>
    public static IEnumerable<Probe> Probes() =>
        from l in Locals from p in Peers where !l.Equals(p) from d in new[] { In, Out } from pp in Ports select new Probe(l, p, d, pp.Item1, pp.Item2);

    public static PolicyState State(Dictionary<string, uint>? ipcache = null, Dictionary<IPAddress, EndpointEntry>? endpoints = null, IEnumerable<PolicyRule>? rules = null) => new()
    {
        Ipcache = (ipcache ?? []).ToDictionary(kv => IPNetwork.Parse(kv.Key), kv => kv.Value),
        Endpoints = endpoints ?? [],
        Rules = (rules ?? []).ToHashSet(),
    };

    public static readonly Dictionary<string, uint> Cluster = new()
    {
        ["10.244.1.1/32"] = 300, ["10.244.1.2/32"] = 301, ["10.244.2.7/32"] = 300, ["10.244.0.11/32"] = 302,
        ["192.168.1.10/32"] = PolicyIdentity.Host, ["203.0.113.0/24"] = 400,
    };

    private static Dictionary<string, uint> ClusterWith(string prefix, uint identity) => new(Cluster) { [prefix] = identity };

    private static readonly PolicyIsolation Both = PolicyIsolation.Ingress | PolicyIsolation.Egress;

    public static IEnumerable<PolicyScenario> All()
    {
        yield return new("a pod becomes isolated: rules first, flag last", State(Cluster),
            State(Cluster, new() { [PodA] = new(1, 299, Both) }, [PolicyRule.SinglePort(1, 300, In, L4Protocol.Tcp, 80), PolicyRule.AllTraffic(1, PolicyIdentity.Any, Out)]), true);

        var isolated = State(Cluster, new() { [PodA] = new(1, 299, Both) },
            [PolicyRule.SinglePort(1, 300, In, L4Protocol.Tcp, 80), PolicyRule.SinglePort(1, 301, Out, L4Protocol.Udp, 53)]);
        yield return new("a pod is released: isolation goes before its rules", isolated, State(Cluster), true);
        yield return new("a pod is released for egress only", isolated,
            State(Cluster, new() { [PodA] = new(1, 299, PolicyIsolation.Ingress) }, [PolicyRule.SinglePort(1, 300, In, L4Protocol.Tcp, 80)]), true);

        // A's isolation goes while another peer joins identity 300: the stale rule for 300 goes
        // before the ipcache moves, so A must be open by then.
        yield return new("isolation is lifted before rules that other changes remove early",
            State(Cluster, new() { [PodA] = new(1, 299, PolicyIsolation.Ingress) }, [PolicyRule.AllTraffic(1, 300, In)]),
            State(ClusterWith("10.244.1.2/32", 300)), true);

        yield return new("a relabelled peer is admitted throughout (301 -> 305)",
            State(Cluster, new() { [PodA] = new(1, 299, PolicyIsolation.Ingress) }, [PolicyRule.SinglePort(1, 301, In, L4Protocol.Tcp, 80)]),
            State(ClusterWith("10.244.1.2/32", 305), new() { [PodA] = new(1, 299, PolicyIsolation.Ingress) }, [PolicyRule.SinglePort(1, 305, In, L4Protocol.Tcp, 80)]), true);

        // 10.244.1.1 leaves 300 (which A starts to admit) for 306 (which it does not): the new
        // rule for 300 must wait until the peer has left.
        yield return new("a peer leaves the identity a new rule admits",
            State(Cluster, new() { [PodA] = new(1, 299, PolicyIsolation.Ingress) }),
            State(ClusterWith("10.244.1.1/32", 306), new() { [PodA] = new(1, 299, PolicyIsolation.Ingress) }, [PolicyRule.AllTraffic(1, 300, In)]), true);

        // 10.244.1.1 is 300 (/32) before and 312 (/16) after. Deleting the /32 before the /24
        // would make it 310 for a moment: the identity A admits, though neither state admits it.
        yield return new("removed prefixes go shortest first",
            State(new() { ["10.244.1.1/32"] = 300, ["10.244.1.0/24"] = 310, ["10.244.0.0/16"] = 312 }, new() { [PodA] = new(1, 299, PolicyIsolation.Egress) }, [PolicyRule.AllTraffic(1, 310, Out)]),
            State(new() { ["10.244.0.0/16"] = 312 }, new() { [PodA] = new(1, 299, PolicyIsolation.Egress) }, [PolicyRule.AllTraffic(1, 310, Out)]), true);

        // Nested prefixes change together: every address resolves to its old or its new identity.
        yield return new("nested prefixes change together",
            State(new() { ["10.244.1.1/32"] = 300, ["10.244.1.0/24"] = 310, ["203.0.113.0/24"] = 400 }, new() { [PodA] = new(1, 299, PolicyIsolation.Egress) },
                [PolicyRule.AllTraffic(1, 300, Out), PolicyRule.AllTraffic(1, 400, Out)]),
            State(new() { ["10.244.1.0/24"] = 311, ["10.244.0.0/16"] = 312, ["203.0.113.0/24"] = 400 }, new() { [PodA] = new(1, 299, PolicyIsolation.Egress) },
                [PolicyRule.AllTraffic(1, 311, Out), PolicyRule.AllTraffic(1, 400, Out)]), false);

        yield return new("one policy goes, another arrives",
            State(Cluster, new() { [PodA] = new(1, 299, PolicyIsolation.Ingress), [PodB] = new(2, 302, PolicyIsolation.None) }, [PolicyRule.SinglePort(1, 300, In, L4Protocol.Tcp, 80)]),
            State(Cluster, new() { [PodB] = new(2, 302, Both) },
                [PolicyRule.AllPorts(2, PolicyIdentity.Any, In, L4Protocol.Tcp), .. PolicyRule.PortRange(2, 301, Out, L4Protocol.Udp, 50, 60)]), true);

        // The local pod moves to another (shared) endpoint id while a peer is relabelled: the
        // crossing (old endpoint id, new identity) must not admit for a moment.
        yield return new("a pod and a peer relabelled together",
            State(Cluster, new() { [PodA] = new(1, 299, PolicyIsolation.Ingress), [PodB] = new(2, 302, PolicyIsolation.Ingress) },
                [PolicyRule.AllTraffic(1, 301, In), PolicyRule.AllTraffic(1, 305, In), PolicyRule.AllTraffic(2, 300, In)]),
            State(ClusterWith("10.244.1.1/32", 305), new() { [PodA] = new(2, 299, PolicyIsolation.Ingress), [PodB] = new(2, 302, PolicyIsolation.Ingress) },
                [PolicyRule.AllTraffic(1, 301, In), PolicyRule.AllTraffic(1, 305, In), PolicyRule.AllTraffic(2, 300, In)]), false);
    }

    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var s in All())
            data.Add(s.Name);
        return data;
    }

    public static PolicyScenario Named(string name) => All().Single(s => s.Name == name);

    /// <summary>
    /// Checks one intermediate state against the two ends: nothing admitted that neither admits;
    /// with make-before-break, nothing denied that both admit. Returns the failures.
    /// </summary>
    public static IEnumerable<string> Violations(PolicyScenario s, Func<Probe, bool> admitsNow, string when)
    {
        foreach (var p in Probes())
        {
            bool o = PolicyModel.Admits(s.Old, p), n = PolicyModel.Admits(s.New, p), mid = admitsNow(p);
            if (mid && !o && !n)
                yield return $"{when}: {p} is admitted, though neither state admits it";
            if (s.MakeBeforeBreak && o && n && !mid)
                yield return $"{when}: {p} is denied, though both states admit it";
        }
    }
}
