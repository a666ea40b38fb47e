namespace EbpfProxy.Testing.Packets;

/// <summary>TCP header flags (byte 13 of the TCP header).</summary>
[Flags]
public enum TcpFlags : byte
{
    /// <summary>No flag.</summary>
    None = 0,

    /// <summary>FIN.</summary>
    Fin = 0x01,

    /// <summary>SYN.</summary>
    Syn = 0x02,

    /// <summary>RST.</summary>
    Rst = 0x04,

    /// <summary>PSH.</summary>
    Psh = 0x08,

    /// <summary>ACK.</summary>
    Ack = 0x10,

    /// <summary>URG.</summary>
    Urg = 0x20,

    /// <summary>ECE.</summary>
    Ece = 0x40,

    /// <summary>CWR.</summary>
    Cwr = 0x80,
}

/// <summary>Ethernet type values used by the builder and parser.</summary>
public static class EtherTypes
{
    /// <summary>IPv4 (0x0800).</summary>
    public const ushort IPv4 = 0x0800;

    /// <summary>ARP (0x0806).</summary>
    public const ushort Arp = 0x0806;

    /// <summary>802.1Q VLAN tag (0x8100).</summary>
    public const ushort Vlan = 0x8100;

    /// <summary>IPv6 (0x86DD).</summary>
    public const ushort IPv6 = 0x86DD;
}

/// <summary>IP protocol numbers used by the builder and parser.</summary>
public static class IpProtocols
{
    /// <summary>ICMP (1).</summary>
    public const byte Icmp = 1;

    /// <summary>TCP (6).</summary>
    public const byte Tcp = 6;

    /// <summary>UDP (17).</summary>
    public const byte Udp = 17;

    /// <summary>ICMPv6 (58).</summary>
    public const byte IcmpV6 = 58;
}
