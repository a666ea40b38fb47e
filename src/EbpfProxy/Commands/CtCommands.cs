using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Observability;

namespace EbpfProxy.Commands;

/// <summary>
/// `ebpf-proxy ct list`: the connection-tracking tables (service ct4, masquerade snat4, policy
/// pol_ct4) read from their pins, so it works while the daemon is stopped. Like
/// `cilium-dbg bpf ct list global`, each entry with what the datapath rewrites for it, joined to
/// the service's name.
/// </summary>
internal static class CtCommands
{
    public static Command Create()
    {
        var bpffs = CommonOptions.BpfFs();
        var output = CommonOptions.Output();
        var address = new Option<string?>("--address") { Description = "only entries naming this address (either end, or the translation)" };
        var port = new Option<int?>("--port") { Description = "only entries naming this port" };
        var service = new Option<string?>("--service") { Description = "only entries of this service: NAMESPACE/NAME or NAMESPACE/NAME:PORT" };
        var table = new Option<string?>("--table") { Description = "only one table: service, masquerade or policy" };
        table.AcceptOnlyFromAmong("service", "masquerade", "policy");
        var list = new Command("list", "list conntrack entries: tuple, translation, service, state and age") { bpffs, output, address, port, service, table };
        list.SetAction(parse =>
        {
            IPAddress? addr = null;
            if (parse.GetValue(address) is { } text && !IPAddress.TryParse(text, out addr))
            {
                Console.Error.WriteLine($"error: --address '{text}' is not an IP address");
                return 1;
            }
            if (parse.GetValue(port) is { } p && p is < 1 or > 65535)
            {
                Console.Error.WriteLine($"error: --port {p} is not a port (1-65535)");
                return 1;
            }
            if (parse.GetValue(service) is { } s && (s.Split('/') is not [{ Length: > 0 }, { Length: > 0 }]))
            {
                Console.Error.WriteLine($"error: --service '{s}' is not NAMESPACE/NAME");
                return 1;
            }
            var filter = new ConntrackFilter(addr, (ushort?)parse.GetValue(port), parse.GetValue(service), parse.GetValue(table));
            var bpffsPath = parse.GetValue(bpffs)!;
            var rows = PinnedMaps.Use(bpffsPath, "ct", maps =>
            {
                var pinPath = Path.Combine(bpffsPath, "ebpf-proxy");
                using var policy = File.Exists(Path.Combine(pinPath, PolicyMaps.ConntrackMap)) ? PolicyMaps.OpenPinned(pinPath) : null;
                return ConntrackListing.Read(maps, policy, filter);
            });
            if (rows is null)
                return 1;
            Console.Write(parse.GetValue(output) == "json" ? JsonSerializer.Serialize(rows, JsonOptions) + "\n" : Format(rows));
            return 0;
        });
        return new Command("ct", "inspect the connection-tracking maps") { list };
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    internal static string Format(IReadOnlyList<ConntrackRow> rows)
    {
        var table = new List<string[]> { new[] { "TABLE", "KIND", "PROTO", "SOURCE", "DESTINATION", "TRANSLATION", "SERVICE/POD", "STATE", "AGE", "IDLE" } };
        foreach (var r in rows.OrderBy(r => r.Table, StringComparer.Ordinal).ThenBy(r => r.Source, StringComparer.Ordinal).ThenBy(r => r.Kind, StringComparer.Ordinal))
        {
            table.Add([r.Table, r.Kind, r.Protocol, r.Source, r.Destination, r.Translation ?? "-", r.Service ?? r.Pod ?? "-", r.State,
                Duration(r.AgeSeconds), Duration(r.IdleSeconds)]);
        }
        var widths = Enumerable.Range(0, table[0].Length).Select(c => table.Max(row => row[c].Length)).ToArray();
        var sb = new StringBuilder();
        foreach (var row in table)
            sb.Append(string.Join("  ", row.Select((cell, c) => cell.PadRight(widths[c]))).TrimEnd()).Append('\n');
        sb.Append(CultureInfo.InvariantCulture, $"({rows.Count} entries)\n");
        return sb.ToString();
    }

    private static string Duration(double seconds) => seconds switch
    {
        < 60 => $"{seconds:0}s",
        < 3600 => $"{Math.Floor(seconds / 60):0}m{seconds % 60:00}s",
        _ => $"{Math.Floor(seconds / 3600):0}h{Math.Floor(seconds % 3600 / 60):00}m",
    };
}
