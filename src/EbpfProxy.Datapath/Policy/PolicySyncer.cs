using System.Net;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Policy;
using EbpfProxy.Datapath.Maps;
using MapPolicyEndpoint = EbpfProxy.Datapath.Policy.PolicyEndpoint;

namespace EbpfProxy.Datapath.Policy;

/// <summary>
/// Feeds Core's policy computation (<see cref="DesiredPolicyState"/>) to the NetworkPolicy maps
/// through <see cref="PolicyMapWriter"/>, then the CLI's names (<see cref="PolicyNameWriter"/>),
/// and reads back what a predecessor left so Core re-adopts its identity numbers and endpoint ids
/// (<see cref="ReadHints"/>).
/// </summary>
public sealed class PolicySyncer
{
    private readonly PolicyMaps _maps;
    private readonly PolicyMapWriter _writer;
    private readonly PolicyNameWriter _names;

    public PolicySyncer(PolicyMaps maps)
    {
        _maps = maps;
        _writer = new PolicyMapWriter(maps);
        _names = new PolicyNameWriter(maps);
    }

    /// <summary>
    /// The identities and endpoint ids the pinned maps hold (for Core's first computation). Ids of
    /// pods no policy isolates (absent from pol_endpoints) come from pol_ep_names, so they keep
    /// their numbers too and a restart rewrites no name.
    /// </summary>
    public PolicyHints ReadHints()
    {
        var held = PolicyMapWriter.Read(_maps);
        var endpointIds = held.Endpoints.ToDictionary(kv => kv.Key, kv => kv.Value.EndpointId);
        foreach (var (address, name) in PolicyNameWriter.ReadEndpointNames(_maps))
            endpointIds.TryAdd(address, name.EndpointId);
        return new PolicyHints(held.Ipcache, endpointIds);
    }

    /// <summary>
    /// Brings the maps to <paramref name="desired"/> (with <paramref name="reread"/>: after reading
    /// them back, healing drift). When the kernel refuses a write (a map full, most likely), the
    /// pass fails closed before the error goes up: see <see cref="FailClosed"/>. After a good pass
    /// the CLI's names are brought up to date (<see cref="Names"/>); their failure is reported
    /// there and never fails the pass, since the datapath does not read them.
    /// </summary>
    public PolicyApplyResult Sync(DesiredPolicyState desired, bool reread = false)
    {
        var state = ToMapState(desired);
        PolicyApplyResult result;
        try
        {
            result = _writer.Apply(state, reread);
            FailedClosed = 0;
        }
        catch (LibBpf.Net.BpfException)
        {
            FailedClosed = FailClosed(state);
            throw;
        }
        try
        {
            Names = _names.Apply(desired, reread);
        }
        catch (LibBpf.Net.BpfException ex)
        {
            Names = new PolicyNamesResult(0, 0, ex.Message);
        }
        return result;
    }

    /// <summary>What the last good pass wrote to pol_ep_names and pol_id_names, or why it could not.</summary>
    public PolicyNamesResult Names { get; private set; } = PolicyNamesResult.None;

    /// <summary>Endpoints whose isolation the last failed pass forced on (0 after a good pass).</summary>
    public int FailedClosed { get; private set; }

    /// <summary>
    /// After a failed pass the maps hold part of the new rules. Every endpoint the desired state
    /// isolates gets its isolation written now (added to what it had, never removed), so a
    /// direction whose allow entries are missing denies instead of admitting everything; what was
    /// written still admits. The next pass (retried with backoff) completes or fails again.
    /// </summary>
    private int FailClosed(PolicyState state)
    {
        int forced = 0;
        foreach (var (address, ep) in state.Endpoints)
        {
            var key = Be32Address.FromAddress(address);
            var isolation = ep.Isolation;
            if (_maps.Endpoints.TryLookup(key, out var held))
            {
                if ((held.Flags & isolation) == isolation)
                    continue;
                isolation |= held.Flags;
            }
            try
            {
                _maps.Endpoints.Update(key, new PolEndpoint { EndpointId = ep.EndpointId, Identity = ep.Identity, Flags = isolation });
                forced++;
            }
            catch (LibBpf.Net.BpfException)
            {
                // The endpoint map itself is full: nothing more can be done here; the error goes up.
            }
        }
        return forced;
    }

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
