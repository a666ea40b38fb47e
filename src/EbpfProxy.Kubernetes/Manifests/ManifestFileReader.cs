using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace EbpfProxy.Kubernetes.Manifests;

/// <summary>
/// Reads one manifest file only when it is safe to: a regular file (after following symlinks)
/// no larger than <see cref="ManifestReadLimits.MaxFileBytes"/>. A FIFO would block the reader
/// forever, <c>/dev/zero</c> would grow it without end, a symlink loop never resolves: each is
/// refused with <see cref="ManifestReadException"/> naming what it is.
/// </summary>
/// <remarks>
/// The file is opened with <c>O_NONBLOCK</c> (so opening a FIFO cannot block) and its type and
/// size are taken from the open descriptor with <c>statx</c>, so a file swapped between a check
/// and the open cannot slip through. The read itself stops one byte past the limit.
/// </remarks>
internal static partial class ManifestFileReader
{
    /// <summary>The file's text (UTF-8, or what its byte-order mark says).</summary>
    /// <exception cref="FileNotFoundException">Gone, or a dangling symlink: treated as deleted.</exception>
    /// <exception cref="ManifestReadException">Not a file that may be read; the message says why.</exception>
    public static string Read(string path, ManifestReadLimits limits)
    {
        var fd = Interop.Open(path, Interop.O_RDONLY | Interop.O_NONBLOCK | Interop.O_CLOEXEC);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw errno switch
            {
                Interop.ENOENT or Interop.ENOTDIR => new FileNotFoundException("no such file", path),
                Interop.ELOOP => new ManifestReadException("a symbolic link loop (too many levels of symbolic links); skipped"),
                Interop.EACCES or Interop.EPERM => new ManifestReadException("permission denied; skipped"),
                _ => new ManifestReadException($"cannot open the file: {Marshal.GetPInvokeErrorMessage(errno)}; skipped"),
            };
        }

        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        var (mode, size) = Interop.Stat(handle);
        var type = mode & Interop.S_IFMT;
        if (type != Interop.S_IFREG)
            throw new ManifestReadException($"not a regular file ({TypeName(type)}); only regular files are read");
        if (size > limits.MaxFileBytes)
            throw new ManifestReadException(TooLarge(size, limits));

        // The size may change while reading: read at most one byte past the limit, whatever stat said.
        using var stream = new FileStream(handle, FileAccess.Read, bufferSize: 0);
        var buffer = new byte[Math.Min(size, limits.MaxFileBytes) + 1];
        var length = 0;
        while (true)
        {
            if (length == buffer.Length)
            {
                if (buffer.Length > limits.MaxFileBytes)
                    throw new ManifestReadException(TooLarge(length, limits));
                Array.Resize(ref buffer, (int)Math.Min((long)buffer.Length * 2, limits.MaxFileBytes + 1));
            }
            var read = stream.Read(buffer, length, buffer.Length - length);
            if (read == 0)
                break;
            length += read;
        }
        using var reader = new StreamReader(new MemoryStream(buffer, 0, length), Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        return reader.ReadToEnd();
    }

    private static string TooLarge(long size, ManifestReadLimits limits) =>
        $"larger than {limits.MaxFileBytes / (1024 * 1024)} MiB ({size:N0} bytes or more); the file is not read";

    private static string TypeName(uint type) => type switch
    {
        Interop.S_IFIFO => "a FIFO",
        Interop.S_IFCHR => "a character device",
        Interop.S_IFBLK => "a block device",
        Interop.S_IFSOCK => "a socket",
        Interop.S_IFDIR => "a directory",
        _ => $"file type 0{type >> 12:o}",
    };

    private static partial class Interop
    {
        public const int O_RDONLY = 0;
        public const int O_NONBLOCK = 0x800;
        public const int O_CLOEXEC = 0x80000;
        public const int ENOENT = 2, EACCES = 13, EPERM = 1, ENOTDIR = 20, ELOOP = 40;
        public const uint S_IFMT = 0xF000, S_IFIFO = 0x1000, S_IFCHR = 0x2000, S_IFDIR = 0x4000,
            S_IFBLK = 0x6000, S_IFREG = 0x8000, S_IFSOCK = 0xC000;

        private const int AT_EMPTY_PATH = 0x1000;
        private const uint STATX_TYPE = 0x1, STATX_SIZE = 0x200;

        // struct statx has the same layout on every architecture (linux/stat.h):
        // stx_mode is the u16 at offset 28, stx_size the u64 at offset 40; 256 bytes in all.
        private const int StatxSize = 256, ModeOffset = 28, SizeOffset = 40;

        [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        public static partial int Open(string path, int flags);

        [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        private static unsafe partial int Statx(int dirfd, string path, int flags, uint mask, byte* buffer);

        public static unsafe (uint Mode, long Size) Stat(SafeFileHandle handle)
        {
            var buffer = stackalloc byte[StatxSize];
            var added = false;
            try
            {
                handle.DangerousAddRef(ref added);
                if (Statx((int)handle.DangerousGetHandle(), "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, buffer) != 0)
                    throw new ManifestReadException($"cannot stat the file: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
            }
            finally
            {
                if (added)
                    handle.DangerousRelease();
            }
            return (*(ushort*)(buffer + ModeOffset), *(long*)(buffer + SizeOffset));
        }
    }
}

/// <summary>A manifest file that is not read at all (its type, its size, a symlink loop); the message says why.</summary>
public sealed class ManifestReadException(string message) : IOException(message);
