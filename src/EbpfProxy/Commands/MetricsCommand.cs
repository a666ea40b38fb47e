using System.CommandLine;
using System.Text;
using System.Text.Json;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Observability;
using LibBpf.Net;

namespace EbpfProxy.Commands;

/// <summary>
/// `ebpf-proxy metrics`: the kernel's raw per-reason counters (packets and bytes by reason and
/// direction, summed over the CPUs), read from the pinned `metrics` map: works while the daemon is
/// stopped. The same numbers as /metrics' ebpfproxy_drops_total and ebpfproxy_forwarded_packets_total.
/// </summary>
internal static class MetricsCommand
{
    public static Command Create()
    {
        var bpffs = CommonOptions.BpfFs();
        var output = CommonOptions.Output();
        var all = new Option<bool>("--all") { Description = "also reasons that counted nothing" };
        var cmd = new Command("metrics", "the datapath's packet counters by reason and direction (from the pinned maps)") { bpffs, output, all };
        cmd.SetAction(parse =>
        {
            var rows = PinnedMaps.Use(parse.GetValue(bpffs)!, "metrics", maps => KernelCounters.Read(maps.Metrics));
            if (rows is null)
                return 1;
            if (parse.GetValue(output) == "json")
                Console.WriteLine(JsonSerializer.Serialize(rows, JsonOptions));
            else
                Console.Write(Format(parse.GetValue(all) ? rows : [.. rows.Where(r => r.Packets > 0)]));
            return 0;
        });
        return cmd;
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    internal static string Format(IReadOnlyList<ReasonCount> rows)
    {
        var table = new List<string[]> { new[] { "REASON", "DIRECTION", "VERDICT", "PACKETS", "BYTES" } };
        foreach (var r in rows)
            table.Add([r.Reason, r.Direction, r.Drop ? "dropped" : "forwarded", r.Packets.ToString(), r.Bytes.ToString()]);
        var widths = Enumerable.Range(0, table[0].Length).Select(c => table.Max(row => row[c].Length)).ToArray();
        var sb = new StringBuilder();
        foreach (var row in table)
            sb.Append(string.Join("  ", row.Select((cell, c) => cell.PadRight(widths[c]))).TrimEnd()).Append('\n');
        if (rows.Count == 0)
            sb.Append("(nothing counted yet; --all lists every reason)\n");
        return sb.ToString();
    }
}
