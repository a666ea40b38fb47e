using System.IO.Enumeration;
using EbpfProxy.Datapath.Loading;
using LibBpf.Net;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Datapath.Attach;

/// <summary>A network interface of the node.</summary>
public readonly record struct NetInterface(string Name, int IfIndex);

/// <summary>What one reconcile pass knows about the interfaces, read once and only if needed.</summary>
public sealed record InterfaceScan(Lazy<HashSet<string>> GlobalIPv4);

/// <summary>
/// Which programs an interface gets: pods' host-side veths get from_pod/to_pod, the node's network
/// devices from_netdev/to_netdev. <see cref="Matches"/> decides membership.
/// </summary>
public sealed record AttachRole(string Name, Func<NetInterface, InterfaceScan, bool> Matches, BpfProgram Ingress, BpfProgram Egress)
{
    /// <summary>Pods: interfaces whose name matches one of the globs.</summary>
    public static AttachRole Pods(LoadedDatapath datapath, IEnumerable<string> globs)
    {
        var list = globs.ToList();
        return new("pod", (i, _) => InterfaceAttacher.MatchesAny(list, i.Name), datapath.FromPod, datapath.ToPod);
    }

    /// <summary>
    /// Netdevs: interfaces matching the globs; with none, every interface other than lo and the pod
    /// interfaces that holds a global IPv4 address (what a node routes with; Cilium's device
    /// detection works the same way).
    /// </summary>
    public static AttachRole Netdevs(LoadedDatapath datapath, IEnumerable<string> globs, IEnumerable<string> podGlobs)
    {
        var list = globs.ToList();
        var pods = podGlobs.ToList();
        Func<NetInterface, InterfaceScan, bool> matches = list.Count > 0
            ? (i, _) => InterfaceAttacher.MatchesAny(list, i.Name)
            : (i, scan) => i.Name != "lo" && !InterfaceAttacher.MatchesAny(pods, i.Name) && scan.GlobalIPv4.Value.Contains(i.Name);
        return new("netdev", matches, datapath.FromNetdev, datapath.ToNetdev);
    }
}

/// <summary>
/// Attaches each role's ingress and egress programs to the interfaces of that role, through a
/// clsact qdisc, with a fixed handle and priority so a restarted or upgraded daemon replaces its
/// predecessor's programs atomically (BPF_TC_F_REPLACE) instead of stacking a second copy.
/// Attachments are not undone when the daemon stops: the datapath keeps working. The first role
/// that matches an interface wins (pods before netdevs).
/// </summary>
public sealed partial class InterfaceAttacher
{
    /// <summary>tc filter handle and priority owned by ebpf-proxy on the interfaces it attaches to.</summary>
    public const uint TcHandle = 0xeb9f;
    public const uint TcPriority = 1;

    private readonly IReadOnlyList<(AttachRole Role, uint IngressId, uint EgressId)> _roles;
    private readonly ILogger _logger;
    private readonly Dictionary<int, string> _attached = new();

    public InterfaceAttacher(IEnumerable<AttachRole> roles, ILogger<InterfaceAttacher> logger)
    {
        _roles = [.. roles.Select(r => (r, r.Ingress.GetInfo().Id, r.Egress.GetInfo().Id))];
        _logger = logger;
    }

    /// <summary>The roles of a daemon: pods by glob, netdevs by glob or detection.</summary>
    public static IReadOnlyList<AttachRole> DefaultRoles(LoadedDatapath datapath, DatapathOptions options) =>
        [AttachRole.Pods(datapath, options.PodInterfaces), AttachRole.Netdevs(datapath, options.NetdevInterfaces, options.PodInterfaces)];

    internal static bool MatchesAny(IReadOnlyList<string> globs, string name) =>
        globs.Any(g => FileSystemName.MatchesSimpleExpression(g, name, ignoreCase: false));

    /// <summary>Names of the interfaces holding a global (not loopback, not link-local) IPv4 address.</summary>
    internal static HashSet<string> InterfacesWithGlobalIPv4()
    {
        try
        {
            return [.. System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
                .Where(n => n.GetIPProperties().UnicastAddresses.Any(u =>
                    u.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork
                    && !System.Net.IPAddress.IsLoopback(u.Address)
                    && !(u.Address.GetAddressBytes() is [169, 254, ..])))
                .Select(n => n.Name)];
        }
        catch (System.Net.NetworkInformation.NetworkInformationException)
        {
            return [];
        }
    }

    public IReadOnlyDictionary<int, string> Attached => _attached;

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
        var present = new List<NetInterface>();
        // Addresses are read at most once per pass, and only when an unknown interface needs them.
        var scan = new InterfaceScan(new Lazy<HashSet<string>>(InterfacesWithGlobalIPv4));
        foreach (var itf in ListInterfaces())
        {
            if (!verifyAll && _attached.TryGetValue(itf.IfIndex, out var known) && known == itf.Name)
            {
                present.Add(itf);
                continue;
            }
            int r = 0;
            while (r < _roles.Count && !_roles[r].Role.Matches(itf, scan))
                r++;
            if (r == _roles.Count)
                continue;
            present.Add(itf);
            var (role, ingressId, egressId) = _roles[r];
            try
            {
                bool ingressOk = TcHook.Query(itf.IfIndex, TcAttachPoint.Ingress, TcHandle, TcPriority)?.ProgramId == ingressId;
                bool egressOk = TcHook.Query(itf.IfIndex, TcAttachPoint.Egress, TcHandle, TcPriority)?.ProgramId == egressId;
                if (ingressOk && egressOk)
                {
                    _attached[itf.IfIndex] = itf.Name;
                    continue;
                }
                TcHook.EnsureClsact(itf.IfIndex);
                if (!egressOk)
                    TcHook.Attach(itf.IfIndex, TcAttachPoint.Egress, role.Egress, TcHandle, TcPriority, replace: true);
                if (!ingressOk)
                    TcHook.Attach(itf.IfIndex, TcAttachPoint.Ingress, role.Ingress, TcHandle, TcPriority, replace: true);
                _attached[itf.IfIndex] = itf.Name;
                made++;
                LogAttached(_logger, role.Name, itf.Name, itf.IfIndex);
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

    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "Attached the {Role} programs to {Interface} (ifindex {IfIndex})")]
    private static partial void LogAttached(ILogger logger, string role, string @interface, int ifIndex);

    [LoggerMessage(EventId = 401, Level = LogLevel.Error, Message = "Could not attach to {Interface}")]
    private static partial void LogAttachFailed(ILogger logger, Exception ex, string @interface);
}
