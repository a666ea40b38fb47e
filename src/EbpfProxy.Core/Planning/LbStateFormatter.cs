using System.Text;
using EbpfProxy.Core.Model;

namespace EbpfProxy.Core.Planning;

/// <summary>
/// Joins service entries, slots, backends and names into rows: what `ebpf-proxy lb list` prints
/// and what the translation golden files hold.
/// </summary>
public static class LbStateFormatter
{
    public sealed record BackendRow(ushort Slot, uint BackendId, string Address, string Flags, bool Terminating);

    public sealed record FrontendRow(
        string Frontend, string Scope, string Service, ushort RevNatId, ushort Count, ushort TerminatingCount,
        string Flags, uint AffinityTimeoutSeconds, IReadOnlyList<BackendRow> Backends, IReadOnlyList<string> Problems);

    public static IReadOnlyList<FrontendRow> Rows(LbState state)
    {
        var rows = new List<FrontendRow>();
        foreach (var (key, fe) in state.Frontends.OrderBy(kv => AddressOrder.Key(kv.Key.Frontend.Address))
                     .ThenBy(kv => kv.Key.Frontend.Port).ThenBy(kv => kv.Key.Frontend.Protocol).ThenBy(kv => kv.Key.Scope))
        {
            var problems = new List<string>();
            var svc = fe.Service;
            if (svc is null)
                problems.Add("slots without a service entry (slot 0)");
            string name = svc is { } s && state.Names.TryGetValue(s.RevNatId, out var n) ? n : "?";
            if (svc is { } s2 && !state.RevNat.ContainsKey(s2.RevNatId))
                problems.Add($"rev-NAT id {s2.RevNatId} missing");
            var backends = new List<BackendRow>();
            int count = svc?.Count ?? 0;
            foreach (var (slot, id) in fe.Slots.OrderBy(kv => kv.Key))
            {
                string addr;
                string flags;
                if (state.Backends.TryGetValue(id, out var be))
                {
                    addr = $"{be.Address}/{be.Address.Protocol.ToString().ToUpperInvariant()}";
                    flags = be.Flags == BackendFlags.None ? "-" : be.Flags.ToString().Replace(", ", ",", StringComparison.Ordinal).ToLowerInvariant();
                }
                else
                {
                    addr = "?";
                    flags = "-";
                    problems.Add($"slot {slot} names missing backend {id}");
                }
                if (svc is { } s3 && slot > s3.Count + s3.TerminatingCount)
                    problems.Add($"slot {slot} beyond the published count");
                backends.Add(new BackendRow(slot, id, addr, flags, slot > count));
            }
            rows.Add(new FrontendRow(
                key.Frontend.ToString(), key.Scope.ToString().ToLowerInvariant(), name, svc?.RevNatId ?? 0,
                svc?.Count ?? 0, svc?.TerminatingCount ?? 0,
                svc is { Flags: not ServiceFlags.None } s4 ? s4.Flags.ToString().Replace(", ", ",", StringComparison.Ordinal) : "-",
                svc?.AffinityTimeoutSeconds ?? 0, backends, problems));
        }
        return rows;
    }

    /// <summary>Plain text, one frontend per block; stable for golden files.</summary>
    public static string ToText(LbState state)
    {
        var sb = new StringBuilder();
        foreach (var r in Rows(state))
        {
            sb.Append($"{r.Frontend} {r.Scope} service={r.Service} rev-nat={r.RevNatId} active={r.Count} terminating={r.TerminatingCount} flags={r.Flags}");
            if (r.AffinityTimeoutSeconds != 0)
                sb.Append($" affinity={r.AffinityTimeoutSeconds}s");
            sb.Append('\n');
            foreach (var b in r.Backends)
                sb.Append($"  slot {b.Slot}: backend {b.BackendId} {b.Address} {b.Flags}{(b.Terminating ? " (fallback)" : "")}\n");
            foreach (var p in r.Problems)
                sb.Append($"  problem: {p}\n");
        }
        return sb.ToString();
    }
}
