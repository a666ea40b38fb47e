using System.CommandLine;
using System.Text.Json;
using EbpfProxy.Core.Planning;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Sync;

namespace EbpfProxy.Commands;

/// <summary>`ebpf-proxy lb ...`: the load-balancer maps, read from their pins (works while the daemon is stopped).</summary>
internal static class LbCommands
{
    public static Command Create()
    {
        var bpffs = CommonOptions.BpfFs();
        var output = CommonOptions.Output();
        var list = new Command("list", "list every frontend with its service, rev-NAT id, slots and backends") { bpffs, output };
        list.SetAction(parse =>
        {
            var rows = PinnedMaps.Use(parse.GetValue(bpffs)!, "lb", maps => LbStateFormatter.Rows(LbMapIo.Read(maps)));
            if (rows is null)
                return 1;
            if (parse.GetValue(output) == "json")
            {
                // Each row's fields, plus the verdict an operator checks first.
                var array = new System.Text.Json.Nodes.JsonArray();
                foreach (var r in rows)
                {
                    var node = JsonSerializer.SerializeToNode(r, JsonOptions)!.AsObject();
                    node["noUsableEndpoint"] = NoUsableEndpoint(r);
                    array.Add(node);
                }
                Console.WriteLine(array.ToJsonString(JsonOptions));
            }
            else
                Console.Write(FormatTable(rows));
            return 0;
        });
        return new Command("lb", "inspect the service load-balancing maps") { list };
    }

    /// <summary>
    /// A service frontend that can send traffic nowhere: no active and no fallback (terminating)
    /// backend, so its connections are rejected (or dropped for a Local policy). The first check
    /// an operator makes, as with `kubectl get endpoints`. The ClusterIP wildcard entries
    /// (protocol 0, REJECT for undefined ports) have no backends by design.
    /// </summary>
    internal static bool NoUsableEndpoint(LbStateFormatter.FrontendRow r) =>
        r.Count == 0 && r.TerminatingCount == 0 && !r.Flags.Contains("Wildcard", StringComparison.Ordinal);

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    internal static string FormatTable(IReadOnlyList<LbStateFormatter.FrontendRow> rows)
    {
        var table = new List<string[]> { new[] { "FRONTEND", "SERVICE", "REV-NAT", "SLOT", "BACKEND", "BACKEND-ID", "STATE" } };
        foreach (var r in rows)
        {
            var summary = $"{r.Count} active, {r.TerminatingCount} fallback" + (r.Flags != "-" ? $", {r.Flags}" : "")
                + (NoUsableEndpoint(r) ? ", NO USABLE ENDPOINT" : "");
            table.Add([r.Frontend, r.Service, r.RevNatId.ToString(), "0", summary, "", r.Scope]);
            foreach (var b in r.Backends)
                table.Add(["", "", "", b.Slot.ToString(), b.Address, b.BackendId.ToString(), (b.Terminating ? "fallback" : "active") + (b.Flags != "-" ? $" ({b.Flags})" : "")]);
            foreach (var p in r.Problems)
                table.Add(["", "", "", "", $"problem: {p}", "", ""]);
        }
        var widths = Enumerable.Range(0, table[0].Length).Select(c => table.Max(row => row[c].Length)).ToArray();
        var sb = new System.Text.StringBuilder();
        foreach (var row in table)
            sb.Append(string.Join("  ", row.Select((cell, c) => cell.PadRight(widths[c]))).TrimEnd()).Append('\n');
        if (rows.Count == 0)
            sb.Append("(no frontends)\n");
        return sb.ToString();
    }
}

/// <summary>Opens the pinned maps with errors an operator can act on.</summary>
internal static class PinnedMaps
{
    /// <summary>Whether the pinned maps exist; prints what is wrong otherwise.</summary>
    public static bool Ready(string bpffs, string command)
    {
        if (!Privileges.RequireBpf(command))
            return false;
        var pinPath = Path.Combine(bpffs, "ebpf-proxy");
        if (!LibBpf.Net.BpfFs.IsMounted(bpffs))
        {
            Console.Error.WriteLine($"error: no bpffs is mounted at {bpffs}, so no ebpf-proxy maps can be pinned there. " +
                "Is ebpf-proxy running on this node? (It mounts bpffs itself; pass --bpffs if it uses another mount.)");
            return false;
        }
        if (!Directory.Exists(pinPath) || !File.Exists(Path.Combine(pinPath, LbMaps.Services)))
        {
            Console.Error.WriteLine($"error: no ebpf-proxy maps are pinned under {pinPath}: the daemon has not run on this node, `ebpf-proxy cleanup` removed them, or this user cannot read the folder (root's, mode 0700).");
            return false;
        }
        return true;
    }

    public static T? Use<T>(string bpffs, string command, Func<LbMaps, T> read) where T : class
    {
        var pinPath = Path.Combine(bpffs, "ebpf-proxy");
        if (!Ready(bpffs, command))
            return null;
        try
        {
            using var maps = LbMaps.OpenPinned(pinPath);
            return read(maps);
        }
        catch (LibBpf.Net.BpfException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return null;
        }
    }
}
