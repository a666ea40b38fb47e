using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using System.Text;

namespace EbpfProxy.Testing.Packets;

/// <summary>An Ethernet II header.</summary>
/// <param name="Destination">Destination MAC.</param>
/// <param name="Source">Source MAC.</param>
/// <param name="EtherType">Ethertype (host order), see <see cref="EtherTypes"/>.</param>
public sealed record EthernetHeader(PhysicalAddress Destination, PhysicalAddress Source, ushort EtherType);

/// <summary>An IPv4 header (values in host order).</summary>
/// <param name="Ihl">Header length in 32-bit words (5 without options).</param>
/// <param name="Tos">Type of service byte.</param>
/// <param name="TotalLength">Total length field.</param>
/// <param name="Id">Identification.</param>
/// <param name="DontFragment">DF flag.</param>
/// <param name="MoreFragments">MF flag.</param>
/// <param name="FragmentOffset">Fragment offset in 8-byte units.</param>
/// <param name="Ttl">Time to live.</param>
/// <param name="Protocol">Protocol number, see <see cref="IpProtocols"/>.</param>
/// <param name="HeaderChecksum">The stored header checksum.</param>
/// <param name="Source">Source address.</param>
/// <param name="Destination">Destination address.</param>
/// <param name="Options">Option bytes (empty when <paramref name="Ihl"/> is 5).</param>
public sealed record Ipv4Header(
    byte Ihl, byte Tos, ushort TotalLength, ushort Id, bool DontFragment, bool MoreFragments, ushort FragmentOffset,
    byte Ttl, byte Protocol, ushort HeaderChecksum, IPAddress Source, IPAddress Destination, byte[] Options)
{
    /// <summary>Header length in bytes.</summary>
    public int HeaderLength => Ihl * 4;

    /// <summary>True for any fragment (MF set or non-zero offset).</summary>
    public bool IsFragment => MoreFragments || FragmentOffset != 0;
}

/// <summary>A TCP header (values in host order).</summary>
/// <param name="SourcePort">Source port.</param>
/// <param name="DestinationPort">Destination port.</param>
/// <param name="Sequence">Sequence number.</param>
/// <param name="Acknowledgment">Acknowledgment number.</param>
/// <param name="DataOffset">Header length in 32-bit words.</param>
/// <param name="Flags">Flags.</param>
/// <param name="Window">Window.</param>
/// <param name="Checksum">The stored checksum.</param>
/// <param name="UrgentPointer">Urgent pointer.</param>
public sealed record TcpHeader(
    ushort SourcePort, ushort DestinationPort, uint Sequence, uint Acknowledgment, byte DataOffset,
    TcpFlags Flags, ushort Window, ushort Checksum, ushort UrgentPointer);

/// <summary>A UDP header (values in host order).</summary>
/// <param name="SourcePort">Source port.</param>
/// <param name="DestinationPort">Destination port.</param>
/// <param name="Length">Length field (header + payload).</param>
/// <param name="Checksum">The stored checksum (0 = none).</param>
public sealed record UdpHeader(ushort SourcePort, ushort DestinationPort, ushort Length, ushort Checksum);

/// <summary>An ICMP header.</summary>
/// <param name="Type">Type.</param>
/// <param name="Code">Code.</param>
/// <param name="Checksum">The stored checksum.</param>
/// <param name="RestOfHeader">Bytes 4..7 (id and sequence for echo).</param>
public sealed record IcmpHeader(byte Type, byte Code, ushort Checksum, uint RestOfHeader);

/// <summary>
/// A parsed Ethernet frame, typically the data_out of <c>BPF_PROG_TEST_RUN</c>, with checksums verified by
/// full recomputation.
/// </summary>
/// <remarks>
/// <para>Only IPv4 is decoded beyond Ethernet; for other ethertypes <see cref="Ip"/> is null and
/// <see cref="Payload"/> is everything after the Ethernet header.</para>
/// <para>L4 headers are decoded only for unfragmented packets and first fragments; for a non-first fragment
/// <see cref="Payload"/> is the IP payload. Bytes past the IPv4 total length (Ethernet padding) are ignored.</para>
/// </remarks>
public sealed record Packet
{
    /// <summary>The Ethernet header.</summary>
    public required EthernetHeader Eth { get; init; }

    /// <summary>The IPv4 header, or null when the frame is not IPv4.</summary>
    public Ipv4Header? Ip { get; init; }

    /// <summary>The TCP header, or null.</summary>
    public TcpHeader? Tcp { get; init; }

    /// <summary>The UDP header, or null.</summary>
    public UdpHeader? Udp { get; init; }

    /// <summary>The ICMP header, or null.</summary>
    public IcmpHeader? Icmp { get; init; }

    /// <summary>L4 payload (after the TCP/UDP/ICMP header); see the remarks for other cases.</summary>
    public required byte[] Payload { get; init; }

    /// <summary>True when the IPv4 header checksum is correct (false when not IPv4).</summary>
    public bool IpChecksumValid { get; init; }

