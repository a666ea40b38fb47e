using Microsoft.Win32.SafeHandles;

namespace LibBpf.Net;

/// <summary>Owns a <c>struct bpf_object *</c>; released with <c>bpf_object__close</c>.</summary>
public sealed class SafeBpfObjectHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    /// <summary>Creates an invalid handle (used by the marshaller).</summary>
    public SafeBpfObjectHandle()
        : base(ownsHandle: true)
    {
    }

    internal SafeBpfObjectHandle(nint obj)
        : base(ownsHandle: true)
    {
        SetHandle(obj);
    }

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        Interop.LibBpf.ObjectClose(handle);
        return true;
    }
}
