using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace LibBpf.Net;

/// <summary>
/// Owns a <c>struct ring_buffer *</c>; released with <c>ring_buffer__free</c>. Also owns what the native
/// ring buffer points at (the callback's GCHandle and a reference on the map fd), released after it.
/// </summary>
public sealed class SafeRingBufferHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    private SafeBpfFdHandle? _map;
    private GCHandle _context;

    /// <summary>Creates an invalid handle (used by the marshaller).</summary>
    public SafeRingBufferHandle()
        : base(ownsHandle: true)
    {
    }

    /// <summary>Takes ownership of a ring buffer, its context GCHandle and one reference (already added) on its map.</summary>
    internal void Initialize(nint ringBuffer, GCHandle context, SafeBpfFdHandle referencedMap)
    {
        _context = context;
        _map = referencedMap;
        SetHandle(ringBuffer);
    }

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        Interop.LibBpf.RingBufferFree(handle);
        _map?.DangerousRelease();
        if (_context.IsAllocated)
        {
            _context.Free();
        }
        return true;
    }
}