    /// <summary>
    /// True when the TCP/UDP checksum (with pseudo-header) or ICMP checksum is correct; a UDP checksum of 0
    /// ("none") counts as valid. False when there is no L4 header or the packet is a fragment (cannot be verified).
    /// </summary>
    public bool L4ChecksumValid { get; init; }

    /// <summary>IPv4 source address, or null.</summary>
    public IPAddress? Source => Ip?.Source;

    /// <summary>IPv4 destination address, or null.</summary>
    public IPAddress? Destination => Ip?.Destination;

    /// <summary>TCP/UDP source port, or 0.</summary>
    public ushort SourcePort => Tcp?.SourcePort ?? Udp?.SourcePort ?? 0;

    /// <summary>TCP/UDP destination port, or 0.</summary>
    public ushort DestinationPort => Tcp?.DestinationPort ?? Udp?.DestinationPort ?? 0;

    /// <summary>IPv4 TTL, or 0.</summary>
    public byte Ttl => Ip?.Ttl ?? 0;

    /// <summary>TCP flags, or <see cref="TcpFlags.None"/>.</summary>
    public TcpFlags Flags => Tcp?.Flags ?? TcpFlags.None;

    /// <summary>Both checksums valid (IPv4 header and L4).</summary>
    public bool ChecksumsValid => IpChecksumValid && L4ChecksumValid;

    /// <summary>Parses a frame.</summary>
    /// <exception cref="FormatException">Shorter than an Ethernet header, or an IPv4/L4 header is cut short or inconsistent.</exception>
    public static Packet Parse(ReadOnlySpan<byte> frame) =>
        TryParse(frame, out Packet? packet, out string? error) ? packet : throw new FormatException(error);

    /// <summary>Parses a frame; on failure returns false with a reason.</summary>
    public static bool TryParse(ReadOnlySpan<byte> frame, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Packet? packet, out string? error)
    {
        packet = null;
        error = null;
        if (frame.Length < PacketBuilder.EthernetHeaderLength)
        {
            error = $"frame of {frame.Length} bytes is shorter than an Ethernet header";
            return false;
        }
        var eth = new EthernetHeader(
            new PhysicalAddress(frame[..6].ToArray()),
            new PhysicalAddress(frame[6..12].ToArray()),
            BinaryPrimitives.ReadUInt16BigEndian(frame[12..]));
        ReadOnlySpan<byte> l3 = frame[PacketBuilder.EthernetHeaderLength..];
        if (eth.EtherType != EtherTypes.IPv4)
        {
            packet = new Packet { Eth = eth, Payload = l3.ToArray() };
            return true;
        }

        if (l3.Length < PacketBuilder.Ipv4HeaderLength)
        {
            error = $"IPv4 header truncated: {l3.Length} bytes";
            return false;
        }
        int version = l3[0] >> 4;
        int ihl = l3[0] & 0x0F;
        if (version != 4 || ihl < 5)
        {
            error = $"bad IPv4 version/IHL byte 0x{l3[0]:x2}";
            return false;
        }
        if (l3.Length < ihl * 4)
        {
            error = $"IPv4 header with IHL {ihl} truncated: {l3.Length} bytes";
            return false;
        }
        ushort totalLength = BinaryPrimitives.ReadUInt16BigEndian(l3[2..]);
        if (totalLength < ihl * 4)
        {
            error = $"IPv4 total length {totalLength} is smaller than the header ({ihl * 4})";
            return false;
        }
        if (totalLength > l3.Length)
        {
            error = $"IPv4 packet truncated: total length {totalLength}, {l3.Length} bytes present";
            return false;
        }
        ushort fragment = BinaryPrimitives.ReadUInt16BigEndian(l3[6..]);
        var ip = new Ipv4Header(
            Ihl: (byte)ihl,
            Tos: l3[1],
            TotalLength: totalLength,
            Id: BinaryPrimitives.ReadUInt16BigEndian(l3[4..]),
            DontFragment: (fragment & 0x4000) != 0,
            MoreFragments: (fragment & 0x2000) != 0,
            FragmentOffset: (ushort)(fragment & 0x1FFF),
            Ttl: l3[8],
            Protocol: l3[9],
            HeaderChecksum: BinaryPrimitives.ReadUInt16BigEndian(l3[10..]),
            Source: new IPAddress(l3[12..16]),
            Destination: new IPAddress(l3[16..20]),
            Options: l3[20..(ihl * 4)].ToArray());
        bool ipValid = Checksum.IsValid(l3[..(ihl * 4)]);
        ReadOnlySpan<byte> l4 = l3[(ihl * 4)..totalLength];

        if (ip.FragmentOffset != 0)
        {
            packet = new Packet { Eth = eth, Ip = ip, Payload = l4.ToArray(), IpChecksumValid = ipValid };
            return true;
        }

        switch (ip.Protocol)
        {
            case IpProtocols.Tcp:
            {
                if (l4.Length < PacketBuilder.TcpHeaderLength)
                {
                    error = $"TCP header truncated: {l4.Length} bytes";
                    return false;
                }
                int dataOffset = l4[12] >> 4;
                if (dataOffset < 5 || dataOffset * 4 > l4.Length)
                {
                    error = $"bad TCP data offset {dataOffset} for {l4.Length} bytes";
                    return false;
                }
                var tcp = new TcpHeader(
                    BinaryPrimitives.ReadUInt16BigEndian(l4),
                    BinaryPrimitives.ReadUInt16BigEndian(l4[2..]),
                    BinaryPrimitives.ReadUInt32BigEndian(l4[4..]),
                    BinaryPrimitives.ReadUInt32BigEndian(l4[8..]),
                    (byte)dataOffset,
                    (TcpFlags)l4[13],
                    BinaryPrimitives.ReadUInt16BigEndian(l4[14..]),
                    BinaryPrimitives.ReadUInt16BigEndian(l4[16..]),
                    BinaryPrimitives.ReadUInt16BigEndian(l4[18..]));
                bool valid = !ip.IsFragment && Checksum.IsL4Valid(ip.Source, ip.Destination, IpProtocols.Tcp, l4);
                packet = new Packet { Eth = eth, Ip = ip, Tcp = tcp, Payload = l4[(dataOffset * 4)..].ToArray(), IpChecksumValid = ipValid, L4ChecksumValid = valid };
                return true;
            }
            case IpProtocols.Udp:
            {
                if (l4.Length < PacketBuilder.UdpHeaderLength)
                {
                    error = $"UDP header truncated: {l4.Length} bytes";
                    return false;
                }
                var udp = new UdpHeader(
                    BinaryPrimitives.ReadUInt16BigEndian(l4),
                    BinaryPrimitives.ReadUInt16BigEndian(l4[2..]),
                    BinaryPrimitives.ReadUInt16BigEndian(l4[4..]),
                    BinaryPrimitives.ReadUInt16BigEndian(l4[6..]));
                bool valid;
                ReadOnlySpan<byte> payload;
                if (ip.IsFragment)
                {
                    valid = false;
                    payload = l4[PacketBuilder.UdpHeaderLength..];
                }
                else
                {
                    if (udp.Length < PacketBuilder.UdpHeaderLength || udp.Length > l4.Length)
                    {
                        error = $"bad UDP length {udp.Length} for {l4.Length} bytes";
                        return false;
                    }
                    ReadOnlySpan<byte> datagram = l4[..udp.Length];
                    valid = udp.Checksum == 0 || Checksum.IsL4Valid(ip.Source, ip.Destination, IpProtocols.Udp, datagram);
                    payload = datagram[PacketBuilder.UdpHeaderLength..];
                }
                packet = new Packet { Eth = eth, Ip = ip, Udp = udp, Payload = payload.ToArray(), IpChecksumValid = ipValid, L4ChecksumValid = valid };
                return true;
            }
            case IpProtocols.Icmp:
            {
                if (l4.Length < 8)
                {
                    error = $"ICMP header truncated: {l4.Length} bytes";
                    return false;
                }
                var icmp = new IcmpHeader(l4[0], l4[1], BinaryPrimitives.ReadUInt16BigEndian(l4[2..]), BinaryPrimitives.ReadUInt32BigEndian(l4[4..]));
                bool valid = !ip.IsFragment && Checksum.IsValid(l4);
                packet = new Packet { Eth = eth, Ip = ip, Icmp = icmp, Payload = l4[8..].ToArray(), IpChecksumValid = ipValid, L4ChecksumValid = valid };
                return true;
            }
            default:
                packet = new Packet { Eth = eth, Ip = ip, Payload = l4.ToArray(), IpChecksumValid = ipValid };
                return true;
        }
    }

