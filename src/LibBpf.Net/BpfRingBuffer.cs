using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace LibBpf.Net;

/// <summary>Receives one ring buffer record; the span is only valid during the call.</summary>
public delegate void RingBufferCallback(ReadOnlySpan<byte> record);

/// <summary>
/// Consumer of a BPF_MAP_TYPE_RINGBUF map (<c>ring_buffer__new</c>). Records are delivered to the callback
/// on the thread calling <see cref="Poll"/> or <see cref="Consume"/>; use one thread at a time.
/// An exception thrown by the callback stops the current poll and is rethrown by it (that record is consumed).
/// </summary>
public sealed unsafe class BpfRingBuffer : IDisposable
{
    private readonly SafeRingBufferHandle _handle;
    private readonly CallbackState _state;
    private readonly string _mapName;

    /// <summary>Maps the ring buffer <paramref name="map"/> and registers <paramref name="callback"/>.</summary>
    public BpfRingBuffer(BpfMap map, RingBufferCallback callback)
    {
        ArgumentNullException.ThrowIfNull(map);
        ArgumentNullException.ThrowIfNull(callback);
        if (map.Type != BpfMapType.RingBuf)
        {
            throw new ArgumentException($"map '{map.Name}' is a {map.Type} map, not a ring buffer", nameof(map));
        }

        _mapName = map.Name;
        _state = new CallbackState(callback);
        _handle = new SafeRingBufferHandle();
        GCHandle context = GCHandle.Alloc(_state);
        bool added = false;
        try
        {
            map.Fd.DangerousAddRef(ref added);
            nint rb = Interop.LibBpf.RingBufferNew(map.Fd.DangerousGetFd(), &OnSample, GCHandle.ToIntPtr(context), null);
            if (rb == 0)
            {
                throw Interop.LastErrorException("ring_buffer__new", "map", map.Name);
            }
            _handle.Initialize(rb, context, map.Fd);
        }
        catch
        {
            if (added)
            {
                map.Fd.DangerousRelease();
            }
            context.Free();
            throw;
        }
    }

    /// <summary>The native handle.</summary>
    public SafeRingBufferHandle Handle => _handle;

    /// <summary>Waits up to <paramref name="timeoutMs"/> (-1: forever) for records and delivers them (<c>ring_buffer__poll</c>).</summary>
    /// <returns>The number of records delivered (0 on timeout or signal).</returns>
    public int Poll(int timeoutMs) => Complete(Interop.LibBpf.RingBufferPoll(_handle, timeoutMs), "ring_buffer__poll");

    /// <summary>Delivers the records available now, without waiting (<c>ring_buffer__consume</c>).</summary>
    /// <returns>The number of records delivered.</returns>
    public int Consume() => Complete(Interop.LibBpf.RingBufferConsume(_handle), "ring_buffer__consume");

    /// <summary>Frees the ring buffer (<c>ring_buffer__free</c>) once no poll is in flight.</summary>
    public void Dispose() => _handle.Dispose();

    private int Complete(int rc, string operation)
    {
        Exception? error = _state.Error;
        if (error is not null)
        {
            _state.Error = null;
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }
        if (rc == -Interop.EINTR)
        {
            return 0;
        }
        return Interop.ThrowIfNegative(rc, operation, "map", _mapName);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int OnSample(nint context, byte* data, nuint size)
    {
        var state = (CallbackState)GCHandle.FromIntPtr(context).Target!;
        try
        {
            state.Callback(new ReadOnlySpan<byte>(data, checked((int)size)));
            return 0;
        }
        catch (Exception e)
        {
            state.Error = e;
            return -Interop.ECANCELED;
        }
    }

    private sealed class CallbackState(RingBufferCallback callback)
    {
        public RingBufferCallback Callback { get; } = callback;

        public Exception? Error { get; set; }
    }
}
