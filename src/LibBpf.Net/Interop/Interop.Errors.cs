using System.Runtime.InteropServices;

namespace LibBpf.Net;

internal static partial class Interop
{
    internal const int EPERM = 1;
    internal const int ENOENT = 2;
    internal const int EINTR = 4;
    internal const int E2BIG = 7;
    internal const int EBADF = 9;
    internal const int EAGAIN = 11;
    internal const int EEXIST = 17;
    internal const int EINVAL = 22;
    internal const int ENOSPC = 28;
    internal const int EOPNOTSUPP = 95;
    internal const int ECANCELED = 125;
    /// <summary>Kernel-internal "operation not supported" that leaks out of bpf(2) (e.g. batch ops on arrays).</summary>
    internal const int ENOTSUPP = 524;

    /// <summary>libbpf 1.x convention: a negative return is -errno.</summary>
    internal static int ThrowIfNegative(int rc, string operation, string? kind, string? name)
    {
        if (rc < 0)
        {
            throw new BpfException(-rc, operation, kind, name);
        }
        return rc;
    }

    /// <summary>libc convention: -1 with errno (requires SetLastError = true on the import).</summary>
    internal static int ThrowIfMinusOneErrno(int rc, string operation, string? kind, string? name)
    {
        if (rc == -1)
        {
            throw new BpfException(Marshal.GetLastPInvokeError(), operation, kind, name);
        }
        return rc;
    }

    /// <summary>For pointer-returning libbpf/libc functions: NULL with errno set.</summary>
    internal static BpfException LastErrorException(string operation, string? kind, string? name, string? log = null)
    {
        int errno = Marshal.GetLastPInvokeError();
        return new BpfException(errno == 0 ? EINVAL : errno, operation, kind, name, detail: null, log: log);
    }
}
