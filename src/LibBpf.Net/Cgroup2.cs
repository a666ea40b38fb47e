namespace LibBpf.Net;

/// <summary>The cgroup v2 hierarchy, where cgroup BPF programs attach.</summary>
public static class Cgroup2
{
    /// <summary>Creates <paramref name="path"/> if needed and mounts the cgroup2 hierarchy on it (needs CAP_SYS_ADMIN).</summary>
    public static void Mount(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Directory.CreateDirectory(path);
        Interop.Libc.Mount("cgroup2", path, "cgroup2");
    }
}
