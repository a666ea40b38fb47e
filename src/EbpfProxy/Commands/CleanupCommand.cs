using System.CommandLine;
using EbpfProxy.Datapath.Attach;
using EbpfProxy.Datapath.Loading;

namespace EbpfProxy.Commands;

/// <summary>
/// `ebpf-proxy cleanup`: remove ebpf-proxy's programs from this node's interfaces and its pinned
/// maps. Refuses while a daemon holds the pin folder's lock (issue 14 item 6), unless --force;
/// removes only the pin names that the datapath object defines, never another tool's pins.
/// </summary>
internal static class CleanupCommand
{
    public static Command Create()
    {
        var bpffs = CommonOptions.BpfFs();
        var bpfDir = new Option<string>("--bpf-dir") { Description = "folder holding pod.bpf.o, whose map and program names are the pins removed", DefaultValueFactory = _ => AppContext.BaseDirectory };
        var force = new Option<bool>("--force") { Description = "clean up even while a daemon is running on these pins (its service traffic stops)" };
        var cmd = new Command("cleanup", "detach ebpf-proxy's programs from this network namespace's interfaces and remove its pinned maps (refused while the daemon runs, unless --force)")
        {
            bpffs, bpfDir, force,
        };
        cmd.SetAction(parse =>
        {
            if (!Privileges.RequireAdmin("cleanup"))
                return 1;
            var pinPath = Path.Combine(parse.GetValue(bpffs)!, "ebpf-proxy");
            var objectPath = Path.Combine(parse.GetValue(bpfDir)!, ProgramNames.PodObject);
            if (!File.Exists(objectPath))
            {
                Console.Error.WriteLine($"error: {objectPath} not found (pass --bpf-dir): cleanup removes only the pins that object names, so it needs it");
                return 1;
            }

            // Held for the whole cleanup, so no daemon starts on these pins meanwhile.
            using var held = Directory.Exists(pinPath) ? PinFolderLock.TryAcquire(pinPath) : null;
            if (Directory.Exists(pinPath) && held is null)
            {
                if (!parse.GetValue(force))
                {
                    Console.Error.WriteLine($"error: an ebpf-proxy daemon is running with the pins in {pinPath} (it holds the folder's lock). " +
                        "Stop it first; `cleanup --force` removes them anyway and stops its service traffic.");
                    return 1;
                }
                Console.Error.WriteLine($"warning: a daemon holds {pinPath}; --force: cleaning up anyway");
            }

            var result = Cleanup.Run(pinPath, Cleanup.PinNamesOf(objectPath));
            foreach (var d in result.DetachedFrom)
                Console.WriteLine($"detached from {d}");
            Console.WriteLine($"removed {result.Unpinned.Count} pins");
            var foreign = Cleanup.Remaining(pinPath);
            if (foreign.Count > 0)
                Console.WriteLine($"left {foreign.Count} pins that ebpf-proxy did not create: {string.Join(", ", foreign)}");
            foreach (var p in result.Problems)
                Console.Error.WriteLine($"warning: {p}");
            return result.Problems.Count == 0 ? 0 : 1;
        });
        return cmd;
    }
}
