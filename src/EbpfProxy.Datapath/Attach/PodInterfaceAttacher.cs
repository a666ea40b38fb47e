using System.IO.Enumeration;
using EbpfProxy.Datapath.Loading;
using LibBpf.Net;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Datapath.Attach;

/// <summary>A network interface of the node.</summary>
public readonly record struct NetInterface(string Name, int IfIndex);

/// <summary>
/// Attaches from_pod (tc ingress) and to_pod (tc egress) to every interface whose name matches a
/// pod glob, through a clsact qdisc, with a fixed handle and priority so a restarted or upgraded
/// daemon replaces its predecessor's programs atomically (BPF_TC_F_REPLACE) instead of stacking
/// a second copy. Attachments are not undone when the daemon stops: the datapath keeps working.
/// </summary>
public sealed partial class PodInterfaceAttacher
{
    /// <summary>tc filter handle and priority owned by ebpf-proxy on pod interfaces.</summary>
    public const uint TcHandle = 0xeb9f;
    public const uint TcPriority = 1;

    private readonly LoadedDatapath _datapath;
    private readonly IReadOnlyList<string> _globs;
    private readonly ILogger _logger;
    private readonly Dictionary<int, string> _attached = new();
    private readonly uint _fromPodId;
    private readonly uint _toPodId;

    public PodInterfaceAttacher(LoadedDatapath datapath, IEnumerable<string> globs, ILogger<PodInterfaceAttacher> logger)
    {
        _datapath = datapath;
        _globs = [.. globs];
        _logger = logger;
        _fromPodId = datapath.FromPod.GetInfo().Id;
        _toPodId = datapath.ToPod.GetInfo().Id;
    }

    public IReadOnlyDictionary<int, string> Attached => _attached;

    public bool Matches(string name) => _globs.Any(g => FileSystemName.MatchesSimpleExpression(g, name, ignoreCase: false));

    /// <summary>Lists the interfaces of the calling thread's network namespace.</summary>
    public static IReadOnlyList<NetInterface> ListInterfaces()
    {
        var result = new List<NetInterface>();
        const string sysClassNet = "/sys/class/net";
        if (!Directory.Exists(sysClassNet))
            return result;
        foreach (var dir in Directory.EnumerateFileSystemEntries(sysClassNet))
        {
            var name = Path.GetFileName(dir);
            try
            {
                var idx = int.Parse(File.ReadAllText(Path.Combine(dir, "ifindex")).Trim(), System.Globalization.CultureInfo.InvariantCulture);
                result.Add(new NetInterface(name, idx));
            }
            catch (IOException)
            {
                // Interface vanished while listing.
            }
        }
        return result;
    }

    /// <summary>
    /// One reconcile pass: attach to new matching interfaces and forget interfaces that
    /// disappeared. With <paramref name="verifyAll"/>, interfaces already handled are checked
    /// again too (re-attaching where another program took our slot); otherwise only new ones cost
    /// netlink queries. Returns how many attachments were made. Failures on one interface are
    /// logged and do not stop the others.
    /// </summary>
    public int Reconcile(bool verifyAll = true)
    {
        int made = 0;
        var present = ListInterfaces().Where(i => Matches(i.Name)).ToList();
        foreach (var itf in present)
        {
            if (!verifyAll && _attached.TryGetValue(itf.IfIndex, out var known) && known == itf.Name)
                continue;
            try
            {
                bool ingressOk = TcHook.Query(itf.IfIndex, TcAttachPoint.Ingress, TcHandle, TcPriority)?.ProgramId == _fromPodId;
                bool egressOk = TcHook.Query(itf.IfIndex, TcAttachPoint.Egress, TcHandle, TcPriority)?.ProgramId == _toPodId;
                if (ingressOk && egressOk)
                {
                    _attached[itf.IfIndex] = itf.Name;
                    continue;
                }
                TcHook.EnsureClsact(itf.IfIndex);
                if (!egressOk)
                    TcHook.Attach(itf.IfIndex, TcAttachPoint.Egress, _datapath.ToPod, TcHandle, TcPriority, replace: true);
                if (!ingressOk)
                    TcHook.Attach(itf.IfIndex, TcAttachPoint.Ingress, _datapath.FromPod, TcHandle, TcPriority, replace: true);
                _attached[itf.IfIndex] = itf.Name;
                made++;
                LogAttached(_logger, itf.Name, itf.IfIndex);
            }
            catch (BpfException ex) when (ex.Errno is 19 /* ENODEV */ or 6 /* ENXIO */)
            {
                // Gone while we were attaching.
            }
            catch (BpfException ex)
            {
                LogAttachFailed(_logger, ex, itf.Name);
            }
        }
        foreach (var gone in _attached.Keys.Except(present.Select(p => p.IfIndex)).ToList())
            _attached.Remove(gone);
        return made;
    }

    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "Attached from_pod/to_pod to {Interface} (ifindex {IfIndex})")]
    private static partial void LogAttached(ILogger logger, string @interface, int ifIndex);

    [LoggerMessage(EventId = 401, Level = LogLevel.Error, Message = "Could not attach to {Interface}")]
    private static partial void LogAttachFailed(ILogger logger, Exception ex, string @interface);
}
