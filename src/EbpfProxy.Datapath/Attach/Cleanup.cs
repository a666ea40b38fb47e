using EbpfProxy.Datapath.Loading;
using LibBpf.Net;

namespace EbpfProxy.Datapath.Attach;

/// <summary>What `ebpf-proxy cleanup` removed.</summary>
public sealed record CleanupResult(IReadOnlyList<string> DetachedFrom, IReadOnlyList<string> Unpinned, IReadOnlyList<string> Problems)
{
    /// <summary>Pins under the folder that ebpf-proxy did not create, left in place.</summary>
    public IReadOnlyList<string> LeftForeign { get; init; } = [];
}

/// <summary>The pin names ebpf-proxy creates: its maps at the top of the pin folder, its programs under progs/, its cgroup links under links/.</summary>
public sealed record PinNames(IReadOnlySet<string> Maps, IReadOnlySet<string> Programs, IReadOnlySet<string> Links);

/// <summary>
/// Removes exactly what ebpf-proxy created and nothing else: its tc filters (its handle and
/// priority, and only when the attached program is one of its own by name) on the interfaces of
/// the calling thread's network namespace, its pinned tcx links, and its pins. clsact qdiscs are left in place: other
/// tools may have filters on them (libbpf-bootstrap's rule: tear down only what you created).
/// Conntrack goes with the maps, so established service connections stop being translated.
/// </summary>
public static class Cleanup
{
    private static readonly HashSet<string> OurPrograms = [.. ProgramNames.All];

    /// <summary>
    /// Detaches ebpf-proxy's tc filters here and removes, under <paramref name="pinPath"/>, only
    /// the pins named in <paramref name="pinNames"/> (<see cref="PinNamesOf"/>): another tool's
    /// pin in the same folder stays, and so does the folder then.
    /// </summary>
    public static CleanupResult Run(string pinPath, PinNames pinNames)
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
            UnpinTcx(pinPath, detached, problems);
            Unpin(pinPath, pinNames, unpinned, problems);
        }
        return new CleanupResult(detached, unpinned, problems);
    }

    /// <summary>
    /// Removes the pinned tcx links (PIN/tcx/IFNAME/{ingress,egress}): with its last reference
    /// gone the kernel detaches a link. Only pins whose link runs one of our programs go.
    /// </summary>
    private static void UnpinTcx(string pinPath, List<string> detached, List<string> problems)
    {
        var root = Path.Combine(pinPath, InterfaceAttacher.TcxFolder);
        if (!Directory.Exists(root))
            return;
        foreach (var dir in Directory.EnumerateDirectories(root))
        {
            foreach (var pin in Directory.EnumerateFiles(dir))
            {
                try
                {
                    string name;
                    bool live;
                    using (var link = BpfLink.OpenPinned(pin))
                    {
                        var info = link.GetInfo();
                        using var prog = BpfProgram.FromId(info.ProgramId);
                        name = prog.GetInfo().Name;
                        live = info.TcxIfindex != 0;
                    }
                    if (!OurPrograms.Contains(name))
                    {
                        problems.Add($"{pin}: the link runs '{name}', not ours; left in place");
                        continue;
                    }
                    File.Delete(pin);
                    if (live)
                        detached.Add($"{Path.GetFileName(dir)} {Path.GetFileName(pin)} ({name}, tcx)");
                }
                catch (Exception ex) when (ex is BpfException or IOException or UnauthorizedAccessException)
                {
                    problems.Add($"{pin}: {ex.Message}");
                }
            }
            if (!Directory.EnumerateFileSystemEntries(dir).Any())
                Directory.Delete(dir);
        }
        if (!Directory.EnumerateFileSystemEntries(root).Any())
            Directory.Delete(root);
    }

    /// <summary>The pin names that the datapath object defines (opened, not loaded: no privilege needed).</summary>
    public static PinNames PinNamesOf(string objectPath)
    {
        using var obj = BpfObject.Open(objectPath);
        var maps = obj.Maps.Select(m => m.Name).Where(n => !n.Contains('.', StringComparison.Ordinal)).ToHashSet(StringComparer.Ordinal);
        var programs = obj.Programs.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        return new PinNames(maps, programs, programs);
    }

    private static void Unpin(string pinPath, PinNames names, List<string> unpinned, List<string> problems)
    {
        // Pins are files on bpffs: unlinking drops the reference; the kernel frees a map or
        // program when nothing else holds it.
        var ours = new List<string>();
        ours.AddRange(names.Maps.Select(n => Path.Combine(pinPath, n)));
        ours.AddRange(names.Programs.Select(n => Path.Combine(pinPath, DatapathLoader.ProgramPinFolder, n)));
        ours.AddRange(names.Links.Select(n => Path.Combine(pinPath, HostServices.LinkFolder, n)));
        foreach (var file in ours.Where(File.Exists))
        {
            try
            {
                File.Delete(file);
                unpinned.Add(Path.GetRelativePath(pinPath, file));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                problems.Add($"{file}: {ex.Message}");
            }
        }
        // Folders go only when empty: whatever else is in them is not ours.
        foreach (var dir in new[] { Path.Combine(pinPath, DatapathLoader.ProgramPinFolder), Path.Combine(pinPath, HostServices.LinkFolder), pinPath })
        {
            if (Directory.Exists(dir) && !Directory.EnumerateFileSystemEntries(dir).Any())
            {
                try
                {
                    Directory.Delete(dir);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    problems.Add($"{dir}: {ex.Message}");
                }
            }
        }
    }

    /// <summary>Everything left under <paramref name="pinPath"/> (what other tools pinned there), relative to it.</summary>
    public static IReadOnlyList<string> Remaining(string pinPath) => Directory.Exists(pinPath)
        ? [.. Directory.EnumerateFileSystemEntries(pinPath, "*", SearchOption.AllDirectories)
              .Where(File.Exists).Select(f => Path.GetRelativePath(pinPath, f)).Order(StringComparer.Ordinal)]
        : [];
}