    /// <summary>A one-line summary for assertion messages, e.g. <c>TCP 10.0.0.1:1234 -> 10.96.0.10:80 [Syn] ttl=64 len=0 csum ip=ok l4=ok</c>.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        if (Ip is null)
        {
            return $"ethertype 0x{Eth.EtherType:x4} {Eth.Source} -> {Eth.Destination} len={Payload.Length}";
        }
        string frag = Ip.IsFragment ? $" frag(mf={(Ip.MoreFragments ? 1 : 0)},off={Ip.FragmentOffset})" : "";
        if (Tcp is not null)
        {
            sb.Append($"TCP {Ip.Source}:{Tcp.SourcePort} -> {Ip.Destination}:{Tcp.DestinationPort} [{Tcp.Flags}] seq={Tcp.Sequence} ack={Tcp.Acknowledgment}");
        }
        else if (Udp is not null)
        {
            sb.Append($"UDP {Ip.Source}:{Udp.SourcePort} -> {Ip.Destination}:{Udp.DestinationPort}");
        }
        else if (Icmp is not null)
        {
            sb.Append($"ICMP {Ip.Source} -> {Ip.Destination} type={Icmp.Type} code={Icmp.Code}");
        }
        else
        {
            sb.Append($"IPv4 proto={Ip.Protocol} {Ip.Source} -> {Ip.Destination}");
        }
        sb.Append($" ttl={Ip.Ttl} ihl={Ip.Ihl}{frag} len={Payload.Length} csum ip={(IpChecksumValid ? "ok" : "BAD")} l4={(L4ChecksumValid ? "ok" : "BAD")}");
        return sb.ToString();
    }
}
