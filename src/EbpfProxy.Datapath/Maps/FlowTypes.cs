using System.Runtime.InteropServices;

namespace EbpfProxy.Datapath.Maps;

// C# mirrors of bpf/lib/flow_types.h.

/// <summary>struct flow_config: flow events per second and CPU (0: none), written by `observe` while it runs.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FlowConfig
{
    public uint Rate;
    public uint Pad;
}

/// <summary>struct flow_rate_state (per CPU): the rate limiter's window, and what it suppressed.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FlowRateState
{
    public ulong WindowNs;
    public uint Sent;
    public uint Suppressed;
}

/// <summary>struct flow_event: a new connection from the flow_events ring buffer, before and after translation.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FlowEvent
{
    public ulong TsNs;
    public Be32Address SaddrBe;
    public Be32Address DaddrBe;
    public Be16 SportBe;
    public Be16 DportBe;
    public Be32Address XlatSaddrBe;
    public Be32Address XlatDaddrBe;
    public Be16 XlatSportBe;
    public Be16 XlatDportBe;
    public uint Ifindex;
    public uint PolicyEndpoint;
    public uint PolicyIdentity;
    public ushort RevNatId;
    public byte Proto;
    public byte Dir;
    public byte Reason;
    public byte PolicyVerdict;
    public ushort Pad;
    public uint Pad2;

    /// <summary>Decodes a ring buffer record (null when it is too short to be one).</summary>
    public static FlowEvent? Read(ReadOnlySpan<byte> record) =>
        record.Length >= Marshal.SizeOf<FlowEvent>() ? MemoryMarshal.Read<FlowEvent>(record) : null;
}
