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
/// Attaches each role's ingress and egress programs to the interfaces of that role, in one of two
/// ways. tcx (Linux 6.6+, preferred): a BPF link per interface and direction, pinned under
/// <c>PIN/tcx/IFNAME/{ingress,egress}</c>, so the attachment outlives the daemon and a successor
/// swaps the program in the link atomically (Cilium does the same: pkg/datapath/loader/tcx.go,
/// update a pinned link in place, else attach and pin). clsact: a direct-action filter with a
/// fixed handle and priority, replaced atomically (BPF_TC_F_REPLACE) by a successor instead of
/// stacking a second copy. Attachments are not undone when the daemon stops: the datapath keeps
/// working. The first role that matches an interface wins (pods before netdevs). Not thread-safe:
/// one caller at a time.
/// </summary>
public sealed partial class InterfaceAttacher
{
    /// <summary>tc filter handle and priority owned by ebpf-proxy on the interfaces it attaches to.</summary>
    public const uint TcHandle = 0xeb9f;
    public const uint TcPriority = 1;

    /// <summary>Folder under the pin path holding the tcx links, one subfolder per interface name.</summary>
    public const string TcxFolder = "tcx";

    private const int EINVAL = 22;

    private readonly IReadOnlyList<(AttachRole Role, uint IngressId, uint EgressId)> _roles;
    private readonly ILogger _logger;
    private readonly Dictionary<int, string> _attached = new();
    private readonly string? _tcxDir;
    private AttachMode _mode;

    /// <param name="roles">Which interfaces get which programs.</param>
    /// <param name="logger">Where attachments are logged.</param>
    /// <param name="mode">tcx, clsact, or tcx with a fall-back to clsact when the kernel refuses it.</param>
    /// <param name="pinPath">The datapath's pin folder (tcx links are pinned under it); required unless <paramref name="mode"/> is <see cref="AttachMode.Tc"/>.</param>
    public InterfaceAttacher(IEnumerable<AttachRole> roles, ILogger<InterfaceAttacher> logger, AttachMode mode = AttachMode.Tc, string? pinPath = null)
    {
        _roles = [.. roles.Select(r => (r, r.Ingress.GetInfo().Id, r.Egress.GetInfo().Id))];
        _logger = logger;
        _mode = mode;
        if (mode != AttachMode.Tc)
            _tcxDir = Path.Combine(pinPath ?? throw new ArgumentNullException(nameof(pinPath), "tcx links are pinned under the pin path"), TcxFolder);
    }

    /// <summary>"tcx" or "tc" once decided; "auto" before the first attachment has tried tcx.</summary>
    public string Mechanism => _mode switch
    {
        AttachMode.Tcx => "tcx",
        AttachMode.Tc => "tc",
        _ => "auto",
    };

    /// <summary>Called after an interface got its programs (for latency measurements).</summary>
    public Action<NetInterface>? OnAttached { get; init; }

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
    /// again too (re-attaching where another program took our slot) and the tcx pins of vanished
    /// interfaces are removed; otherwise only new ones cost syscalls. Returns how many attachments
    /// were made. Failures on one interface are logged and do not stop the others.
    /// </summary>
    public int Reconcile(bool verifyAll = true)
    {
        int made = 0;
        var present = new List<NetInterface>();
        // Addresses are read at most once per pass, and only when an unknown interface needs them.
        var scan = new InterfaceScan(new Lazy<HashSet<string>>(InterfacesWithGlobalIPv4));
        var all = ListInterfaces();
        foreach (var itf in all)
        {
            switch (Attach(itf, scan, verify: verifyAll))
            {
                case AttachOutcome.Made:
                    made++;
                    present.Add(itf);
                    break;
                case AttachOutcome.Present:
                    present.Add(itf);
                    break;
            }
        }
        foreach (var gone in _attached.Keys.Except(present.Select(p => p.IfIndex)).ToList())
            _attached.Remove(gone);
        if (verifyAll)
            RemoveStaleTcxPins(all.Select(i => i.Name).ToHashSet(StringComparer.Ordinal));
        return made;
    }

    /// <summary>What <see cref="Attach(NetInterface, InterfaceScan, bool)"/> did.</summary>
    public enum AttachOutcome
    {
        /// <summary>No role matches the interface (or it vanished).</summary>
        NotOurs,
        /// <summary>It already had our programs.</summary>
        Present,
        /// <summary>Programs were attached now.</summary>
        Made,
        /// <summary>Attaching failed (logged).</summary>
        Failed,
    }

