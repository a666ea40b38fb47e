using System.Runtime.InteropServices;

namespace EbpfProxy.Datapath.Maps;

// C# mirrors of bpf/lib/conntrack_types.h.

public enum CtDirection : byte
{
    Service = 1,
    Reply = 2,
    SnatOut = 3,
    SnatIn = 4,
    /// <summary>A connection a local pod's policy admitted, keyed as that pod sees it (pod first); in pol_ct4.</summary>
    Policy = 5,
}

[Flags]
public enum CtFlags : ushort
{
    None = 0,
    SeenReply = 1 << 0,
    Closing = 1 << 1,
    Snat = 1 << 2,
    /// <summary>Retired: policy entries kept in ct4 before pol_ct4 (the peer opened the connection); read only to move them over.</summary>
    PolicyInbound = 1 << 3,
}

/// <summary>struct ct4_key.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Ct4Key
{
    public Be32Address SaddrBe;
    public Be32Address DaddrBe;
    public Be16 SportBe;
    public Be16 DportBe;
    public byte Proto;
    public CtDirection Dir;
    public ushort Pad;
}

/// <summary>struct ct_entry.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct CtEntry
{
    public ulong LastSeenNs;
    public ulong CreatedNs;
    public uint BackendId;
    public ushort RevNatId;
    public CtFlags Flags;
    public ulong Packets;
}

/// <summary>struct snat4_entry: one direction of a masqueraded connection's source rewrite.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Snat4Entry
{
    public ulong CreatedNs;
    public Be32Address AddrBe;
    public Be16 PortBe;
    public ushort Pad;
}

/// <summary>struct frag4_key: one fragmented datagram as a hook sees it (bpf/lib/frag.h).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Frag4Key
{
    public Be32Address SaddrBe;
    public Be32Address DaddrBe;
    public Be16 IdBe;
    public byte Proto;
    public byte Pad;
}

/// <summary>struct frag4_entry: the first fragment's ports and the policy drop it got per pod hook.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Frag4Entry
{
    public Be16 SportBe;
    public Be16 DportBe;
    public byte FromPodReason;
    public byte ToPodReason;
    public ushort Pad;
}
