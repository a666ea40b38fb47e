using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace EbpfProxy.Testing.Packets;

/// <summary>
/// Knobs for <see cref="PacketBuilder"/>: Ethernet addresses and IPv4 header fields, including the unusual
/// ones needed for negative tests (IP options, fragments, deliberately wrong checksums).
/// </summary>
public sealed record PacketOptions
{
    /// <summary>Ethernet source; default <see cref="PacketBuilder.DefaultSourceMac"/>.</summary>
    public PhysicalAddress? SourceMac { get; init; }

    /// <summary>Ethernet destination; default <see cref="PacketBuilder.DefaultDestinationMac"/>.</summary>
    public PhysicalAddress? DestinationMac { get; init; }

    /// <summary>IPv4 TTL (default 64); IPv6 hop limit for IPv6 builders.</summary>
    public byte Ttl { get; init; } = 64;

    /// <summary>IPv4 type of service / DSCP+ECN byte (default 0).</summary>
    public byte Tos { get; init; }

    /// <summary>IPv4 identification; null (default) picks a random non-zero value.</summary>
    public ushort? Id { get; init; }

    /// <summary>IPv4 DF flag (default true).</summary>
    public bool DontFragment { get; init; } = true;

    /// <summary>IPv4 MF flag (default false). Setting it makes the packet a (first) fragment.</summary>
    public bool MoreFragments { get; init; }

    /// <summary>IPv4 fragment offset in 8-byte units, as in the header (0..8191; default 0). Non-zero makes a non-first fragment.</summary>
    public ushort FragmentOffset { get; init; }

    /// <summary>
    /// IPv4 options, placed after the fixed header and padded with zero (End of Option List) to a multiple of
    /// 4 bytes; at most 40 bytes. Non-empty options give IHL &gt; 5. Example: <c>[0x01, 0x01, 0x01, 0x01]</c> (four NOPs).
    /// </summary>
    public byte[]? IpOptions { get; init; }

    /// <summary>Stores a wrong IPv4 header checksum (the correct one XOR 0x5A5A).</summary>
    public bool CorruptIpChecksum { get; init; }

    /// <summary>Stores a wrong TCP/UDP checksum (never 0, which would mean "no checksum" for UDP).</summary>
    public bool CorruptL4Checksum { get; init; }
}

/// <summary>
/// Builds complete Ethernet frames for <c>BPF_PROG_TEST_RUN</c> (data_in) with correct IPv4 header and TCP/UDP
/// checksums (pseudo-header included), plus malformed variants for negative tests.
/// </summary>
/// <remarks>
/// Frames are Ethernet II (dst MAC, src MAC, ethertype) with no FCS and no padding to 60 bytes, as the kernel
/// hands them to tc programs. Multi-byte fields are in network byte order; API values are host order.
/// </remarks>
public static class PacketBuilder
{
    /// <summary>Length of the Ethernet header.</summary>
    public const int EthernetHeaderLength = 14;

    /// <summary>Length of an IPv4 header without options.</summary>
    public const int Ipv4HeaderLength = 20;

    /// <summary>Length of a TCP header without options.</summary>
    public const int TcpHeaderLength = 20;

    /// <summary>Length of a UDP header.</summary>
    public const int UdpHeaderLength = 8;

    /// <summary>Default Ethernet source address (locally administered): 02:00:00:00:00:01.</summary>
    public static PhysicalAddress DefaultSourceMac { get; } = new([0x02, 0, 0, 0, 0, 0x01]);

    /// <summary>Default Ethernet destination address (locally administered): 02:00:00:00:00:02.</summary>
    public static PhysicalAddress DefaultDestinationMac { get; } = new([0x02, 0, 0, 0, 0, 0x02]);

