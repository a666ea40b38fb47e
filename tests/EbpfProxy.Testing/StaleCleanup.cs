using EbpfProxy.Testing.Native;
using System.Runtime.InteropServices;

namespace EbpfProxy.Testing;

/// <summary>
/// Removes what crashed earlier runs left behind: network namespaces named <c>epx-&lt;pid&gt;-…</c> and
/// temp directories <c>/tmp/epx-&lt;pid&gt;-…</c> (unmounting a bpffs on them) whose owner pid is no longer
/// alive. Anything not matching that exact naming scheme is never touched.
/// </summary>
/// <remarks>
/// Runs automatically once per process before the first <see cref="NetNs.Create"/> or
/// <see cref="BpfFsMount.CreateTemp"/>. A name carrying this process's own pid that this process did not
/// hand out is also a leftover (an earlier process had the same pid) and is removed.
/// </remarks>
public static class StaleCleanup
{
    private static readonly Lock Gate = new();
    private static bool _ran;

    /// <summary>The directory where <c>ip netns</c> keeps named namespaces.</summary>
    public const string NetNsDirectory = "/var/run/netns";

    /// <summary>Removes stale leftovers now and returns what was removed.</summary>
    public static StaleCleanupResult RemoveLeftovers()
    {
        var namespaces = new List<string>();
        var paths = new List<string>();

        if (Directory.Exists(NetNsDirectory))
        {
            foreach (string file in Directory.GetFiles(NetNsDirectory))
            {
                string name = Path.GetFileName(file);
                if (IsStale(name))
                {
                    // Whatever still runs inside was started by that dead run (a daemon, a real control
                    // plane's etcd or API server): by construction nothing else lives in our namespaces.
                    KillProcessesIn(name);
                    Cmd.TryRun("ip", "netns", "delete", name);
                    if (!File.Exists(file))
                    {
                        namespaces.Add(name);
                    }
                }
            }
        }

        foreach (string dir in Directory.GetDirectories("/tmp", Names.Prefix + "-*"))
        {
            string name = Path.GetFileName(dir);
            if (!IsStale(name))
            {
                continue;
            }
            if (BpfFsMount.IsMountPoint(dir))
            {
                // A TestCgroup's cgroup2 mount: its test cgroups outlive the mount, remove them first.
                foreach (string child in Directory.GetDirectories(dir, Names.Prefix + "-*"))
                {
                    try
                    {
                        Directory.Delete(child, recursive: false);
                    }
                    catch (IOException)
                    {
                    }
                }
                if (Libc.Umount2(dir, 0) != 0)
                {
                    Libc.Umount2(dir, Libc.MNT_DETACH);
                }
            }
            try
            {
                // Non-recursive on purpose: only an empty directory (e.g. an unmounted bpffs mount point) goes;
                // except a real control plane's run folder (etcd data, certificates), never a mount point.
                Directory.Delete(dir, recursive: name.Contains("-k8s-", StringComparison.Ordinal) && !BpfFsMount.IsMountPoint(dir));
                paths.Add(dir);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return new StaleCleanupResult(namespaces, paths);
    }

    /// <summary>Runs <see cref="RemoveLeftovers"/> once per process (best effort, never throws).</summary>
    internal static void EnsureRanOnce()
    {
        lock (Gate)
        {
            if (_ran)
            {
                return;
            }
            _ran = true;
            try
            {
                RemoveLeftovers();
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"[EbpfProxy.Testing] stale cleanup failed: {e.Message}");
            }
        }
    }

    /// <summary>SIGKILLs every process in the named namespace (<c>ip netns pids</c>).</summary>
    private static void KillProcessesIn(string name)
    {
        var pids = Cmd.TryRun("ip", "netns", "pids", name);
        if (!pids.Succeeded)
        {
            return;
        }
        foreach (string line in pids.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (int.TryParse(line, out int pid) && pid != Environment.ProcessId)
            {
                Libc.Kill(pid, Libc.SIGKILL);
            }
        }
    }

    /// <summary>True when <paramref name="name"/> follows the harness naming scheme and its owner is gone.</summary>
    internal static bool IsStale(string name)
    {
        if (!Names.TryGetOwnerPid(name, out int pid))
        {
            return false;
        }
        if (pid == Environment.ProcessId)
        {
            return !Names.IsIssuedByThisProcess(name);
        }
        return !IsProcessAlive(pid);
    }

    /// <summary>True when a process with this pid exists (kill(pid, 0) succeeds or fails with EPERM).</summary>
    internal static bool IsProcessAlive(int pid)
    {
        if (Libc.Kill(pid, 0) == 0)
        {
            return true;
        }
        return Marshal.GetLastPInvokeError() != Libc.ESRCH;
    }
}

/// <summary>What <see cref="StaleCleanup.RemoveLeftovers"/> removed.</summary>
/// <param name="Namespaces">Deleted network namespace names.</param>
/// <param name="Paths">Deleted temp directories (unmounted first when they were mount points).</param>
public sealed record StaleCleanupResult(IReadOnlyList<string> Namespaces, IReadOnlyList<string> Paths);
