using EbpfProxy.Datapath.Maps;
using LibBpf.Net;

namespace EbpfProxy.Datapath.Observe;

/// <summary>
/// Reads the drop_events ring buffer: every packet the datapath drops, with its reason, direction,
/// tuple and (for NetworkPolicy drops) the local endpoint and the peer's identity. One reader at a
/// time consumes the buffer; events that find it full are lost (the per-reason counters still
/// count them).
/// </summary>
public sealed class DropEventReader : IDisposable
{
    private readonly BpfRingBuffer _ring;
    private readonly List<DropEvent> _batch = [];

    public DropEventReader(BpfMap ring) =>
        _ring = new BpfRingBuffer(ring, record =>
        {
            if (DropEvent.Read(record) is { } ev)
                _batch.Add(ev);
        });

    /// <summary>Waits up to <paramref name="timeoutMs"/> for events and returns those that arrived (maybe none).</summary>
    public IReadOnlyList<DropEvent> Poll(int timeoutMs)
    {
        _batch.Clear();
        _ring.Poll(timeoutMs);
        return [.. _batch];
    }

    public void Dispose() => _ring.Dispose();
}