    /// <summary>
    /// An Ethernet + IPv4 + TCP frame (20-byte TCP header, window 65535, no TCP options) with correct checksums.
    /// </summary>
    public static byte[] Tcp(
        IPAddress src, ushort sport, IPAddress dst, ushort dport,
        TcpFlags flags = TcpFlags.Syn, ReadOnlySpan<byte> payload = default, uint seq = 1, uint ack = 0,
        PacketOptions? options = null)
    {
        byte[] segment = TcpSegment(sport, dport, flags, payload, seq, ack);
        FillL4Checksum(segment, 16, src, dst, IpProtocols.Tcp, udp: false, options);
        return Ipv4(src, dst, IpProtocols.Tcp, segment, options);
    }

    /// <summary>An Ethernet + IPv4 + UDP frame with correct checksums.</summary>
    public static byte[] Udp(
        IPAddress src, ushort sport, IPAddress dst, ushort dport,
        ReadOnlySpan<byte> payload = default, PacketOptions? options = null)
    {
        byte[] segment = UdpSegment(sport, dport, payload);
        FillL4Checksum(segment, 6, src, dst, IpProtocols.Udp, udp: true, options);
        return Ipv4(src, dst, IpProtocols.Udp, segment, options);
    }

    /// <summary>An Ethernet + IPv4 + UDP frame whose UDP checksum is 0 ("no checksum", valid for IPv4).</summary>
    public static byte[] UdpWithoutChecksum(IPAddress src, ushort sport, IPAddress dst, ushort dport, ReadOnlySpan<byte> payload = default, PacketOptions? options = null) =>
        Ipv4(src, dst, IpProtocols.Udp, UdpSegment(sport, dport, payload), options);

