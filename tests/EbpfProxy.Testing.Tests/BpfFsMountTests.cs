namespace EbpfProxy.Testing.Tests;

public class BpfFsMountTests
{
    [PrivilegedFact]
    public void Mounts_a_real_bpffs_and_removes_it()
    {
        Privileged.EnsureRoot();
        string path;
        using (BpfFsMount mount = BpfFsMount.CreateTemp())
        {
            path = mount.Path;
            Assert.StartsWith($"/tmp/epx-{Names.RunId}-bpffs-", path);
            Assert.True(BpfFsMount.IsMountPoint(path));
            Assert.Equal(0xcafe4a11L, BpfFsMount.GetFileSystemMagic(path));
            Assert.True(BpfFsMount.IsBpfFs(path));
            Assert.False(BpfFsMount.IsBpfFs("/tmp"));
        }
        Assert.False(Directory.Exists(path));
        Assert.False(BpfFsMount.IsMountPoint(path));
    }

    [PrivilegedFact]
    public void Visible_from_ip_netns_exec_while_sys_fs_bpf_is_not_shared()
    {
        Privileged.EnsureRoot();
        using BpfFsMount mount = BpfFsMount.CreateTemp();
        using NetNs ns = NetNs.Create("bpffs");
        // stat -f -c %t prints the filesystem type in hex as seen by a process inside the namespace.
        string type = ns.Exec("stat", "-f", "-c", "%t", mount.Path).Stdout.Trim();
        Assert.Equal("cafe4a11", type);
    }

    [PrivilegedFact]
    public void Two_mounts_are_independent()
    {
        Privileged.EnsureRoot();
        using BpfFsMount a = BpfFsMount.CreateTemp();
        using BpfFsMount b = BpfFsMount.CreateTemp();
        Assert.NotEqual(a.Path, b.Path);
        Directory.CreateDirectory(Path.Combine(a.Path, "subdir"));
        Assert.True(Directory.Exists(Path.Combine(a.Path, "subdir")));
        Assert.False(Directory.Exists(Path.Combine(b.Path, "subdir")));
        Directory.Delete(Path.Combine(a.Path, "subdir"));
    }
}
