using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Sync;
using LibBpf.Net;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Datapath.Loading;

/// <summary>The loaded datapath object: its programs and the (pinned, shared) maps.</summary>
public sealed class LoadedDatapath : IDisposable
{
    internal LoadedDatapath(BpfObject obj)
    {
        Object = obj;
        FromPod = obj.GetProgram(ProgramNames.FromPod);
        ToPod = obj.GetProgram(ProgramNames.ToPod);
        FromNetdev = obj.GetProgram(ProgramNames.FromNetdev);
        ToNetdev = obj.GetProgram(ProgramNames.ToNetdev);
        SockPrograms = [.. ProgramNames.Sock.Select(p => (obj.GetProgram(p.Name), p.Type))];
        Maps = LbMaps.FromObject(obj);
        Policy = PolicyMaps.FromObject(obj);
        DatapathMaps = new PinnedDatapathMaps(Maps, Policy);
    }

    public BpfObject Object { get; }
    public BpfProgram FromPod { get; }
    public BpfProgram ToPod { get; }
    public BpfProgram FromNetdev { get; }
    public BpfProgram ToNetdev { get; }

    /// <summary>The socket hooks for the node's own processes and where each attaches.</summary>
    public IReadOnlyList<(BpfProgram Program, BpfAttachType Type)> SockPrograms { get; }

    public LbMaps Maps { get; }
    public PolicyMaps Policy { get; }

    /// <summary>Both families behind the sync's <see cref="IDatapathMaps"/>.</summary>
    public PinnedDatapathMaps DatapathMaps { get; }

    public void Dispose()
    {
        Maps.Dispose();
        Policy.Dispose();
        Object.Dispose();
    }
}

/// <summary>Names of the entry points in bpf/*.bpf.c.</summary>
public static class ProgramNames
{
    public const string PodObject = "pod.bpf.o";
    public const string FromPod = "from_pod";
    public const string ToPod = "to_pod";
    public const string FromNetdev = "from_netdev";
    public const string ToNetdev = "to_netdev";

    /// <summary>Every tc entry point, for cleanup and pinning.</summary>
    public static IReadOnlyList<string> All { get; } = [FromPod, ToPod, FromNetdev, ToNetdev];

    /// <summary>The cgroup sock_addr hooks (host-network processes) and their attach types.</summary>
    public static IReadOnlyList<(string Name, BpfAttachType Type)> Sock { get; } =
    [
        ("sock4_connect", BpfAttachType.CgroupInet4Connect),
        ("sock4_sendmsg", BpfAttachType.CgroupUdp4Sendmsg),
        ("sock4_recvmsg", BpfAttachType.CgroupUdp4Recvmsg),
        ("sock4_getpeername", BpfAttachType.CgroupInet4GetPeerName),
    ];
}

