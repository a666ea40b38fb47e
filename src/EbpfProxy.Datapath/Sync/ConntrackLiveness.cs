using System.Diagnostics;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Planning;
using EbpfProxy.Datapath.Maps;

namespace EbpfProxy.Datapath.Sync;

/// <summary>
/// When a conntrack entry still describes a connection, by the rules of bpf/lib/conntrack.h
/// (ct_lifetime): since its last packet, 6 h for TCP, 60 s for other protocols, 10 s once closing.
/// The datapath stamps entries with bpf_ktime_get_ns (CLOCK_MONOTONIC), which is the clock .NET's
/// <see cref="Stopwatch"/> reads on Linux.
/// </summary>
public static class ConntrackLiveness
{
    public const ulong TcpLifetimeNs = 21600UL * 1_000_000_000;
    public const ulong OtherLifetimeNs = 60UL * 1_000_000_000;
    public const ulong ClosingLifetimeNs = 10UL * 1_000_000_000;

    /// <summary>The kernel's monotonic clock in nanoseconds (what bpf_ktime_get_ns returns).</summary>
    public static ulong KernelNowNs() => (ulong)(Stopwatch.GetTimestamp() * (1_000_000_000.0 / Stopwatch.Frequency));

    public static ulong Lifetime(in Ct4Key key, in CtEntry entry) =>
        (entry.Flags & CtFlags.Closing) != 0 ? ClosingLifetimeNs : key.Proto == (byte)L4Protocol.Tcp ? TcpLifetimeNs : OtherLifetimeNs;

    /// <summary>As ct_entry_live's first test (unsigned: an entry stamped after <paramref name="nowNs"/> counts as dead, as in BPF).</summary>
    public static bool IsLive(in Ct4Key key, in CtEntry entry, ulong nowNs) => nowNs - entry.LastSeenNs <= Lifetime(key, entry);

    /// <summary>
    /// Whether an entry keeps a draining backend in the maps (<see cref="LbPlanner"/>): a live
    /// service-direction entry of a TCP or SCTP connection.
    /// </summary>
    public static bool HoldsBackend(in Ct4Key key, in CtEntry entry, ulong nowNs) =>
        key.Dir == CtDirection.Service && LbPlanner.Drains((L4Protocol)key.Proto) && IsLive(key, entry, nowNs);
}
