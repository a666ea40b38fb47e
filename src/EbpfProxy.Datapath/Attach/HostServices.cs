using System.Net.Sockets;
using EbpfProxy.Datapath.Loading;
using LibBpf.Net;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Datapath.Attach;

/// <summary>
/// Services for the node's own processes: attaches the cgroup sock_addr hooks (bpf/lib/sock.h) to
/// a cgroup v2 directory through BPF links pinned under the pin path, so they stay attached after
/// the daemon and a successor swaps their programs in place. The network namespace cookie the
/// hooks translate for (lb_host_config) is written by the sync's config stage, not here.
/// </summary>
public static partial class HostServices
{
    /// <summary>Folder under the pin path holding the pinned links.</summary>
    public const string LinkFolder = "links";

    /// <summary>Where the cgroup2 hierarchy is mounted when no mount exists (as Cilium mounts /run/cilium/cgroupv2).</summary>
    public const string FallbackCgroupMount = "/run/ebpf-proxy/cgroupv2";

    private const int SolSocket = 1, SoNetnsCookie = 71;

    /// <summary>The cookie of the calling thread's network namespace (SO_NETNS_COOKIE, Linux 5.14+).</summary>
    public static ulong CurrentNetnsCookie()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        Span<byte> value = stackalloc byte[8];
        int n = socket.GetRawSocketOption(SolSocket, SoNetnsCookie, value);
        if (n != 8)
            throw new InvalidOperationException($"SO_NETNS_COOKIE returned {n} bytes");
        return BitConverter.ToUInt64(value);
    }

    /// <summary>The first cgroup2 mount point in /proc/self/mountinfo, or null.</summary>
    public static string? FindCgroup2Mount()
    {
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            // "... mountpoint options [optional fields] - fstype source superoptions"
            var parts = line.Split(' ');
            int dash = Array.IndexOf(parts, "-");
            if (dash > 4 && dash + 1 < parts.Length && parts[dash + 1] == "cgroup2")
                return parts[4].Replace("\\040", " ", StringComparison.Ordinal);
        }
        return null;
    }

    /// <summary>The configured cgroup, else the cgroup2 root, mounted at <see cref="FallbackCgroupMount"/> when there is none.</summary>
    public static string ResolveCgroup(string? configured, ILogger logger)
    {
        if (configured is not null)
            return Directory.Exists(configured) ? configured : throw new DirectoryNotFoundException($"cgroup '{configured}' does not exist");
        if (FindCgroup2Mount() is { } mount)
            return mount;
        Cgroup2.Mount(FallbackCgroupMount);
        LogMountedCgroup2(logger, FallbackCgroupMount);
        return FallbackCgroupMount;
    }

    /// <summary>Attaches (or takes over) the four hooks on <paramref name="cgroupPath"/>. Idempotent.</summary>
    public static void Attach(LoadedDatapath datapath, string pinPath, string cgroupPath, ILogger logger)
    {
        var dir = Path.Combine(pinPath, LinkFolder);
        Directory.CreateDirectory(dir);
        foreach (var (program, type) in datapath.SockPrograms)
        {
            var pin = Path.Combine(dir, program.Name);
            if (File.Exists(pin))
            {
                using var existing = BpfLink.OpenPinned(pin);
                existing.Update(program);
                continue;
            }
            using var link = BpfLink.AttachCgroup(program, cgroupPath, type);
            link.Pin(pin);
        }
        LogAttached(logger, cgroupPath);
    }

    [LoggerMessage(EventId = 410, Level = LogLevel.Information, Message = "Socket hooks for host-network processes attached to cgroup {Cgroup}")]
    private static partial void LogAttached(ILogger logger, string cgroup);

    [LoggerMessage(EventId = 411, Level = LogLevel.Information, Message = "No cgroup2 mount found; mounted one at {Path}")]
    private static partial void LogMountedCgroup2(ILogger logger, string path);
}
