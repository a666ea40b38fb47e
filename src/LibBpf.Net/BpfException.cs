using System.Runtime.InteropServices;
using System.Text;

namespace LibBpf.Net;

/// <summary>
/// A failed libbpf, bpf(2) or related system call. Message format:
/// <c>bpf_map_update_elem on map 'lb4_services' failed: E2BIG (errno 7): Argument list too long</c>.
/// </summary>
public class BpfException : Exception
{
    /// <summary>Creates an exception for a failed operation.</summary>
    /// <param name="errno">Positive errno value (libbpf returns it negated).</param>
    /// <param name="operation">The native function, e.g. <c>bpf_map_update_elem</c>.</param>
    /// <param name="objectKind">What <paramref name="objectName"/> names: "map", "program", "object", "path", "interface"...</param>
    /// <param name="objectName">Map/program/object name, pin path or interface.</param>
    /// <param name="detail">Extra context appended to the message.</param>
    /// <param name="log">Captured libbpf output (e.g. the verifier log), appended to the message.</param>
    public BpfException(int errno, string operation, string? objectKind = null, string? objectName = null, string? detail = null, string? log = null)
        : base(FormatMessage(errno, operation, objectKind, objectName, detail, log))
    {
        Errno = errno;
        Operation = operation;
        ObjectKind = objectKind;
        ObjectName = objectName;
        Log = log;
    }

    /// <summary>Positive errno (e.g. 7 for E2BIG).</summary>
    public int Errno { get; }

    /// <summary>Symbolic errno name, e.g. "E2BIG".</summary>
    public string ErrnoName => GetErrnoName(Errno);

    /// <summary>The failed native operation, e.g. "bpf_map_update_elem".</summary>
    public string Operation { get; }

    /// <summary>What <see cref="ObjectName"/> refers to ("map", "program", "object", "path", "interface"...).</summary>
    public string? ObjectKind { get; }

    /// <summary>The map, program, object, pin path or interface the operation was applied to.</summary>
    public string? ObjectName { get; }

    /// <summary>libbpf log output captured during the operation (verifier log on a failed load), if any.</summary>
    public string? Log { get; }

    private static string FormatMessage(int errno, string operation, string? kind, string? name, string? detail, string? log)
    {
        var sb = new StringBuilder(operation);
        if (name is not null)
        {
            sb.Append(" on ");
            if (kind is not null)
            {
                sb.Append(kind).Append(' ');
            }
            sb.Append('\'').Append(name).Append('\'');
        }
        sb.Append(" failed: ").Append(GetErrnoName(errno)).Append(" (errno ").Append(errno).Append("): ").Append(Describe(errno));
        if (!string.IsNullOrEmpty(detail))
        {
            sb.Append(" (").Append(detail).Append(')');
        }
        if (!string.IsNullOrWhiteSpace(log))
        {
            sb.Append(Environment.NewLine).Append("libbpf log:").Append(Environment.NewLine).Append(log.TrimEnd());
        }
        return sb.ToString();
    }

    /// <summary>Human-readable description: libbpf's own codes (4000+), kernel-internal codes (512+), else strerror.</summary>
    private static string Describe(int errno) => errno switch
    {
        Interop.ENOTSUPP => "Operation not supported (kernel ENOTSUPP)",
        >= 4000 and < 4100 => Interop.LibBpf.StrError(errno),
        _ => Marshal.GetPInvokeErrorMessage(errno),
    };

    /// <summary>Returns the symbolic name of a Linux errno ("E2BIG"), or "E#n" when unknown.</summary>
    public static string GetErrnoName(int errno) =>
        errno > 0 && errno < s_names.Length && s_names[errno].Length > 0 ? s_names[errno] : errno switch
        {
            512 => "ERESTARTSYS",
            514 => "ERESTARTNOHAND",
            516 => "ERESTART_RESTARTBLOCK",
            521 => "EBADHANDLE",
            523 => "EBADTYPE",
            524 => "ENOTSUPP",
            525 => "ETOOSMALL",
            526 => "ESERVERFAULT",
            >= 4000 and < 4100 => "LIBBPF_ERRNO_" + errno,
            _ => "E#" + errno,
        };

    // asm-generic errno numbering (x86_64, arm64, riscv64 ...).
    private static readonly string[] s_names =
    [
        "", "EPERM", "ENOENT", "ESRCH", "EINTR", "EIO", "ENXIO", "E2BIG", "ENOEXEC", "EBADF", "ECHILD",
        "EAGAIN", "ENOMEM", "EACCES", "EFAULT", "ENOTBLK", "EBUSY", "EEXIST", "EXDEV", "ENODEV", "ENOTDIR",
        "EISDIR", "EINVAL", "ENFILE", "EMFILE", "ENOTTY", "ETXTBSY", "EFBIG", "ENOSPC", "ESPIPE", "EROFS",
        "EMLINK", "EPIPE", "EDOM", "ERANGE", "EDEADLK", "ENAMETOOLONG", "ENOLCK", "ENOSYS", "ENOTEMPTY", "ELOOP",
        "", "ENOMSG", "EIDRM", "ECHRNG", "EL2NSYNC", "EL3HLT", "EL3RST", "ELNRNG", "EUNATCH", "ENOCSI",
        "EL2HLT", "EBADE", "EBADR", "EXFULL", "ENOANO", "EBADRQC", "EBADSLT", "", "EBFONT", "ENOSTR",
        "ENODATA", "ETIME", "ENOSR", "ENONET", "ENOPKG", "EREMOTE", "ENOLINK", "EADV", "ESRMNT", "ECOMM",
        "EPROTO", "EMULTIHOP", "EDOTDOT", "EBADMSG", "EOVERFLOW", "ENOTUNIQ", "EBADFD", "EREMCHG", "ELIBACC", "ELIBBAD",
        "ELIBSCN", "ELIBMAX", "ELIBEXEC", "EILSEQ", "ERESTART", "ESTRPIPE", "EUSERS", "ENOTSOCK", "EDESTADDRREQ", "EMSGSIZE",
        "EPROTOTYPE", "ENOPROTOOPT", "EPROTONOSUPPORT", "ESOCKTNOSUPPORT", "EOPNOTSUPP", "EPFNOSUPPORT", "EAFNOSUPPORT", "EADDRINUSE", "EADDRNOTAVAIL", "ENETDOWN",
        "ENETUNREACH", "ENETRESET", "ECONNABORTED", "ECONNRESET", "ENOBUFS", "EISCONN", "ENOTCONN", "ESHUTDOWN", "ETOOMANYREFS", "ETIMEDOUT",
        "ECONNREFUSED", "EHOSTDOWN", "EHOSTUNREACH", "EALREADY", "EINPROGRESS", "ESTALE", "EUCLEAN", "ENOTNAM", "ENAVAIL", "EISNAM",
        "EREMOTEIO", "EDQUOT", "ENOMEDIUM", "EMEDIUMTYPE", "ECANCELED", "ENOKEY", "EKEYEXPIRED", "EKEYREVOKED", "EKEYREJECTED", "EOWNERDEAD",
        "ENOTRECOVERABLE", "ERFKILL", "EHWPOISON",
    ];
}
