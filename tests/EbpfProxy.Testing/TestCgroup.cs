namespace EbpfProxy.Testing;

/// <summary>
/// A cgroup v2 directory of its own (<c>epx-&lt;run&gt;-cgroup-&lt;n&gt;</c>), so socket hooks under test
/// attach there and never to the machine's root cgroup. Only processes the test moves in are
/// affected. The cgroup2 hierarchy is mounted (again) in a temporary folder under /tmp, because
/// <c>ip netns exec</c> gives the daemon a fresh /sys without the machine's cgroup mounts.
/// Removed on dispose; links attached to it go with it.
/// </summary>
public sealed class TestCgroup : IDisposable
{
    private readonly string _mountedAt;

    private TestCgroup(string path, string mountedAt)
    {
        Path = path;
        _mountedAt = mountedAt;
    }

    /// <summary>The cgroup's directory (pass it as --cgroup-root).</summary>
    public string Path { get; }

    /// <summary>Creates the cgroup (root only).</summary>
    public static TestCgroup Create()
    {
        Privileged.EnsureRoot();
        var mountedAt = Names.TempPath("cgroup2");
        Directory.CreateDirectory(mountedAt);
        try
        {
            Cmd.Run("mount", "-t", "cgroup2", "none", mountedAt);
            var path = System.IO.Path.Combine(mountedAt, System.IO.Path.GetFileName(Names.TempPath("cgroup")));
            Directory.CreateDirectory(path);
            return new TestCgroup(path, mountedAt);
        }
        catch
        {
            Cmd.TryRun("umount", mountedAt);
            Directory.Delete(mountedAt);
            throw;
        }
    }

    /// <summary>
    /// Runs a bash <paramref name="script"/> as a process inside this cgroup and inside
    /// <paramref name="ns"/> (a host-network process of that node, as far as the hooks can tell).
    /// </summary>
    public Task<CommandResult> RunAsync(NetNs ns, string script, TimeSpan? timeout = null) =>
        Cmd.TryRunAsync("bash", ["-c", "echo $$ > \"$0\"/cgroup.procs && exec ip netns exec \"$1\" bash -c \"$2\"", Path, ns.Name, script],
            timeout ?? TimeSpan.FromSeconds(10));

    /// <summary>Removes the cgroup and the temporary cgroup2 mount.</summary>
    public void Dispose()
    {
        // rmdir fails while a process is still inside: the scripts above have exited by now.
        for (int i = 0; i < 50 && Directory.Exists(Path); i++)
        {
            try
            {
                Directory.Delete(Path);
            }
            catch (IOException)
            {
                Thread.Sleep(20);
            }
        }
        Cmd.TryRun("umount", _mountedAt);
        try
        {
            Directory.Delete(_mountedAt);
        }
        catch (IOException)
        {
        }
    }
}