    /// <summary>An Ethernet + IPv4 + ICMP echo request (type 8) with a correct ICMP checksum.</summary>
    public static byte[] IcmpEcho(IPAddress src, IPAddress dst, ushort id = 1, ushort sequence = 1, ReadOnlySpan<byte> payload = default, PacketOptions? options = null)
    {
        byte[] icmp = new byte[8 + payload.Length];
        icmp[0] = 8; // echo request
        BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(4), id);
        BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(6), sequence);
        payload.CopyTo(icmp.AsSpan(8));
        BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(2), Checksum.Compute(icmp));
        return Ipv4(src, dst, IpProtocols.Icmp, icmp, options);
    }

    /// <summary>
    /// An Ethernet + IPv4 frame carrying <paramref name="l4"/> verbatim (its checksum, if any, is the caller's
    /// business). The IPv4 header checksum is correct unless <see cref="PacketOptions.CorruptIpChecksum"/>.
    /// </summary>
    public static byte[] Ipv4(IPAddress src, IPAddress dst, byte protocol, ReadOnlySpan<byte> l4, PacketOptions? options = null)
    {
        RequireIPv4(src, nameof(src));
        RequireIPv4(dst, nameof(dst));
        options ??= Defaults;
        byte[] ipOptions = PadOptions(options.IpOptions);
        int ihl = (Ipv4HeaderLength + ipOptions.Length) / 4;
        int totalLength = ihl * 4 + l4.Length;
        if (totalLength > ushort.MaxValue)
        {
            throw new ArgumentException($"IPv4 packet of {totalLength} bytes exceeds 65535.");
        }
        if (options.FragmentOffset > 0x1FFF)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "FragmentOffset is 13 bits (0..8191, in 8-byte units).");
        }

        byte[] frame = new byte[EthernetHeaderLength + totalLength];
        WriteEthernet(frame, EtherTypes.IPv4, options.SourceMac, options.DestinationMac);
        Span<byte> ip = frame.AsSpan(EthernetHeaderLength);
        ip[0] = (byte)(0x40 | ihl);
        ip[1] = options.Tos;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)totalLength);
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], options.Id ?? (ushort)Random.Shared.Next(1, 0x10000));
        ushort fragment = (ushort)((options.DontFragment ? 0x4000 : 0) | (options.MoreFragments ? 0x2000 : 0) | options.FragmentOffset);
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], fragment);
        ip[8] = options.Ttl;
        ip[9] = protocol;
        src.TryWriteBytes(ip[12..16], out _);
        dst.TryWriteBytes(ip[16..20], out _);
        ipOptions.CopyTo(ip[20..]);
        ushort checksum = Checksum.Compute(ip[..(ihl * 4)]);
        if (options.CorruptIpChecksum)
        {
            checksum ^= 0x5A5A;
        }
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], checksum);
        l4.CopyTo(ip[(ihl * 4)..]);
        return frame;
    }

    /// <summary>
    /// An Ethernet + IPv4 + SCTP common header and a tiny DATA chunk. The CRC32c field holds a fixed
    /// marker (0x12345678), not a real CRC: a datapath that rewrites addresses must leave it alone.
    /// </summary>
    public static byte[] Sctp(IPAddress src, ushort sport, IPAddress dst, ushort dport, PacketOptions? options = null)
    {
        byte[] sctp = new byte[12 + 16];
        BinaryPrimitives.WriteUInt16BigEndian(sctp, sport);
        BinaryPrimitives.WriteUInt16BigEndian(sctp.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt32BigEndian(sctp.AsSpan(4), 0xdeadbeef); // verification tag
        BinaryPrimitives.WriteUInt32BigEndian(sctp.AsSpan(8), 0x12345678); // "CRC32c"
        sctp[12] = 0; // DATA chunk
        return Ipv4(src, dst, 132, sctp, options);
    }

    /// <summary>An Ethernet + IPv6 + UDP frame (for "not IPv4, pass untouched" tests) with a correct UDP checksum.</summary>
    public static byte[] Ipv6Udp(IPAddress src, ushort sport, IPAddress dst, ushort dport, ReadOnlySpan<byte> payload = default, PacketOptions? options = null)
    {
        if (src.AddressFamily != AddressFamily.InterNetworkV6 || dst.AddressFamily != AddressFamily.InterNetworkV6)
        {
            throw new ArgumentException("Ipv6Udp needs IPv6 addresses.");
        }
        options ??= Defaults;
        byte[] segment = UdpSegment(sport, dport, payload);
        FillL4Checksum(segment, 6, src, dst, IpProtocols.Udp, udp: true, options);
        byte[] frame = new byte[EthernetHeaderLength + 40 + segment.Length];
        WriteEthernet(frame, EtherTypes.IPv6, options.SourceMac, options.DestinationMac);
        Span<byte> ip = frame.AsSpan(EthernetHeaderLength);
        ip[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)segment.Length);
        ip[6] = IpProtocols.Udp;
        ip[7] = options.Ttl;
        src.TryWriteBytes(ip[8..24], out _);
        dst.TryWriteBytes(ip[24..40], out _);
        segment.CopyTo(ip[40..]);
        return frame;
    }

    /// <summary>An Ethernet ARP request "who has <paramref name="targetIp"/> tell <paramref name="senderIp"/>" (ethertype 0x0806).</summary>
    public static byte[] Arp(IPAddress senderIp, IPAddress targetIp, PacketOptions? options = null)
    {
        RequireIPv4(senderIp, nameof(senderIp));
        RequireIPv4(targetIp, nameof(targetIp));
        options ??= Defaults;
        byte[] arp = new byte[28];
        BinaryPrimitives.WriteUInt16BigEndian(arp.AsSpan(0), 1); // Ethernet
        BinaryPrimitives.WriteUInt16BigEndian(arp.AsSpan(2), EtherTypes.IPv4);
        arp[4] = 6;
        arp[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(arp.AsSpan(6), 1); // request
        (options.SourceMac ?? DefaultSourceMac).GetAddressBytes().CopyTo(arp, 8);
        senderIp.TryWriteBytes(arp.AsSpan(14, 4), out _);
        targetIp.TryWriteBytes(arp.AsSpan(24, 4), out _);
        return Ethernet(EtherTypes.Arp, arp, options.SourceMac, PhysicalAddress.Parse("FF-FF-FF-FF-FF-FF"));
    }

    /// <summary>An Ethernet frame with an arbitrary ethertype and payload.</summary>
    public static byte[] Ethernet(ushort etherType, ReadOnlySpan<byte> payload, PhysicalAddress? source = null, PhysicalAddress? destination = null)
    {
        byte[] frame = new byte[EthernetHeaderLength + payload.Length];
        WriteEthernet(frame, etherType, source, destination);
        payload.CopyTo(frame.AsSpan(EthernetHeaderLength));
        return frame;
    }

    /// <summary>
    /// The first <paramref name="length"/> bytes of <paramref name="packet"/> (headers keep their original length
    /// fields, so e.g. the IPv4 total length then exceeds the frame).
    /// </summary>
    public static byte[] Truncate(ReadOnlySpan<byte> packet, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, packet.Length);
        return packet[..length].ToArray();
    }

    private static readonly PacketOptions Defaults = new();

    private static byte[] TcpSegment(ushort sport, ushort dport, TcpFlags flags, ReadOnlySpan<byte> payload, uint seq, uint ack)
    {
        byte[] segment = new byte[TcpHeaderLength + payload.Length];
        Span<byte> s = segment;
        BinaryPrimitives.WriteUInt16BigEndian(s, sport);
        BinaryPrimitives.WriteUInt16BigEndian(s[2..], dport);
        BinaryPrimitives.WriteUInt32BigEndian(s[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(s[8..], ack);
        s[12] = (TcpHeaderLength / 4) << 4;
        s[13] = (byte)flags;
        BinaryPrimitives.WriteUInt16BigEndian(s[14..], 65535);
        payload.CopyTo(s[TcpHeaderLength..]);
        return segment;
    }

    private static byte[] UdpSegment(ushort sport, ushort dport, ReadOnlySpan<byte> payload)
    {
        int length = UdpHeaderLength + payload.Length;
        if (length > ushort.MaxValue)
        {
            throw new ArgumentException("UDP payload too large.", nameof(payload));
        }
        byte[] segment = new byte[length];
        BinaryPrimitives.WriteUInt16BigEndian(segment, sport);
        BinaryPrimitives.WriteUInt16BigEndian(segment.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt16BigEndian(segment.AsSpan(4), (ushort)length);
        payload.CopyTo(segment.AsSpan(UdpHeaderLength));
        return segment;
    }

    private static void FillL4Checksum(byte[] segment, int offset, IPAddress src, IPAddress dst, byte protocol, bool udp, PacketOptions? options)
    {
        ushort checksum = Checksum.ComputeL4(src, dst, protocol, segment);
        if (udp && checksum == 0)
        {
            checksum = 0xFFFF; // 0 means "no checksum" for UDP
        }
        if (options?.CorruptL4Checksum == true)
        {
            // XOR (not +1): 0x0000 and 0xFFFF are the same value in ones' complement, so +1 could stay valid.
            ushort bad = (ushort)(checksum ^ 0x5A5A);
            checksum = udp && bad == 0 ? (ushort)(checksum ^ 0xA5A5) : bad; // 0 would mean "no UDP checksum"
        }
        BinaryPrimitives.WriteUInt16BigEndian(segment.AsSpan(offset), checksum);
    }

    private static void WriteEthernet(Span<byte> frame, ushort etherType, PhysicalAddress? source, PhysicalAddress? destination)
    {
        WriteMac(frame, destination ?? DefaultDestinationMac);
        WriteMac(frame[6..], source ?? DefaultSourceMac);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], etherType);
    }

    private static void WriteMac(Span<byte> target, PhysicalAddress mac)
    {
        byte[] bytes = mac.GetAddressBytes();
        if (bytes.Length != 6)
        {
            throw new ArgumentException($"MAC address {mac} is not 6 bytes.");
        }
        bytes.CopyTo(target);
    }

    private static byte[] PadOptions(byte[]? options)
    {
        if (options is null || options.Length == 0)
        {
            return [];
        }
        int padded = (options.Length + 3) / 4 * 4;
        if (padded > 40)
        {
            throw new ArgumentException("IPv4 options are limited to 40 bytes.");
        }
        byte[] result = new byte[padded];
        options.CopyTo(result, 0);
        return result;
    }

    private static void RequireIPv4(IPAddress address, string name)
    {
        ArgumentNullException.ThrowIfNull(address, name);
        if (address.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException($"{address} is not an IPv4 address.", name);
        }
    }
}
