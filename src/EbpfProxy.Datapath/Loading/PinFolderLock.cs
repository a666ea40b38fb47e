using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace EbpfProxy.Datapath.Loading;

/// <summary>
/// An exclusive <c>flock</c> on ebpf-proxy's pin folder, held by the daemon for its whole life, so
/// a second daemon on the same pins waits or stops with a clear message, and `ebpf-proxy cleanup`
/// can tell that a daemon is using the maps it would remove (issue 14 item 6). The lock is on the
/// folder itself (bpffs holds no regular files); the kernel drops it when the holder exits, even
/// by SIGKILL, so a crashed daemon never leaves a stale lock.
/// </summary>
public sealed partial class PinFolderLock : IDisposable
{
    private readonly SafeFileHandle _handle;

    private PinFolderLock(string path, SafeFileHandle handle)
    {
        Path = path;
        _handle = handle;
    }

    /// <summary>The locked folder.</summary>
    public string Path { get; }

    /// <summary>Takes the lock without waiting (creating the folder); null when someone else holds it.</summary>
    public static PinFolderLock? TryAcquire(string pinPath)
    {
        Directory.CreateDirectory(pinPath);
        var fd = Interop.Open(pinPath, Interop.O_RDONLY | Interop.O_DIRECTORY | Interop.O_CLOEXEC);
        if (fd < 0)
            throw new IOException($"cannot open the pin folder {pinPath}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (Interop.Flock(fd, Interop.LOCK_EX | Interop.LOCK_NB) == 0)
            return new PinFolderLock(pinPath, handle);
        var errno = Marshal.GetLastPInvokeError();
        handle.Dispose();
        if (errno == Interop.EWOULDBLOCK)
            return null;
        throw new IOException($"cannot lock the pin folder {pinPath}: {Marshal.GetPInvokeErrorMessage(errno)}");
    }

    /// <summary>
    /// Takes the lock, polling for up to <paramref name="wait"/> (a predecessor still shutting
    /// down during a rolling restart); <paramref name="onWaiting"/> runs once when it must wait.
    /// </summary>
    /// <exception cref="PinFolderBusyException">Still held after <paramref name="wait"/>.</exception>
    public static async Task<PinFolderLock> AcquireAsync(string pinPath, TimeSpan wait, Action? onWaiting, TimeProvider time, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        var waiting = false;
        while (true)
        {
            if (TryAcquire(pinPath) is { } held)
                return held;
            if (time.GetElapsedTime(started) >= wait)
                throw new PinFolderBusyException(pinPath, wait);
            if (!waiting)
            {
                waiting = true;
                onWaiting?.Invoke();
            }
            await Task.Delay(TimeSpan.FromMilliseconds(200), time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>True when a process (a running daemon) holds the lock on <paramref name="pinPath"/>.</summary>
    public static bool IsHeldByAnother(string pinPath)
    {
        if (!Directory.Exists(pinPath))
            return false;
        using var probe = TryAcquire(pinPath);
        return probe is null;
    }

    public void Dispose() => _handle.Dispose();

    private static partial class Interop
    {
        public const int O_RDONLY = 0, O_DIRECTORY = 0x10000, O_CLOEXEC = 0x80000;
        public const int LOCK_EX = 2, LOCK_NB = 4, EWOULDBLOCK = 11;

        [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        public static partial int Open(string path, int flags);

        [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
        public static partial int Flock(int fd, int operation);
    }
}

/// <summary>Another ebpf-proxy daemon holds the pin folder.</summary>
public sealed class PinFolderBusyException(string pinPath, TimeSpan waited)
    : Exception($"another ebpf-proxy daemon is running with the pins in {pinPath} (it holds the lock on that folder; waited {waited.TotalSeconds:0} s). " +
                "Stop it first, or give this one another --bpffs.")
{
    public string PinPath { get; } = pinPath;
}
