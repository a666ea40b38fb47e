using EbpfProxy.Datapath.Sync;
using EbpfProxy.Core.Policy;
using System.Net;
using EbpfProxy.Core.Model;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Policy;

namespace EbpfProxy.Datapath.Tests;

/// <summary>A new flow between a local pod and a peer, judged on the local pod's side.</summary>
public readonly record struct Probe(IPAddress Local, IPAddress Peer, PolicyDirection Direction, L4Protocol Protocol, ushort Port)
{
    public override string ToString() => $"{Direction} {Local} {(Direction == PolicyDirection.Ingress ? "<-" : "->")} {Peer} {Protocol}/{Port}";
}

/// <summary>
/// What the datapath decides for a new flow under a policy state, written from docs/policy.md
/// rather than from bpf/lib/policy.h, and the state after each write of a plan.
/// </summary>
public static class PolicyModel
{
    public static bool Admits(PolicyState s, Probe p)
    {
        if (!s.Endpoints.TryGetValue(p.Local, out var ep))
            return true;
        var isolated = p.Direction == PolicyDirection.Ingress ? PolicyIsolation.Ingress : PolicyIsolation.Egress;
        if ((ep.Isolation & isolated) == 0)
            return true;
        var identity = PolicyPlanner.LongestMatch(s.Ipcache, new IPNetwork(p.Peer, 32));
        if (p.Direction == PolicyDirection.Ingress && identity == PolicyIdentity.Host)
            return true;
        return s.Rules.Any(r => r.EndpointId == ep.EndpointId && r.Direction == p.Direction
            && (r.RemoteIdentity == identity || r.RemoteIdentity == PolicyIdentity.Any) && r.Covers(p.Protocol, p.Port));
    }

    /// <summary>The state the maps hold after each write of <paramref name="ops"/>, starting from <paramref name="start"/>.</summary>
    public static IEnumerable<PolicyState> Steps(PolicyState start, IEnumerable<PolicyOp> ops)
    {
        var ipcache = new Dictionary<IPNetwork, uint>(start.Ipcache);
        var endpoints = new Dictionary<IPAddress, EndpointEntry>(start.Endpoints);
        var rules = new HashSet<PolicyRule>(start.Rules);
        foreach (var op in ops)
        {
            Apply(op, ipcache, endpoints, rules);
            yield return new PolicyState { Ipcache = new Dictionary<IPNetwork, uint>(ipcache), Endpoints = new Dictionary<IPAddress, EndpointEntry>(endpoints), Rules = new HashSet<PolicyRule>(rules) };
        }
    }

    private static void Apply(PolicyOp op, Dictionary<IPNetwork, uint> ipcache, Dictionary<IPAddress, EndpointEntry> endpoints, HashSet<PolicyRule> rules)
    {
        switch (op)
        {
            case PolicyOp.UpsertIpcache u: ipcache[u.Prefix] = u.Identity; break;
            case PolicyOp.DeleteIpcache d: ipcache.Remove(d.Prefix); break;
            case PolicyOp.UpsertEndpoint u: endpoints[u.Address] = u.Endpoint; break;
            case PolicyOp.DeleteEndpoint d: endpoints.Remove(d.Address); break;
            case PolicyOp.UpsertRule u: rules.Add(u.Rule); break;
            case PolicyOp.DeleteRule d: rules.Remove(d.Rule); break;
            default: throw new ArgumentOutOfRangeException(nameof(op));
        }
    }
}
