namespace LibBpf.Net;

/// <summary>The BPF filesystem (bpffs), where maps and programs are pinned.</summary>
public static class BpfFs
{
    /// <summary>The conventional mount point.</summary>
    public const string DefaultPath = "/sys/fs/bpf";

    /// <summary>True when <paramref name="path"/> exists and lies on a bpffs (<c>statfs</c> f_type is BPF_FS_MAGIC).</summary>
    public static bool IsMounted(string path = DefaultPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!Directory.Exists(path))
        {
            return false;
        }
        return Interop.Libc.StatFsType(path) == Interop.Libc.BPF_FS_MAGIC;
    }

    /// <summary>Creates <paramref name="path"/> if needed and mounts a bpffs on it (<c>mount("bpf", path, "bpf", 0, NULL)</c>; needs CAP_SYS_ADMIN).</summary>
    public static void Mount(string path = DefaultPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Directory.CreateDirectory(path);
        Interop.Libc.Mount("bpf", path, "bpf");
    }

    /// <summary>Unmounts <paramref name="path"/> (<c>umount2</c>, lazily with MNT_DETACH when <paramref name="detach"/>).</summary>
    public static void Unmount(string path, bool detach = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Interop.Libc.Unmount(path, detach ? Interop.Libc.MNT_DETACH : 0);
    }
}