    /// <summary>
    /// Attaches the programs of the interface's role, if it has one, as a netlink event asks
    /// (RTM_NEWLINK). Without <paramref name="verify"/> an interface already attached under the same
    /// name costs nothing.
    /// </summary>
    public AttachOutcome Attach(NetInterface itf, InterfaceScan? scan = null, bool verify = false)
    {
        if (!verify && _attached.TryGetValue(itf.IfIndex, out var known) && known == itf.Name)
            return AttachOutcome.Present;
        scan ??= new InterfaceScan(new Lazy<HashSet<string>>(InterfacesWithGlobalIPv4));
        int r = 0;
        while (r < _roles.Count && !_roles[r].Role.Matches(itf, scan))
            r++;
        if (r == _roles.Count)
        {
            if (_attached.Remove(itf.IfIndex, out var old) && old != itf.Name)
                ForgetTcxPins(old, itf.IfIndex); // renamed to a name that is not ours
            return AttachOutcome.NotOurs;
        }
        var (role, ingressId, egressId) = _roles[r];
        try
        {
            if (_attached.TryGetValue(itf.IfIndex, out var previous) && previous != itf.Name)
                ForgetTcxPins(previous, itf.IfIndex); // renamed: its links were pinned under the old name
            bool made = _mode == AttachMode.Tc
                ? AttachClsact(itf, role, ingressId, egressId)
                : AttachTcx(itf, role, ingressId, egressId);
            _attached[itf.IfIndex] = itf.Name;
            if (made)
            {
                LogAttached(_logger, role.Name, itf.Name, itf.IfIndex, Mechanism);
                OnAttached?.Invoke(itf);
            }
            return made ? AttachOutcome.Made : AttachOutcome.Present;
        }
        catch (BpfException ex) when (ex.Errno is 19 /* ENODEV */ or 6 /* ENXIO */)
        {
            return AttachOutcome.NotOurs; // gone while we were attaching
        }
        catch (Exception ex) when (ex is BpfException or IOException or UnauthorizedAccessException)
        {
            LogAttachFailed(_logger, ex, itf.Name);
            return AttachOutcome.Failed;
        }
    }

    /// <summary>The interface went away (RTM_DELLINK): forget it and drop its (now defunct) tcx pins.</summary>
    public void Forget(int ifIndex, string? name)
    {
        if (_attached.Remove(ifIndex, out var known))
            name ??= known;
        if (name is not null)
            ForgetTcxPins(name, ifIndex);
    }

    private bool AttachClsact(NetInterface itf, AttachRole role, uint ingressId, uint egressId)
    {
        bool ingressOk = TcHook.Query(itf.IfIndex, TcAttachPoint.Ingress, TcHandle, TcPriority)?.ProgramId == ingressId;
        bool egressOk = TcHook.Query(itf.IfIndex, TcAttachPoint.Egress, TcHandle, TcPriority)?.ProgramId == egressId;
        if (ingressOk && egressOk)
            return false;
        TcHook.EnsureClsact(itf.IfIndex);
        if (!egressOk)
            TcHook.Attach(itf.IfIndex, TcAttachPoint.Egress, role.Egress, TcHandle, TcPriority, replace: true);
        if (!ingressOk)
            TcHook.Attach(itf.IfIndex, TcAttachPoint.Ingress, role.Ingress, TcHandle, TcPriority, replace: true);
        return true;
    }

