using System.Text;

namespace EbpfProxy.Datapath.Tracing;

/// <summary>
/// The operator's text for a <see cref="TraceResult"/>: what the hook matched and chose, each layer
/// the packet went through in order, the verdict of the whole path and the layer that decided.
/// </summary>
public static class TraceText
{
    /// <summary>The text `ebpf-proxy trace` prints.</summary>
    public static string Format(TraceResult r)
    {
        var q = r.Request;
        var sb = new StringBuilder();
        sb.Append($"packet    {q.Source}:{q.SourcePort} -> {q.Destination}:{q.DestinationPort} {q.Protocol.ToString().ToUpperInvariant()} ({HookText(q.Hook)})\n");
        sb.Append(r.Frontend is null ? "frontend  none\n" : $"frontend  {r.Frontend}  service {r.Service ?? "?"}  rev-NAT {r.RevNatId}\n");
        if (r.EligibleBackends.Count > 0)
        {
            var active = r.EligibleBackends.Where(b => !b.Fallback).ToList();
            var fallback = r.EligibleBackends.Where(b => b.Fallback).ToList();
            sb.Append($"backends  {active.Count} active: {string.Join(", ", active.Select(b => b.Address))}\n");
            if (fallback.Count > 0)
                sb.Append($"          {fallback.Count} fallback (used only with no active one): {string.Join(", ", fallback.Select(b => b.Address))}\n");
        }
        if (r.ChosenBackend is { } c)
            sb.Append($"chosen    {c.Address} (backend {c.Id})\n");
        sb.Append($"nat       {r.Nat ?? "none"}\n");
        if (r.Policy is { } policy)
            sb.Append($"policy    endpoint {policy.EndpointId}, remote identity {policy.RemoteIdentity}: {policy.Verdict}\n");
        if (r.DeliveredTo is { } pod)
            sb.Append($"delivered to the local pod {pod}: traced on through its to_pod\n");
        // Each layer in order, and the one that decided: "which layer dropped my packet?"
        for (int i = 0; i < r.Layers.Count; i++)
            sb.Append($"{(i == 0 ? "layers" : ""),-10}{i + 1}. {r.Layers[i].Name} ({r.Layers[i].Hook}): {r.Layers[i].Outcome}\n");
        sb.Append($"verdict   {r.FinalVerdict} ({r.FinalReason})\n");
        sb.Append(r.DecidedBy is { } decided ? $"decided   by the {decided.Name} ({decided.Hook})\n" : "decided   no layer stopped it\n");
        foreach (var n in r.Notes)
            sb.Append($"note      {n}\n");
        if (r.Delivery is { } d)
        {
            foreach (var n in d.Notes)
                sb.Append($"note      at {r.DeliveredTo}: {n}\n");
        }
        return sb.ToString();
    }

    private static string HookText(TraceHook hook) => hook switch
    {
        TraceHook.FromPod => "sent by a pod: from_pod",
        TraceHook.ToPod => "delivered to a pod: to_pod",
        TraceHook.FromNetdev => "arriving on a node device: from_netdev",
        _ => "leaving on a node device: to_netdev",
    };
}
