using System.Runtime.InteropServices;

namespace EbpfProxy.Testing.Native;

/// <summary>
/// The handful of libc calls the harness needs. Linux only.
/// All functions that can fail set errno; read it with <see cref="Marshal.GetLastPInvokeError"/>.
/// </summary>
internal static unsafe partial class Libc
{
    private const string Lib = "libc";

    public const int O_RDONLY = 0;
    public const int O_CLOEXEC = 0x80000; // same value on x86_64 and aarch64
    public const int CLONE_NEWNET = 0x40000000;

    public const int SIGKILL = 9;
    public const int SIGTERM = 15;

    public const int ESRCH = 3;
    public const int EINVAL = 22;
    public const int EBUSY = 16;
    public const int ENOENT = 2;

    public const int MNT_DETACH = 2;

    [LibraryImport(Lib, EntryPoint = "geteuid")]
    public static partial uint GetEuid();

    [LibraryImport(Lib, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Open(string path, int flags);

    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Lib, EntryPoint = "setns", SetLastError = true)]
    public static partial int SetNs(int fd, int nstype);

    [LibraryImport(Lib, EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    [LibraryImport(Lib, EntryPoint = "mount", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Mount(string source, string target, string fileSystemType, nuint flags, nint data);

    [LibraryImport(Lib, EntryPoint = "umount2", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Umount2(string target, int flags);

    [LibraryImport(Lib, EntryPoint = "statfs", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int StatFs(string path, byte* buffer);

    /// <summary>Throws an <see cref="IOException"/> describing the last errno.</summary>
    public static IOException LastError(string what)
    {
        int errno = Marshal.GetLastPInvokeError();
        return new IOException($"{what} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})") { HResult = errno };
    }

    /// <summary>
    /// Returns <c>f_type</c> of <c>statfs(2)</c> for <paramref name="path"/>. On 64-bit Linux
    /// (x86_64, aarch64) <c>struct statfs</c> starts with <c>__fsword_t f_type</c> (a long).
    /// </summary>
    public static long GetFileSystemType(string path)
    {
        // struct statfs is 120 bytes on 64-bit glibc; over-allocate to be safe.
        byte* buffer = stackalloc byte[512];
        if (StatFs(path, buffer) != 0)
        {
            throw LastError($"statfs({path})");
        }
        return *(long*)buffer;
    }
}
