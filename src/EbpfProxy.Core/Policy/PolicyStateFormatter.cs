using System.Text;
using EbpfProxy.Core.Planning;

namespace EbpfProxy.Core.Policy;

/// <summary>
/// A desired policy state as sorted text: identities, ipcache, endpoints, rules per endpoint,
/// errors. What the policy golden files hold, and the shape `policy get` can print.
/// </summary>
public static class PolicyStateFormatter
{
    public static string ToText(DesiredPolicyState state)
    {
        var sb = new StringBuilder();
        sb.Append("identities:\n");
        foreach (var (id, key) in state.Identities.OrderBy(kv => kv.Key))
            sb.Append($"  {id} {key}\n");

        sb.Append("ipcache:\n");
        foreach (var (prefix, id) in state.IpCache.OrderBy(kv => AddressOrder.Key(kv.Key.BaseAddress)).ThenBy(kv => kv.Key.PrefixLength))
            sb.Append($"  {prefix} {IdentityName(id)}\n");

        sb.Append("endpoints:\n");
        var podOf = new Dictionary<uint, string>();
        foreach (var (address, ep) in state.Endpoints.OrderBy(kv => AddressOrder.Key(kv.Key)))
        {
            podOf[ep.Id] = $"{ep.Namespace}/{ep.Name}";
            sb.Append($"  {address} ep={ep.Id} identity={ep.Identity} pod={ep.Namespace}/{ep.Name} isolated={Isolation(ep.Flags)}\n");
        }

        sb.Append("rules:\n");
        uint? current = null;
        foreach (var rule in state.AllRules.Order())
        {
            if (rule.EndpointId != current)
            {
                current = rule.EndpointId;
                sb.Append($"  ep {rule.EndpointId} ({podOf.GetValueOrDefault(rule.EndpointId, "?")}):\n");
            }
            sb.Append($"    {rule}\n");
        }

        foreach (var e in state.Errors)
            sb.Append($"error: {e}\n");
        return sb.ToString();
    }

    /// <summary>"host", "world", "any" or the number.</summary>
    public static string IdentityName(uint identity) => ReservedIdentity.NameOf(identity) ?? identity.ToString();

    /// <summary>"ingress,egress", "ingress", "egress" or "-".</summary>
    public static string Isolation(EndpointFlags flags) => flags switch
    {
        EndpointFlags.IngressIsolated | EndpointFlags.EgressIsolated => "ingress,egress",
        EndpointFlags.IngressIsolated => "ingress",
        EndpointFlags.EgressIsolated => "egress",
        _ => "-",
    };
}