    /// <summary>
    /// Makes the interface's pinned tcx links run the role's programs: a live link of this
    /// interface is updated in place when its program differs; a defunct one (the interface of
    /// that name was deleted and re-created) is replaced. Then our clsact filters, left by a daemon
    /// that attached the other way, are removed: tcx runs first and decides, so they would only
    /// run when it does not.
    /// </summary>
    private bool AttachTcx(NetInterface itf, AttachRole role, uint ingressId, uint egressId)
    {
        var dir = Path.Combine(_tcxDir!, itf.Name);
        bool made = false;
        foreach (var (point, program, id) in new[] { (TcAttachPoint.Egress, role.Egress, egressId), (TcAttachPoint.Ingress, role.Ingress, ingressId) })
        {
            var pin = Path.Combine(dir, PointName(point));
            if (File.Exists(pin))
            {
                using var existing = BpfLink.OpenPinned(pin);
                var info = existing.GetInfo();
                if (info.TcxIfindex == itf.IfIndex)
                {
                    if (info.ProgramId != id)
                    {
                        existing.Update(program);
                        made = true;
                    }
                    continue;
                }
                File.Delete(pin); // defunct: the interface it was attached to is gone
            }
            BpfLink link;
            try
            {
                link = BpfLink.AttachTcx(program, itf.IfIndex, point);
            }
            catch (BpfException ex) when (ex.Errno == EINVAL && _mode == AttachMode.Auto)
            {
                // The kernel has no tcx (before 6.6): clsact from now on.
                _mode = AttachMode.Tc;
                LogTcxUnavailable(_logger, ex.Message);
                return AttachClsact(itf, role, ingressId, egressId);
            }
            using (link)
            {
                Directory.CreateDirectory(dir);
                link.Pin(pin);
            }
            made = true;
        }
        if (_mode == AttachMode.Auto)
        {
            _mode = AttachMode.Tcx;
            LogTcxChosen(_logger);
        }
        foreach (var point in new[] { TcAttachPoint.Ingress, TcAttachPoint.Egress })
        {
            if (TcHook.Query(itf.IfIndex, point, TcHandle, TcPriority) is { } filter && filter.ProgramId is var pid
                && (pid == ingressId || pid == egressId || IsOurProgram(pid)))
                TcHook.Detach(itf.IfIndex, point, TcHandle, TcPriority);
        }
        return made;
    }

    private static bool IsOurProgram(uint programId)
    {
        try
        {
            using var prog = BpfProgram.FromId(programId);
            return ProgramNames.All.Contains(prog.GetInfo().Name);
        }
        catch (BpfException)
        {
            return false;
        }
    }

    internal static string PointName(TcAttachPoint point) => point == TcAttachPoint.Ingress ? "ingress" : "egress";

    /// <summary>Removes the pins under <paramref name="name"/> whose link is defunct or belongs to <paramref name="ifIndex"/>.</summary>
    private void ForgetTcxPins(string name, int ifIndex)
    {
        if (_tcxDir is null)
            return;
        var dir = Path.Combine(_tcxDir, name);
        if (!Directory.Exists(dir))
            return;
        foreach (var pin in Directory.EnumerateFiles(dir))
        {
            try
            {
                using var link = BpfLink.OpenPinned(pin);
                if (link.GetInfo().TcxIfindex is var at && (at == 0 || at == ifIndex))
                    File.Delete(pin);
            }
            catch (Exception ex) when (ex is BpfException or IOException)
            {
                LogStalePinFailed(_logger, ex, pin);
            }
        }
        TryDeleteEmpty(dir);
    }

    /// <summary>Drops the tcx pins of interface names that no longer exist (their links are defunct).</summary>
    private void RemoveStaleTcxPins(HashSet<string> present)
    {
        if (_tcxDir is null || !Directory.Exists(_tcxDir))
            return;
        foreach (var dir in Directory.EnumerateDirectories(_tcxDir))
        {
            if (!present.Contains(Path.GetFileName(dir)))
                ForgetTcxPins(Path.GetFileName(dir), -1);
        }
    }

    private static void TryDeleteEmpty(string dir)
    {
        try
        {
            if (!Directory.EnumerateFileSystemEntries(dir).Any())
                Directory.Delete(dir);
        }
        catch (IOException)
        {
            // Filled again meanwhile, or gone.
        }
    }

    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "Attached the {Role} programs to {Interface} (ifindex {IfIndex}, {Mechanism})")]
    private static partial void LogAttached(ILogger logger, string role, string @interface, int ifIndex, string mechanism);

    [LoggerMessage(EventId = 401, Level = LogLevel.Error, Message = "Could not attach to {Interface}")]
    private static partial void LogAttachFailed(ILogger logger, Exception ex, string @interface);

    [LoggerMessage(EventId = 402, Level = LogLevel.Information, Message = "Interface programs attach through tcx links (pinned under the pin path's tcx/ folder)")]
    private static partial void LogTcxChosen(ILogger logger);

    [LoggerMessage(EventId = 403, Level = LogLevel.Warning, Message = "The kernel refused a tcx link ({Error}); interface programs attach as clsact filters instead")]
    private static partial void LogTcxUnavailable(ILogger logger, string error);

    [LoggerMessage(EventId = 404, Level = LogLevel.Warning, Message = "Could not remove the stale tcx pin {Pin}")]
    private static partial void LogStalePinFailed(ILogger logger, Exception ex, string pin);
}
