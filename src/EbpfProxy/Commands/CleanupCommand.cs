using System.CommandLine;
using EbpfProxy.Datapath.Attach;

namespace EbpfProxy.Commands;

/// <summary>`ebpf-proxy cleanup`: remove ebpf-proxy's programs from this node's interfaces and its pinned maps.</summary>
internal static class CleanupCommand
{
    public static Command Create()
    {
        var bpffs = CommonOptions.BpfFs();
        var cmd = new Command("cleanup", "detach ebpf-proxy's programs from this network namespace's interfaces and remove its pinned maps (stop the daemon first)") { bpffs };
        cmd.SetAction(parse =>
        {
            var result = Cleanup.Run(Path.Combine(parse.GetValue(bpffs)!, "ebpf-proxy"));
            foreach (var d in result.DetachedFrom)
                Console.WriteLine($"detached from {d}");
            Console.WriteLine($"removed {result.Unpinned.Count} pins");
            foreach (var p in result.Problems)
                Console.Error.WriteLine($"warning: {p}");
            return result.Problems.Count == 0 ? 0 : 1;
        });
        return cmd;
    }
}
