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
            var rows = PinnedMaps.Use(parse.GetValue(bpffs)!, maps => LbStateFormatter.Rows(LbMapIo.Read(maps)));
            if (rows is null)
                return 1;
            if (parse.GetValue(output) == "json")
                Console.WriteLine(JsonSerializer.Serialize(rows, JsonOptions));
            else
                Console.Write(FormatTable(rows));
            return 0;
        });
        return new Command("lb", "inspect the service load-balancing maps") { list };
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    internal static string FormatTable(IReadOnlyList<LbStateFormatter.FrontendRow> rows)
    {
        var table = new List<string[]> { new[] { "FRONTEND", "SERVICE", "REV-NAT", "SLOT", "BACKEND", "BACKEND-ID", "STATE" } };
        foreach (var r in rows)
        {
            var summary = $"{r.Count} active, {r.TerminatingCount} fallback" + (r.Flags != "-" ? $", {r.Flags}" : "");
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
            Console.Error.WriteLine($"error: no ebpf-proxy maps are pinned under {pinPath}: the daemon has not run on this node, or `ebpf-proxy cleanup` removed them.");
            return false;
        }
        return true;
    }

    public static T? Use<T>(string bpffs, Func<LbMaps, T> read) where T : class
    {
        var pinPath = Path.Combine(bpffs, "ebpf-proxy");
        if (!Ready(bpffs, "lb"))
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
