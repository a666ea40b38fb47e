namespace EbpfProxy.Testing.Tests;

public class StaleCleanupTests
{
    [PrivilegedFact]
    public void Removes_namespaces_of_dead_owners_only()
    {
        Privileged.EnsureRoot();
        int deadPid = FindDeadPid();
        string stale = $"epx-{Names.ToBase36(deadPid)}-1-stale";
        using NetNs live = NetNs.Create("live");
        Cmd.Run("ip", "netns", "add", stale);
        try
        {
            StaleCleanupResult result = StaleCleanup.RemoveLeftovers();
            Assert.Contains(stale, result.Namespaces);
            Assert.DoesNotContain(live.Name, result.Namespaces);
            string[] now = TopologyTests.ListNamespaces();
            Assert.DoesNotContain(stale, now);
            Assert.Contains(live.Name, now);
        }
        finally
        {
            Cmd.TryRun("ip", "netns", "delete", stale);
        }
    }

    [PrivilegedFact]
    public void Removes_temp_mounts_of_dead_owners()
    {
        Privileged.EnsureRoot();
        int deadPid = FindDeadPid();
        string dir = $"/tmp/epx-{Names.ToBase36(deadPid)}-bpffs-1";
        Directory.CreateDirectory(dir);
        try
        {
            Cmd.Run("mount", "-t", "bpf", "bpf", dir);
            Assert.True(BpfFsMount.IsMountPoint(dir));
            StaleCleanupResult result = StaleCleanup.RemoveLeftovers();
            Assert.Contains(dir, result.Paths);
            Assert.False(BpfFsMount.IsMountPoint(dir));
            Assert.False(Directory.Exists(dir));
        }
        finally
        {
            if (BpfFsMount.IsMountPoint(dir))
            {
                Cmd.TryRun("umount", "-l", dir);
            }
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir);
            }
        }
    }

    private static int FindDeadPid()
    {
        // A pid just below pid_max that is not in use (test-only; the name is created and removed by this test).
        int max = int.Parse(File.ReadAllText("/proc/sys/kernel/pid_max").Trim());
        for (int pid = max - 1; pid > max - 1000; pid--)
        {
            if (!StaleCleanup.IsProcessAlive(pid))
            {
                return pid;
            }
        }
        throw new InvalidOperationException("no free pid found");
    }
}
