using EbpfProxy.Datapath.Maps;
using LibBpf.Net;

namespace EbpfProxy.Datapath.Observability;

/// <summary>One reason's count in one direction, summed over the CPUs.</summary>
public sealed record ReasonCount(string Reason, string Direction, bool Drop, ulong Packets, ulong Bytes);

/// <summary>
/// The kernel's per-reason counters (the per-CPU <c>metrics</c> map), summed over the CPUs: read by
/// the daemon's <c>/metrics</c> and by `ebpf-proxy metrics`. Every defined reason is reported in both
/// directions, counted or not, so a series exists from start-up at 0.
/// </summary>
public static class KernelCounters
{
    /// <summary>Every reason the datapath defines (the retired and unspecified ones left out).</summary>
    public static IReadOnlyList<Reason> Reasons { get; } =
        [.. Enum.GetValues<Reason>().Where(r => r is not (Reason.Unspecified or Reason.DropNoBackend))];

    public static IReadOnlyList<ReasonCount> Read(BpfPerCpuMap<uint, MetricsValue> map)
    {
        var perCpu = new MetricsValue[map.CpuCount];
        var rows = new List<ReasonCount>(Reasons.Count * ReasonInfo.DirectionCount);
        foreach (var reason in Reasons)
        {
            foreach (var dir in (ReadOnlySpan<MetricsDirection>)[MetricsDirection.Ingress, MetricsDirection.Egress])
            {
                ulong packets = 0, bytes = 0;
                if (map.TryLookup(ReasonInfo.MetricsIndex(reason, dir), perCpu))
                {
                    foreach (var v in perCpu)
                    {
                        packets += v.Packets;
                        bytes += v.Bytes;
                    }
                }
                rows.Add(new ReasonCount(ReasonInfo.Name(reason), DirectionName(dir), ReasonInfo.IsDrop(reason), packets, bytes));
            }
        }
        return rows;
    }

    public static string DirectionName(MetricsDirection dir) => dir == MetricsDirection.Ingress ? "ingress" : "egress";
}
