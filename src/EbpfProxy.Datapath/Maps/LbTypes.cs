using System.Runtime.InteropServices;

namespace EbpfProxy.Datapath.Maps;

// C# mirrors of bpf/lib/lb_types.h. Field names are the C names in PascalCase; the layout test
// (tests/EbpfProxy.Datapath.Tests/LayoutTests.cs) compares sizes and offsets with the object's BTF.

/// <summary>struct lb4_key.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Lb4Key
{
    public Be32Address AddressBe;
    public Be16 PortBe;
    public byte Proto;
    public byte Scope;
    public ushort Slot;
    public ushort Pad;
}

/// <summary>struct lb4_service: slot 0 is the service entry, other slots name a backend.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Lb4Service
{
    public uint BackendId;
    public ushort Count;
    public ushort TerminatingCount;
    public ushort RevNatId;
    public ushort Flags;
    public uint AffinityTimeout;
}

/// <summary>struct lb4_backend.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct Lb4Backend
{
    public Be32Address AddressBe;
    public Be16 PortBe;
    public byte Proto;
    public byte Flags;
    public byte Zone;
    public fixed byte Pad[3];
}

/// <summary>struct lb4_reverse_nat.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Lb4ReverseNat
{
    public Be32Address AddressBe;
    public Be16 PortBe;
    public ushort Pad;
}

/// <summary>struct lb_name: NUL-padded UTF-8 "namespace/name:port".</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct LbName
{
    public const int Length = 128;
    public fixed byte Name[Length];

    public static LbName From(string name)
    {
        var v = default(LbName);
        var span = new Span<byte>(v.Name, Length - 1);
        System.Text.Encoding.UTF8.GetBytes(name.AsSpan(0, Math.Min(name.Length, Length - 1)), span);
        return v;
    }

    public override readonly string ToString()
    {
        fixed (byte* p = Name)
        {
            var span = new ReadOnlySpan<byte>(p, Length);
            int end = span.IndexOf((byte)0);
            return System.Text.Encoding.UTF8.GetString(end < 0 ? span : span[..end]);
        }
    }
}

/// <summary>struct lb_config: node-wide settings, one entry.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct LbConfig
{
    public Be32Address ServiceCidrBe;
    public Be32Address ServiceMaskBe;
    public uint Flags;
    public uint Pad;
}

/// <summary>LB_NAT_F_* flags of <see cref="LbNatConfig"/>.</summary>
[Flags]
public enum LbNatFlags : uint
{
    None = 0,
    MasqueradeAll = 1 << 0,
}

/// <summary>struct lb_nat_config: masquerade settings, one entry.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct LbNatConfig
{
    public Be32Address SnatAddrBe;
    public Be32Address ClusterCidrBe;
    public Be32Address ClusterMaskBe;
    public LbNatFlags Flags;
}

/// <summary>struct lb4_src_range_key: an LB frontend and an allowed client prefix (LPM trie key).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Lb4SrcRangeKey
{
    /// <summary>Bits compared from AddressBe on: the frontend's 64 plus the source prefix length.</summary>
    public const uint FrontendBits = 64;

    public uint Prefixlen;
    public Be32Address AddressBe;
    public Be16 PortBe;
    public byte Proto;
    public byte Pad;
    public Be32Address SourceBe;
}

/// <summary>struct lb_host_config: the node's network namespace, for the socket hooks.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct LbHostConfig
{
    public ulong NetnsCookie;
    public uint Flags;
    public uint Pad;
}

/// <summary>struct lb4_sock_key: a host socket's translated peer.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Lb4SockKey
{
    public ulong Cookie;
    public Be32Address AddressBe;
    public Be16 PortBe;
    public byte Proto;
    public byte Pad;
}

/// <summary>struct lb4_sock_value: the frontend the application asked for.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Lb4SockValue
{
    public Be32Address AddressBe;
    public Be16 PortBe;
    public ushort RevNatId;
}

/// <summary>struct lb4_affinity_key: a client pinned to a backend of one service port.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Lb4AffinityKey
{
    public Be32Address ClientBe;
    public ushort RevNatId;
    public ushort Pad;
}

/// <summary>struct lb_affinity_value.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct LbAffinityValue
{
    public ulong LastUsedNs;
    public uint BackendId;
    public uint Pad;
}
