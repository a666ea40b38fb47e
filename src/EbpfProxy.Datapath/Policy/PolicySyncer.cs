using System.Net;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Policy;
using EbpfProxy.Datapath.Maps;
using MapPolicyEndpoint = EbpfProxy.Datapath.Policy.PolicyEndpoint;

namespace EbpfProxy.Datapath.Policy;

/// <summary>
/// Feeds Core's policy computation (<see cref="DesiredPolicyState"/>) to the NetworkPolicy maps
/// through <see cref="PolicyMapWriter"/>, and reads back what a predecessor left so Core re-adopts
/// its identity numbers and endpoint ids (<see cref="ReadHints"/>).
/// </summary>
public sealed class PolicySyncer
{
    private readonly PolicyMaps _maps;
    private readonly PolicyMapWriter _writer;

    public PolicySyncer(PolicyMaps maps)
    {
        _maps = maps;
        _writer = new PolicyMapWriter(maps);
    }

    /// <summary>The identities and endpoint ids the pinned maps hold (for Core's first computation).</summary>
    public PolicyHints ReadHints()
    {
        var held = PolicyMapWriter.Read(_maps);
        return new PolicyHints(held.Ipcache, held.Endpoints.ToDictionary(kv => kv.Key, kv => kv.Value.EndpointId));
    }

    /// <summary>Brings the maps to <paramref name="desired"/> (with <paramref name="reread"/>: after reading them back, healing drift).</summary>
    public PolicyApplyResult Sync(DesiredPolicyState desired, bool reread = false) => _writer.Apply(ToMapState(desired), reread);

    /// <summary>
    /// The maps' view of Core's state: pods that no policy isolates get no pol_endpoints entry (one
    /// lookup and nothing else per packet), and only isolated endpoints' rules are written.
    /// </summary>
    public static PolicyState ToMapState(DesiredPolicyState desired)
    {
        var endpoints = new Dictionary<IPAddress, MapPolicyEndpoint>();
        var rules = new HashSet<PolicyRule>();
        foreach (var (address, ep) in desired.Endpoints)
        {
            if (ep.Flags == EndpointFlags.None)
                continue;
            endpoints[address] = new MapPolicyEndpoint(ep.Id, ep.Identity, (PolicyIsolation)(uint)ep.Flags);
            if (desired.RulesByEndpoint.TryGetValue(ep.Id, out var keys))
                foreach (var k in keys)
                    rules.Add(ToRule(k));
        }
        return new PolicyState { Ipcache = desired.IpCache, Endpoints = endpoints, Rules = rules };
    }

    internal static PolicyRule ToRule(PolicyRuleKey k) =>
        k.PrefixLength <= PolicyRuleKey.AnyProtocolPrefix
            ? new PolicyRule(k.EndpointId, k.Identity, (Maps.PolicyDirection)(byte)k.Direction, L4Protocol.Any, 0, 0)
            : new PolicyRule(k.EndpointId, k.Identity, (Maps.PolicyDirection)(byte)k.Direction, k.Protocol, k.Port, (byte)k.PortBits);

}
