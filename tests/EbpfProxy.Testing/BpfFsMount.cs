using System.Text;
using EbpfProxy.Testing.Native;

namespace EbpfProxy.Testing;

/// <summary>
/// A private bpffs mounted on a fresh directory <c>/tmp/epx-&lt;run&gt;-bpffs-&lt;n&gt;</c>, so each daemon
/// under test gets its own pin directory. Unmounted and removed on <see cref="Dispose"/>.
/// </summary>
/// <remarks>
/// <c>ip netns exec</c> remounts <c>/sys</c> for its child, so <c>/sys/fs/bpf</c> is empty there. A bpffs
/// mounted under <c>/tmp</c> in the root mount namespace is still visible to processes started with
/// <c>ip netns exec</c> (their mount namespace is a slave copy), which is why daemons get one of these.
/// </remarks>
public sealed class BpfFsMount : IDisposable
{
    /// <summary><c>BPF_FS_MAGIC</c>: the <c>f_type</c> that <c>statfs(2)</c> reports for a bpffs.</summary>
    public const long BpfFsMagic = 0xcafe4a11;

    private int _disposed;

    private BpfFsMount(string path) => Path = path;

    /// <summary>The mount point.</summary>
    public string Path { get; }

    /// <summary>Creates the directory and mounts a new bpffs on it (<c>mount("bpf", dir, "bpf", 0, NULL)</c>).</summary>
    public static BpfFsMount CreateTemp()
    {
        Privileged.EnsureRoot();
        StaleCleanup.EnsureRanOnce();
        string path = Names.TempPath("bpffs");
        Directory.CreateDirectory(path);
        if (Libc.Mount("bpf", path, "bpf", 0, 0) != 0)
        {
            IOException error = Libc.LastError($"mount -t bpf bpf {path}");
            TryDeleteDirectory(path);
            throw error;
        }
        return new BpfFsMount(path);
    }

    /// <summary>True when <paramref name="path"/> is on a bpffs (statfs magic <see cref="BpfFsMagic"/>).</summary>
    public static bool IsBpfFs(string path) => Libc.GetFileSystemType(path) == BpfFsMagic;

    /// <summary>The <c>statfs(2)</c> <c>f_type</c> of <paramref name="path"/>.</summary>
    public static long GetFileSystemMagic(string path) => Libc.GetFileSystemType(path);

    /// <summary>True when <paramref name="path"/> is a mount point in this process's mount namespace (per <c>/proc/self/mountinfo</c>).</summary>
    public static bool IsMountPoint(string path)
    {
        string full = System.IO.Path.GetFullPath(path).TrimEnd('/');
        foreach (string line in File.ReadLines("/proc/self/mountinfo"))
        {
            string[] fields = line.Split(' ');
            if (fields.Length > 4 && Unescape(fields[4]) == full)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Unmounts (lazily with MNT_DETACH if busy) and removes the directory. Idempotent; never throws.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        if (Libc.Umount2(Path, 0) != 0 && IsMountPoint(Path))
        {
            if (Libc.Umount2(Path, Libc.MNT_DETACH) != 0)
            {
                Console.Error.WriteLine($"[EbpfProxy.Testing] {Libc.LastError($"umount2({Path}, MNT_DETACH)").Message}");
            }
        }
        TryDeleteDirectory(Path);
    }

    /// <inheritdoc/>
    public override string ToString() => Path;

    private static void TryDeleteDirectory(string path)
    {
        try
        {
            Directory.Delete(path, recursive: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"[EbpfProxy.Testing] cannot remove {path}: {e.Message}");
        }
    }

    // mountinfo escapes space, tab, newline and backslash as \ooo.
    private static string Unescape(string s)
    {
        if (!s.Contains('\\'))
        {
            return s;
        }
        var sb = new StringBuilder();
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && IsOctal(s, i + 1))
            {
                sb.Append((char)Convert.ToInt32(s.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                sb.Append(s[i]);
            }
        }
        return sb.ToString();
    }

    private static bool IsOctal(string s, int start) =>
        start + 3 <= s.Length && s.AsSpan(start, 3).IndexOfAnyExcept("01234567") < 0;
}
