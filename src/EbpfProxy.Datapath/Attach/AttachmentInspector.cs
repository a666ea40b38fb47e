using EbpfProxy.Datapath.Loading;
using LibBpf.Net;

namespace EbpfProxy.Datapath.Attach;

/// <summary>
/// One hook holding an ebpf-proxy program, as the kernel reports it: a tc filter with ebpf-proxy's
/// handle and priority on an interface (<c>tc-ingress</c> / <c>tc-egress</c>), a tcx link pinned
/// under <c>tcx/IFNAME/</c> (<c>tcx-ingress</c> / <c>tcx-egress</c>), or a BPF link pinned
/// under <c>links/</c> (<c>link</c>: the cgroup socket hooks). <see cref="Current"/> says whether the
/// program is the one this pin folder's daemon loaded last (its pin under <c>progs/</c>); false
/// means an older daemon's program is still attached there.
/// </summary>
public sealed record AttachedHook(string Interface, int IfIndex, string Hook, string Program, uint ProgramId, bool Current);

/// <summary>
/// Reads what is attached from the kernel rather than from the daemon's memory, so `status` shows
/// the truth whether the daemon runs or not: every interface of the calling thread's network
/// namespace is asked for ebpf-proxy's tc filter on both points (<c>bpf_tc_query</c>), and the
/// pinned links are listed. Needs CAP_BPF (program names by id) and reads no map.
/// </summary>
public static class AttachmentInspector
{
    public static IReadOnlyList<AttachedHook> Read(string pinPath)
    {
        // The programs the last load pinned, by kernel id.
        var current = new Dictionary<uint, string>();
        var progs = Path.Combine(pinPath, DatapathLoader.ProgramPinFolder);
        if (Directory.Exists(progs))
        {
            foreach (var pin in Directory.EnumerateFiles(progs))
            {
                try
                {
                    using var prog = BpfProgram.OpenPinned(pin);
                    current[prog.GetInfo().Id] = Path.GetFileName(pin);
                }
                catch (BpfException)
                {
                }
            }
        }
        var result = new List<AttachedHook>();
        foreach (var itf in InterfaceAttacher.ListInterfaces().OrderBy(i => i.IfIndex))
        {
            foreach (var point in new[] { TcAttachPoint.Ingress, TcAttachPoint.Egress })
            {
                TcFilterInfo? filter;
                try
                {
                    filter = TcHook.Query(itf.IfIndex, point, InterfaceAttacher.TcHandle, InterfaceAttacher.TcPriority);
                }
                catch (BpfException)
                {
                    continue; // the interface vanished while listing
                }
                if (filter is not { } f)
                    continue;
                var name = current.TryGetValue(f.ProgramId, out var pinned) ? pinned : ProgramName(f.ProgramId);
                result.Add(new AttachedHook(itf.Name, itf.IfIndex, point == TcAttachPoint.Ingress ? "tc-ingress" : "tc-egress", name, f.ProgramId, current.ContainsKey(f.ProgramId)));
            }
        }
        var tcx = Path.Combine(pinPath, InterfaceAttacher.TcxFolder);
        if (Directory.Exists(tcx))
        {
            foreach (var pin in Directory.EnumerateFiles(tcx, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            {
                try
                {
                    using var link = BpfLink.OpenPinned(pin);
                    var info = link.GetInfo();
                    if (info.TcxIfindex == 0)
                        continue; // defunct: its interface is gone (the daemon removes such pins)
                    var name = current.TryGetValue(info.ProgramId, out var pinned) ? pinned : ProgramName(info.ProgramId);
                    result.Add(new AttachedHook(Path.GetFileName(Path.GetDirectoryName(pin)!), info.TcxIfindex, "tcx-" + Path.GetFileName(pin), name, info.ProgramId, current.ContainsKey(info.ProgramId)));
                }
                catch (BpfException)
                {
                }
            }
        }
        var links = Path.Combine(pinPath, HostServices.LinkFolder);
        if (Directory.Exists(links))
        {
            foreach (var pin in Directory.EnumerateFiles(links).Order(StringComparer.Ordinal))
                result.Add(new AttachedHook("", 0, "link", Path.GetFileName(pin), 0, true));
        }
        return result;
    }

    private static string ProgramName(uint id)
    {
        try
        {
            using var prog = BpfProgram.FromId(id);
            return prog.GetInfo().Name;
        }
        catch (BpfException)
        {
            return $"program {id}";
        }
    }
}