/// <summary>
/// Loads the datapath objects with their maps pinned by name under the pin folder. libbpf reuses
/// a map already pinned there when its type, key, value and size match, which is how conntrack
/// and the service maps survive daemon restarts and upgrades; an incompatible pinned map (a layout
/// change) fails the load with the map's name rather than being silently replaced. Loading
/// writes no map: what a predecessor left (config maps included) stays as it is until the
/// daemon's first sync (<see cref="DatapathSync"/>), so a restart never changes a packet's fate.
/// </summary>
public static partial class DatapathLoader
{
    public static LoadedDatapath Load(DatapathOptions options, ILogger logger)
    {
        options.Validate();
        EnsureBpfFs(options.BpfFsRoot, logger);
        Directory.CreateDirectory(options.PinPath);

        var path = Path.Combine(options.ObjectDirectory, ProgramNames.PodObject);
        if (!File.Exists(path))
            throw new FileNotFoundException($"datapath object '{path}' not found (build it with `make bpf`, or pass --bpf-dir)", path);

        var obj = BpfObject.Open(path, new BpfObjectOpenOptions { PinRootPath = options.PinPath });
        try
        {
            var sizes = new List<string>();
            foreach (var (name, size) in new[]
            {
                (LbMaps.Services, options.ServicesMax),
                (LbMaps.Backends, options.BackendsMax),
                (LbMaps.ReverseNat, options.RevNatMax),
                (LbMaps.NamesMap, options.RevNatMax),
                (LbMaps.ServiceConnectionsMap, options.RevNatMax),
                (LbMaps.Conntrack, options.ConntrackMax),
                (LbMaps.SnatMap, options.MasqueradeMax),
                (LbMaps.SockRevNatMap, options.SockRevNatMax),
                (LbMaps.AffinityMap, options.AffinityMax),
                (LbMaps.SourceRangeMap, options.SourceRangesMax),
                (LbMaps.FragmentMap, options.FragmentsMax),
                (LbMaps.DropEventsMap, options.DropEventsBytes),
                (LbMaps.FlowEventsMap, options.DropEventsBytes),
                (PolicyMaps.IpcacheMap, options.PolicyIpcacheMax),
                (PolicyMaps.EndpointsMap, options.PolicyEndpointsMax),
                (PolicyMaps.RulesMap, options.PolicyRulesMax),
                (PolicyMaps.EndpointNamesMap, options.PolicyEndpointsMax),
                (PolicyMaps.IdentityNamesMap, options.PolicyIpcacheMax),
                (PolicyMaps.ConntrackMap, options.PolicyConntrackMax),
            })
            {
                var actual = AdoptPinnedSize(options.PinPath, name, size, logger);
                obj.GetMap(name).SetMaxEntries(actual);
                sizes.Add($"{name} {actual}");
            }
            LogMapSizes(logger, string.Join(", ", sizes));
            ReplaceStalePin(obj.GetMap(LbMaps.TraceMap), options.PinPath, logger);
            obj.Load();
            LogLoaded(logger, path, options.PinPath);
            var loaded = new LoadedDatapath(obj);
            // Not a change of any packet's fate: connections a predecessor tracked in ct4 keep their state in pol_ct4.
            int moved = MovePolicyConntrack(loaded.Maps.Ct4, loaded.Policy.Conntrack);
            if (moved > 0)
                LogPolicyConntrackMoved(logger, moved);
            PinPrograms(loaded, options);
            return loaded;
        }
        catch
        {
            obj.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Upgrade from a version that kept policy entries in ct4 (dir CT_DIR_POLICY, the peer in
    /// backend_id / rev_nat_id, CT_F_POLICY_INBOUND): each moves to pol_ct4 with its times, so an
    /// admitted connection's replies stay admitted across the upgrade. Runs before the new
    /// programs are attached; an entry the old programs write after it is judged again on its next
    /// packet (admitted when policy still admits it). Returns how many moved.
    /// </summary>
    public static int MovePolicyConntrack(BpfMap<Ct4Key, CtEntry> ct4, BpfMap<Ct4Key, PolCtEntry> polCt4)
    {
        int moved = 0;
        foreach (var (key, old) in ct4.Entries().Where(e => e.Key.Dir == CtDirection.Policy).ToList())
        {
            var entry = new PolCtEntry
            {
                LastSeenNs = old.LastSeenNs,
                CreatedNs = old.CreatedNs,
                PeerBe = Be32Address.FromRaw(old.BackendId),
                PeerPortBe = Be16.FromRaw(old.RevNatId),
                Flags = ((old.Flags & CtFlags.PolicyInbound) != 0 ? PolCtFlags.Inbound : PolCtFlags.None)
                    | ((old.Flags & CtFlags.Closing) != 0 ? PolCtFlags.Closing : PolCtFlags.None),
            };
            polCt4.Update(key, entry);
            ct4.Delete(key);
            moved++;
        }
        return moved;
    }

    [LoggerMessage(EventId = 309, Level = LogLevel.Information, Message = "Map sizes (max entries; ring buffers in bytes): {Sizes}")]
    private static partial void LogMapSizes(ILogger logger, string sizes);

    [LoggerMessage(EventId = 304, Level = LogLevel.Information, Message = "Moved {Count} NetworkPolicy connections from ct4 to pol_ct4 (upgrade)")]
    private static partial void LogPolicyConntrackMoved(ILogger logger, int count);

    /// <summary>Folder under the pin path holding the programs of the running daemon (for `ebpf-proxy trace`).</summary>
    public const string ProgramPinFolder = "progs";

    /// <summary>Pins this load's programs (replacing a predecessor's pins) so the CLI can run them.</summary>
    private static void PinPrograms(LoadedDatapath loaded, DatapathOptions options)
    {
        var dir = Path.Combine(options.PinPath, ProgramPinFolder);
        Directory.CreateDirectory(dir);
        foreach (var prog in new[] { loaded.FromPod, loaded.ToPod, loaded.FromNetdev, loaded.ToNetdev })
        {
            var path = Path.Combine(dir, prog.Name);
            if (File.Exists(path))
                File.Delete(path); // unlinking a bpffs pin drops only the pin's reference
            prog.Pin(path);
        }
    }

    /// <summary>
    /// A map already pinned with another size is kept at its size: libbpf would refuse to reuse
    /// it, and replacing it would lose its content (conntrack: every established connection). A
    /// new size takes effect after `ebpf-proxy cleanup` (or a reboot) empties the pin folder.
    /// </summary>
    private static uint AdoptPinnedSize(string pinPath, string name, uint wanted, ILogger logger)
    {
        var path = Path.Combine(pinPath, name);
        if (!File.Exists(path))
            return wanted;
        using var pinned = BpfMap.OpenPinned(path);
        if (pinned.MaxEntries != wanted)
            LogKeptPinnedSize(logger, name, pinned.MaxEntries, wanted);
        return pinned.MaxEntries;
    }

    /// <summary>
    /// A pinned map that holds no state worth keeping (the trace record) is replaced when its
    /// layout changed (a field was appended), instead of failing the load as a stateful map must.
    /// </summary>
    private static void ReplaceStalePin(BpfObjectMap map, string pinPath, ILogger logger)
    {
        var path = Path.Combine(pinPath, map.Name);
        if (!File.Exists(path))
            return;
        using (var pinned = BpfMap.OpenPinned(path))
        {
            if (pinned.KeySize == map.KeySize && pinned.ValueSize == map.ValueSize)
                return;
        }
        File.Delete(path); // unlinking a bpffs pin drops only the pin's reference
        LogReplacedPin(logger, map.Name);
    }

    [LoggerMessage(EventId = 303, Level = LogLevel.Information, Message = "Map {Map} is pinned with an older layout; replaced (it holds no state)")]
    private static partial void LogReplacedPin(ILogger logger, string map);

    [LoggerMessage(EventId = 302, Level = LogLevel.Warning, Message = "Map {Map} is pinned with {Pinned} entries; keeping that size instead of {Wanted} so its content survives (run `ebpf-proxy cleanup` with the daemon stopped to apply the new size)")]
    private static partial void LogKeptPinnedSize(ILogger logger, string map, uint pinned, uint wanted);

    /// <summary>Mounts bpffs at <paramref name="root"/> when it is not mounted there (nodes do not always boot with it).</summary>
    public static void EnsureBpfFs(string root, ILogger? logger = null)
    {
        if (Directory.Exists(root) && BpfFs.IsMounted(root))
            return;
        BpfFs.Mount(root);
        if (logger is not null)
            LogMounted(logger, root);
    }

    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "Loaded {Object}; maps pinned under {PinPath}")]
    private static partial void LogLoaded(ILogger logger, string @object, string pinPath);

    [LoggerMessage(EventId = 301, Level = LogLevel.Information, Message = "Mounted bpffs at {Path}")]
    private static partial void LogMounted(ILogger logger, string path);
}
