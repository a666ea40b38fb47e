using System.Runtime.InteropServices;

namespace EbpfProxy.Datapath.Maps;

// C# mirrors of bpf/lib/policy_types.h, checked against the object's BTF by LayoutTests.

/// <summary>Reserved identities (POL_ID_*); the daemon allocates from <see cref="FirstAllocated"/> on.</summary>
public static class PolicyIdentity
{
    /// <summary>Any peer: a wildcard in rule keys only, never in the ipcache.</summary>
    public const uint Any = 0;
    /// <summary>This node's own addresses; always admitted by ingress.</summary>
    public const uint Host = 1;
    /// <summary>An address no ipcache entry covers.</summary>
    public const uint World = 2;
    public const uint FirstAllocated = 256;
}

/// <summary>POL_DIR_*: which side of a connection a rule admits.</summary>
public enum PolicyDirection : byte
{
    Ingress = 1,
    Egress = 2,
}

/// <summary>POL_EP_F_*: the directions in which some policy isolates a local pod.</summary>
[Flags]
public enum PolicyIsolation : uint
{
    None = 0,
    Ingress = 1 << 0,
    Egress = 1 << 1,
}

/// <summary>POL_VERDICT_*: how policy treated a traced packet (<see cref="TraceRecord.PolicyVerdict"/>).</summary>
public enum PolicyVerdict : byte
{
    None = 0,
    Tracked = 1,
    NotIsolated = 2,
    AllowIdentity = 3,
    AllowAny = 4,
    AllowHost = 5,
    Deny = 6,
}

/// <summary>struct pol_ipcache_key: an address prefix (LPM trie key).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PolIpcacheKey
{
    public uint PrefixLen;
    public Be32Address AddrBe;
}

/// <summary>struct pol_ipcache_entry.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PolIpcacheEntry
{
    public uint Identity;
    public uint Flags;
}

/// <summary>struct pol_endpoint: value of pol_endpoints, keyed by a local pod's address.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PolEndpoint
{
    public uint EndpointId;
    public uint Identity;
    public PolicyIsolation Flags;
}

/// <summary>struct pol_rule_key (LPM trie key; <see cref="Policy.PolicyRule"/> is its model).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PolRuleKey
{
    /// <summary>POL_PREFIX_ALL: endpoint, identity and direction; every protocol and port.</summary>
    public const uint PrefixAll = 72;
    /// <summary>POL_PREFIX_PROTO: every port of one protocol.</summary>
    public const uint PrefixProto = 80;
    /// <summary>POL_PREFIX_FULL: one port; what lookups use.</summary>
    public const uint PrefixFull = 96;

    public uint PrefixLen;
    public uint EndpointId;
    public uint Identity;
    public PolicyDirection Dir;
    public byte Proto;
    public Be16 PortBe;
}

/// <summary>struct pol_rule: presence admits.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PolRule
{
    public uint Flags;
}

/// <summary>struct pol_ep_name: value of pol_ep_names (CLI only), keyed by a local pod's address.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct PolEpName
{
    /// <summary>POL_EP_NAME_LEN.</summary>
    public const int NameLength = 320;

    public uint EndpointId;
    public fixed byte Name[NameLength];

    public static PolEpName From(uint endpointId, string name)
    {
        var v = new PolEpName { EndpointId = endpointId };
        FixedText.Write(name, new Span<byte>(v.Name, NameLength));
        return v;
    }

    /// <summary>"namespace/name".</summary>
    public readonly string NameText()
    {
        fixed (byte* p = Name)
            return FixedText.Read(new ReadOnlySpan<byte>(p, NameLength));
    }
}

/// <summary>struct pol_id_name: value of pol_id_names (CLI only), keyed by an allocated identity.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct PolIdName
{
    /// <summary>POL_ID_NAME_LEN.</summary>
    public const int TextLength = 512;

    public fixed byte Text[TextLength];

    public static PolIdName From(string text)
    {
        var v = default(PolIdName);
        FixedText.Write(text, new Span<byte>(v.Text, TextLength));
        return v;
    }

    public override readonly string ToString()
    {
        fixed (byte* p = Text)
            return FixedText.Read(new ReadOnlySpan<byte>(p, TextLength));
    }
}

/// <summary>POL_CT_F_*: flags of a <see cref="PolCtEntry"/>.</summary>
[Flags]
public enum PolCtFlags : ushort
{
    None = 0,
    /// <summary>The peer opened the connection (else the pod did).</summary>
    Inbound = 1 << 0,
    /// <summary>FIN or RST seen.</summary>
    Closing = 1 << 1,
}

/// <summary>struct pol_ct_entry: a connection a local pod's policy admitted (key: <see cref="Ct4Key"/> with <see cref="CtDirection.Policy"/>).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PolCtEntry
{
    public ulong LastSeenNs;
    public ulong CreatedNs;
    public Be32Address PeerBe;
    public Be16 PeerPortBe;
    public PolCtFlags Flags;
}
