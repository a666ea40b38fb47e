using System.CommandLine;
using System.Globalization;
using EbpfProxy.Datapath.Maps;

namespace EbpfProxy.Commands;

/// <summary>`ebpf-proxy maps`: how full each pinned map is (map pressure), read from the pins.</summary>
internal static class MapsCommand
{
    public static Command Create()
    {
        var bpffs = CommonOptions.BpfFs();
        var cmd = new Command("maps", "show each pinned map's entries against its size (LRU maps evict their oldest entries when full)") { bpffs };
        cmd.SetAction(parse =>
        {
            var pinPath = Path.Combine(parse.GetValue(bpffs)!, "ebpf-proxy");
            if (!Directory.Exists(pinPath))
            {
                Console.Error.WriteLine($"no maps pinned at {pinPath} (is the daemon running, with this --bpffs?)");
                return 1;
            }
            Console.WriteLine($"{"MAP",-18} {"TYPE",-14} {"ENTRIES",10} {"MAX",10} {"USE",6}  FULL");
            foreach (var m in MapPressure.Read(pinPath))
            {
                var entries = m.Entries?.ToString(CultureInfo.InvariantCulture) ?? "-";
                var use = m.Use is { } u ? u.ToString("P0", CultureInfo.InvariantCulture) : "-";
                var full = m.Entries is null ? "-" : m.Evicts ? "evicts oldest" : "refuses writes";
                Console.WriteLine($"{m.Name,-18} {m.Type,-14} {entries,10} {m.MaxEntries,10} {use,6}  {full}");
            }
            return 0;
        });
        return cmd;
    }
}
