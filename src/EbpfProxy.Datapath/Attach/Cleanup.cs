using EbpfProxy.Datapath.Loading;
using LibBpf.Net;

namespace EbpfProxy.Datapath.Attach;

/// <summary>What `ebpf-proxy cleanup` removed.</summary>
public sealed record CleanupResult(IReadOnlyList<string> DetachedFrom, IReadOnlyList<string> Unpinned, IReadOnlyList<string> Problems);

/// <summary>
/// Removes exactly what ebpf-proxy created and nothing else: its tc filters (its handle and
/// priority, and only when the attached program is one of its own by name) on the interfaces of
/// the calling thread's network namespace, and its pins. clsact qdiscs are left in place: other
/// tools may have filters on them (libbpf-bootstrap's rule: tear down only what you created).
/// Conntrack goes with the maps, so established service connections stop being translated.
/// </summary>
public static class Cleanup
{
    private static readonly HashSet<string> OurPrograms = [.. ProgramNames.All];

    public static CleanupResult Run(string pinPath)
    {
        var detached = new List<string>();
        var unpinned = new List<string>();
        var problems = new List<string>();

        foreach (var itf in InterfaceAttacher.ListInterfaces())
        {
            foreach (var point in new[] { TcAttachPoint.Ingress, TcAttachPoint.Egress })
            {
                try
                {
                    if (TcHook.Query(itf.IfIndex, point, InterfaceAttacher.TcHandle, InterfaceAttacher.TcPriority) is not { } filter)
                        continue;
                    using var prog = BpfProgram.FromId(filter.ProgramId);
                    var name = prog.GetInfo().Name;
                    if (!OurPrograms.Contains(name))
                    {
                        problems.Add($"{itf.Name} {point}: the filter at ebpf-proxy's handle runs '{name}', not ours; left in place");
                        continue;
                    }
                    if (TcHook.Detach(itf.IfIndex, point, InterfaceAttacher.TcHandle, InterfaceAttacher.TcPriority))
                        detached.Add($"{itf.Name} {point.ToString().ToLowerInvariant()} ({name})");
                }
                catch (BpfException ex)
                {
                    problems.Add($"{itf.Name} {point}: {ex.Message}");
                }
            }
        }

        if (Directory.Exists(pinPath))
        {
            // Pins are files on bpffs: unlinking drops the reference; the kernel frees a map or
            // program when nothing else holds it.
            foreach (var file in Directory.EnumerateFiles(pinPath, "*", SearchOption.AllDirectories).ToList())
            {
                try
                {
                    File.Delete(file);
                    unpinned.Add(Path.GetRelativePath(pinPath, file));
                }
                catch (IOException ex)
                {
                    problems.Add($"{file}: {ex.Message}");
                }
            }
            foreach (var dir in Directory.EnumerateDirectories(pinPath, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length).Append(pinPath))
            {
                try
                {
                    Directory.Delete(dir);
                }
                catch (IOException ex)
                {
                    problems.Add($"{dir}: {ex.Message}");
                }
            }
        }
        return new CleanupResult(detached, unpinned, problems);
    }
}
