using System.Runtime.InteropServices;

namespace EbpfProxy.Datapath.Maps;

// C# mirrors of bpf/lib/metrics_types.h. The numbers are an ABI: never renumber or reuse one.

/// <summary>Why the datapath let a packet go on, or dropped it (enum reason).</summary>
public enum Reason : byte
{
    Unspecified = 0,
    ForwardServiceNew = 1,
    ForwardServiceEstablished = 2,
    ForwardReverseNat = 3,
    PassNotService = 4,
    PassUnsupported = 5,
    ForwardServiceReselected = 6,
    ForwardSnatReverse = 7,
    /// <summary>An ICMP error about a service connection, its quote (and sender, when the backend sent it) restored to the frontend.</summary>
    ForwardIcmpReverseNat = 8,
    /// <summary>An ICMP error about a masqueraded connection, translated back and sent on to the client.</summary>
    ForwardIcmpSnatReverse = 9,

    DropInvalid = 128,
    DropNoBackend = 129,
    DropBackendMissing = 130,
    DropConntrackCreate = 131,
    DropNat = 132,
    RejectNoEndpoint = 133,
    RejectNoPort = 134,
    DropUnallocatedVip = 135,
    DropRejectFailed = 136,
    DropNoLocalEndpoint = 137,
    DropSctpPort = 138,
    PolicyIngressDenied = 139,
    PolicyEgressDenied = 140,
    DropSourceRange = 141,
    DropSnatPort = 142,
    /// <summary>A later IP fragment whose first was not seen, where a translation or an isolated pod is involved.</summary>
    DropFragmentNotFound = 143,
    /// <summary>NetworkPolicy: an ICMP error about no connection the isolated pod's policy admitted.</summary>
    PolicyIcmpUnrelated = 144,
}

public enum MetricsDirection : byte
{
    Ingress = 0,
    Egress = 1,
}

/// <summary>struct metrics_value (per CPU).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct MetricsValue
{
    public ulong Packets;
    public ulong Bytes;
}

/// <summary>struct drop_event: one dropped packet from the drop_events ring buffer.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct DropEvent
{
    /// <summary>bpf_ktime_get_ns() when the packet was dropped (CLOCK_MONOTONIC; <see cref="LibBpf.Net.KernelClock"/> converts it).</summary>
    public ulong TsNs;
    public Be32Address SaddrBe;
    public Be32Address DaddrBe;
    public Be16 SportBe;
    public Be16 DportBe;
    public byte Proto;
    public byte Dir;
    public byte Reason;
    public byte Pad;
    public uint Ifindex;
    public uint PolicyEndpoint;
    public uint PolicyIdentity;

    /// <summary>Decodes a ring buffer record (null when it is too short to be one).</summary>
    public static DropEvent? Read(ReadOnlySpan<byte> record) =>
        record.Length >= Marshal.SizeOf<DropEvent>() ? MemoryMarshal.Read<DropEvent>(record) : null;

    public override readonly string ToString()
    {
        var proto = Proto switch { 6 => "TCP", 17 => "UDP", 132 => "SCTP", var n => $"proto {n}" };
        var text = $"{ReasonInfo.Name((Reason)Reason)} {(MetricsDirection)Dir} ifindex {Ifindex}: {SaddrBe}:{SportBe} -> {DaddrBe}:{DportBe} {proto}";
        return PolicyEndpoint != 0 ? text + $" (endpoint {PolicyEndpoint}, peer identity {PolicyIdentity})" : text;
    }
}

public static class ReasonInfo
{
    public const int Max = 256;
    public const int DirectionCount = 2;

    public static bool IsDrop(Reason reason) => (byte)reason >= 128;

    public static uint MetricsIndex(Reason reason, MetricsDirection dir) => (uint)reason * DirectionCount + (uint)dir;

    /// <summary>A stable snake_case name for metrics labels and JSON.</summary>
    public static string Name(Reason reason) => reason switch
    {
        Reason.ForwardServiceNew => "service_new",
        Reason.ForwardServiceEstablished => "service_established",
        Reason.ForwardReverseNat => "reverse_nat",
        Reason.PassNotService => "not_service",
        Reason.PassUnsupported => "unsupported",
        Reason.ForwardServiceReselected => "service_reselected",
        Reason.ForwardSnatReverse => "masquerade_reply",
        Reason.ForwardIcmpReverseNat => "icmp_error_reverse_nat",
        Reason.ForwardIcmpSnatReverse => "icmp_error_masquerade_reply",
        Reason.DropInvalid => "invalid_packet",
        Reason.DropNoBackend => "no_backend",
        Reason.DropBackendMissing => "backend_missing",
        Reason.DropConntrackCreate => "conntrack_create_failed",
        Reason.DropNat => "nat_failed",
        Reason.RejectNoEndpoint => "reject_no_endpoint",
        Reason.RejectNoPort => "reject_undefined_port",
        Reason.DropUnallocatedVip => "unallocated_service_ip",
        Reason.DropRejectFailed => "reject_failed",
        Reason.DropNoLocalEndpoint => "no_local_endpoint",
        Reason.DropSctpPort => "sctp_port_translation_unsupported",
        Reason.PolicyIngressDenied => "policy_ingress_denied",
        Reason.PolicyEgressDenied => "policy_egress_denied",
        Reason.DropSourceRange => "lb_source_range",
        Reason.DropSnatPort => "masquerade_port_exhausted",
        Reason.DropFragmentNotFound => "fragment_without_first",
        Reason.PolicyIcmpUnrelated => "policy_icmp_unrelated",
        _ => $"reason_{(byte)reason}",
    };
}

/// <summary>TRACE_F_* in bpf/lib/trace_types.h.</summary>
[Flags]
public enum TraceFlags : ushort
{
    None = 0,
    Frontend = 1 << 0,
    ConntrackHit = 1 << 1,
    Affinity = 1 << 2,
    Wildcard = 1 << 3,
    Masquerade = 1 << 4,
    SnatReply = 1 << 5,
}

/// <summary>struct trace_record: the decision of the last traced packet.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct TraceRecord
{
    /// <summary>TRACE_MARK: skb->mark of a traced packet.</summary>
    public const uint Mark = 0x7eb9f00d;

    public uint Reason;
    public uint BackendId;
    public ushort RevNatId;
    public TraceFlags Flags;
    public uint Seq;
    public uint PolicyEndpoint;
    public uint PolicyIdentity;
    public PolicyVerdict PolicyVerdict;
    public fixed byte PolicyPad[3];
}
