using System.Runtime.InteropServices;

namespace LibBpf.Net;

/// <summary>
/// A BPF file descriptor (map, program, link...). Either owned (closed with <c>close(2)</c> on release,
/// e.g. from <c>bpf_obj_get</c> or <c>bpf_map_get_fd_by_id</c>) or borrowed from a libbpf object, in which
/// case it holds a reference on the object's handle so the object (and the fd) stays open while this
/// handle is in use.
/// </summary>
public sealed class SafeBpfFdHandle : SafeHandle
{
    private readonly SafeHandle? _owner;

    /// <summary>Creates an invalid handle.</summary>
    public SafeBpfFdHandle()
        : base(-1, ownsHandle: true)
    {
    }

    /// <summary>Wraps an existing fd.</summary>
    /// <param name="fd">The file descriptor.</param>
    /// <param name="ownsHandle">Whether releasing this handle closes the fd.</param>
    public SafeBpfFdHandle(int fd, bool ownsHandle)
        : base(-1, ownsHandle)
    {
        SetHandle(fd);
    }

    /// <summary>A borrowed fd whose lifetime is that of <paramref name="owner"/>.</summary>
    internal SafeBpfFdHandle(int fd, SafeHandle owner)
        : base(-1, ownsHandle: true)
    {
        bool added = false;
        owner.DangerousAddRef(ref added);
        _owner = owner;
        SetHandle(fd);
    }

    /// <inheritdoc />
    public override bool IsInvalid => handle < 0;

    /// <summary>True when the fd belongs to a libbpf object rather than to this handle.</summary>
    public bool IsBorrowed => _owner is not null;

    /// <summary>The raw fd number, without any lifetime guarantee (see <see cref="SafeHandle.DangerousGetHandle"/>).</summary>
    public int DangerousGetFd() => (int)handle;

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        if (_owner is not null)
        {
            _owner.DangerousRelease();
            return true;
        }
        return Interop.Libc.Close((int)handle) == 0;
    }

    /// <summary>Takes an owned fd returned by a libbpf call (negative = -errno).</summary>
    internal static SafeBpfFdHandle FromResult(int rc, string operation, string? kind, string? name)
    {
        Interop.ThrowIfNegative(rc, operation, kind, name);
        return new SafeBpfFdHandle(rc, ownsHandle: true);
    }
}

/// <summary>
/// Keeps a SafeHandle referenced for the duration of a native call (what the P/Invoke marshaller does
/// for SafeHandle parameters), for APIs that take an <c>int</c> fd or an interior pointer
/// (<c>struct bpf_map *</c>) whose lifetime is that of the handle.
/// </summary>
internal ref struct HandleLease
{
    private readonly SafeHandle _handle;
    private bool _added;

    public HandleLease(SafeHandle handle)
    {
        _handle = handle;
        _added = false;
        handle.DangerousAddRef(ref _added);
        Handle = handle.DangerousGetHandle();
    }

    public readonly nint Handle { get; }

    public readonly int Fd => (int)Handle;

    public void Dispose()
    {
        if (_added)
        {
            _added = false;
            _handle.DangerousRelease();
        }
    }
}
