using System.CommandLine;
using System.Text.Json;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Policy;

namespace EbpfProxy.Commands;

/// <summary>
/// `ebpf-proxy policy get POD` and `ebpf-proxy ipcache list`: the NetworkPolicy maps joined with
/// their names, read from the pins (work while the daemon is stopped).
/// </summary>
internal static class PolicyCommands
{
    public static Command CreatePolicy()
    {
        var bpffs = CommonOptions.BpfFs();
        var output = CommonOptions.Output();
        var pod = new Argument<string>("POD") { Description = "a pod of this node: namespace/name or one of its IPv4 addresses" };
        var get = new Command("get", "show a local pod's identity, isolation and what its policy admits in each direction") { pod, bpffs, output };
        get.SetAction(parse =>
        {
            var view = Read(parse.GetValue(bpffs)!, rules: true);
            if (view is null)
                return 1;
            PodPolicy report;
            try
            {
                report = PolicyInspector.DescribePod(view, parse.GetValue(pod)!);
            }
            catch (PolicyLookupException ex)
            {
                Console.Error.WriteLine($"error: {ex.Message}");
                return 1;
            }
            Console.Write(parse.GetValue(output) == "json" ? JsonSerializer.Serialize(report, JsonOptions) + "\n" : PolicyInspector.Format(report));
            return 0;
        });
        return new Command("policy", "inspect the NetworkPolicy maps") { get };
    }

    public static Command CreateIpcache()
    {
        var bpffs = CommonOptions.BpfFs();
        var output = CommonOptions.Output();
        var list = new Command("list", "list every ipcache prefix with its identity and what the identity stands for") { bpffs, output };
        list.SetAction(parse =>
        {
            var view = Read(parse.GetValue(bpffs)!, rules: false);
            if (view is null)
                return 1;
            var rows = PolicyInspector.Ipcache(view);
            Console.Write(parse.GetValue(output) == "json" ? JsonSerializer.Serialize(rows, JsonOptions) + "\n" : PolicyInspector.Format(rows));
            return 0;
        });
        return new Command("ipcache", "inspect the NetworkPolicy ipcache (address prefix -> identity)") { list };
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    private static PolicyMapsView? Read(string bpffs, bool rules)
    {
        if (!PinnedMaps.Ready(bpffs, rules ? "policy" : "ipcache"))
            return null;
        var pinPath = Path.Combine(bpffs, "ebpf-proxy");
        foreach (var name in new[] { PolicyMaps.IpcacheMap, PolicyMaps.EndpointNamesMap, PolicyMaps.IdentityNamesMap })
        {
            if (!File.Exists(Path.Combine(pinPath, name)))
            {
                Console.Error.WriteLine($"error: {name} is not pinned under {pinPath}: the daemon that pinned these maps predates NetworkPolicy " +
                    (name == PolicyMaps.IpcacheMap ? "support" : "names for the CLI") + "; restart it with this version");
                return null;
            }
        }
        try
        {
            using var maps = PolicyMaps.OpenPinned(pinPath);
            return PolicyMapsView.Read(maps, rules);
        }
        catch (LibBpf.Net.BpfException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return null;
        }
    }
}
