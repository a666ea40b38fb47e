using System.Net;
using System.Text;
using EbpfProxy.Testing.Packets;

namespace EbpfProxy.Testing.Tests;

public class PacketTests
{
    private static readonly IPAddress A = IPAddress.Parse("10.0.0.1");
    private static readonly IPAddress B = IPAddress.Parse("10.0.0.2");

    // Expected frames were computed by an independent implementation (Python struct + RFC 1071).
    [Fact]
    public void Udp_frame_matches_reference_bytes()
    {
        byte[] frame = PacketBuilder.Udp(A, 1234, B, 53, "hello"u8, new PacketOptions { Id = 0x1c46 });
        Assert.Equal(
            "0200000000020200000000010800450000211c46400040110a840a0000010a00000204d20035000da2f868656c6c6f",
            Convert.ToHexStringLower(frame));
    }

    [Fact]
    public void Tcp_syn_matches_reference_bytes()
    {
        byte[] frame = PacketBuilder.Tcp(IPAddress.Parse("192.168.0.1"), 40000, IPAddress.Parse("10.96.0.10"), 80,
            options: new PacketOptions { Id = 1 });
        Assert.Equal(
            "0200000000020200000000010800450000280001400040066fbcc0a800010a60000a9c40005000000001000000005002ffff483e0000",
            Convert.ToHexStringLower(frame));
    }

    [Fact]
    public void Tcp_with_payload_matches_reference_bytes()
    {
        byte[] frame = PacketBuilder.Tcp(IPAddress.Parse("10.244.1.5"), 51000, IPAddress.Parse("10.96.0.10"), 8080,
            TcpFlags.Psh | TcpFlags.Ack, "GET /\n"u8, seq: 1000, ack: 2000, options: new PacketOptions { Id = 0xbeef });
        Assert.Equal(
            "02000000000202000000000108004500002ebeef4000400665780af401050a60000ac7381f90000003e8000007d05018ffffdc730000474554202f0a",
            Convert.ToHexStringLower(frame));
    }

    [Fact]
    public void Tcp_roundtrip_parses_all_fields()
    {
        byte[] frame = PacketBuilder.Tcp(A, 40000, B, 80, TcpFlags.Syn | TcpFlags.Ack, "abc"u8, seq: 7, ack: 9,
            new PacketOptions { Ttl = 33, Tos = 0x10, Id = 42 });
        Packet p = Packet.Parse(frame);

        Assert.Equal(EtherTypes.IPv4, p.Eth.EtherType);
        Assert.Equal(PacketBuilder.DefaultSourceMac, p.Eth.Source);
        Assert.Equal(PacketBuilder.DefaultDestinationMac, p.Eth.Destination);
        Assert.NotNull(p.Ip);
        Assert.Equal(A, p.Source);
        Assert.Equal(B, p.Destination);
        Assert.Equal(33, p.Ttl);
        Assert.Equal(0x10, p.Ip.Tos);
        Assert.Equal(42, p.Ip.Id);
        Assert.True(p.Ip.DontFragment);
        Assert.False(p.Ip.IsFragment);
        Assert.Equal(5, p.Ip.Ihl);
        Assert.Equal(IpProtocols.Tcp, p.Ip.Protocol);
        Assert.NotNull(p.Tcp);
        Assert.Equal(40000, p.SourcePort);
        Assert.Equal(80, p.DestinationPort);
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, p.Flags);
        Assert.Equal(7u, p.Tcp.Sequence);
        Assert.Equal(9u, p.Tcp.Acknowledgment);
        Assert.Equal("abc", Encoding.ASCII.GetString(p.Payload));
        Assert.True(p.IpChecksumValid);
        Assert.True(p.L4ChecksumValid);
        Assert.Contains("TCP 10.0.0.1:40000 -> 10.0.0.2:80", p.ToString());
    }

    [Fact]
    public void Udp_roundtrip_and_random_ids()
    {
        byte[] frame = PacketBuilder.Udp(A, 5353, B, 53, "q"u8);
        Packet p = Packet.Parse(frame);
        Assert.NotNull(p.Udp);
        Assert.Equal(5353, p.SourcePort);
        Assert.Equal(53, p.DestinationPort);
        Assert.Equal(9, p.Udp.Length);
        Assert.Equal("q", Encoding.ASCII.GetString(p.Payload));
        Assert.True(p.ChecksumsValid);

        var ids = Enumerable.Range(0, 20).Select(_ => Packet.Parse(PacketBuilder.Udp(A, 1, B, 2)).Ip!.Id).ToHashSet();
        Assert.True(ids.Count > 1, "IPv4 ids should vary");
    }

    [Fact]
    public void Udp_checksum_zero_means_none_and_is_valid()
    {
        Packet p = Packet.Parse(PacketBuilder.UdpWithoutChecksum(A, 1, B, 2, "x"u8));
        Assert.Equal(0, p.Udp!.Checksum);
        Assert.True(p.L4ChecksumValid);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Mutating_any_covered_byte_invalidates_a_checksum(bool tcp)
    {
        byte[] frame = tcp
            ? PacketBuilder.Tcp(A, 1000, B, 2000, TcpFlags.Ack, "payload"u8, 5, 6)
            : PacketBuilder.Udp(A, 1000, B, 2000, "payload"u8);
        Assert.True(Packet.Parse(frame).ChecksumsValid);

        // Everything after the Ethernet header is covered by the IP or the L4 checksum, except the TTL+protocol
        // and the length fields that a mutation would make unparsable; flip bits one byte at a time.
        for (int i = PacketBuilder.EthernetHeaderLength; i < frame.Length; i++)
        {
            if (i is 16 or 17) // total length: parse would fail or truncate
            {
                continue;
            }
            byte[] copy = (byte[])frame.Clone();
            copy[i] ^= 0x01;
            if (!Packet.TryParse(copy, out Packet? p, out _))
            {
                continue;
            }
            Assert.False(p.ChecksumsValid, $"flipping byte {i} should invalidate a checksum: {p}");
        }
    }

    [Fact]
    public void Mutating_ip_address_breaks_both_checksums()
    {
        byte[] frame = PacketBuilder.Tcp(A, 1, B, 2);
        frame[PacketBuilder.EthernetHeaderLength + 19] ^= 0xFF; // last byte of destination address
        Packet p = Packet.Parse(frame);
        Assert.False(p.IpChecksumValid);
        Assert.False(p.L4ChecksumValid); // pseudo-header covers the addresses
    }

    [Fact]
    public void Corrupt_options_produce_invalid_checksums()
    {
        Packet p = Packet.Parse(PacketBuilder.Udp(A, 1, B, 2, "x"u8, new PacketOptions { CorruptIpChecksum = true }));
        Assert.False(p.IpChecksumValid);
        Assert.True(p.L4ChecksumValid);

        p = Packet.Parse(PacketBuilder.Udp(A, 1, B, 2, "x"u8, new PacketOptions { CorruptL4Checksum = true }));
        Assert.True(p.IpChecksumValid);
        Assert.False(p.L4ChecksumValid);
        Assert.NotEqual(0, p.Udp!.Checksum);

        p = Packet.Parse(PacketBuilder.Tcp(A, 1, B, 2, options: new PacketOptions { CorruptL4Checksum = true }));
        Assert.False(p.L4ChecksumValid);
    }

    [Fact]
    public void Ip_options_give_ihl_above_5()
    {
        byte[] frame = PacketBuilder.Tcp(A, 1, B, 2, options: new PacketOptions { IpOptions = [0x01, 0x01, 0x01] });
        Packet p = Packet.Parse(frame);
        Assert.Equal(6, p.Ip!.Ihl);
        Assert.Equal(new byte[] { 1, 1, 1, 0 }, p.Ip.Options);
        Assert.Equal(2, p.DestinationPort);
        Assert.True(p.ChecksumsValid);
        Assert.Equal(PacketBuilder.EthernetHeaderLength + 24 + PacketBuilder.TcpHeaderLength, frame.Length);
    }

    [Fact]
    public void Fragments()
    {
        Packet first = Packet.Parse(PacketBuilder.Udp(A, 1, B, 2, "abcdefgh"u8, new PacketOptions { DontFragment = false, MoreFragments = true }));
        Assert.True(first.Ip!.IsFragment);
        Assert.True(first.Ip.MoreFragments);
        Assert.NotNull(first.Udp); // first fragment still has ports
        Assert.False(first.L4ChecksumValid); // cannot be verified on a fragment
        Assert.True(first.IpChecksumValid);

        Packet later = Packet.Parse(PacketBuilder.Udp(A, 1, B, 2, "abcdefgh"u8, new PacketOptions { DontFragment = false, FragmentOffset = 185 }));
        Assert.Equal(185, later.Ip!.FragmentOffset);
        Assert.Null(later.Udp);
        Assert.Equal(0, later.DestinationPort);
        Assert.Equal(16, later.Payload.Length);
        Assert.True(later.IpChecksumValid);
    }

    [Fact]
    public void Truncated_packets_do_not_parse()
    {
        byte[] frame = PacketBuilder.Tcp(A, 1, B, 2, TcpFlags.Ack, "data"u8);
        Assert.Throws<FormatException>(() => Packet.Parse(PacketBuilder.Truncate(frame, 10)));
        Assert.Throws<FormatException>(() => Packet.Parse(PacketBuilder.Truncate(frame, 14 + 19)));
        Assert.Throws<FormatException>(() => Packet.Parse(PacketBuilder.Truncate(frame, frame.Length - 1)));
        Assert.False(Packet.TryParse(PacketBuilder.Truncate(frame, 14 + 20 + 10), out _, out string? error));
        Assert.Contains("truncated", error);
    }

    [Fact]
    public void Ethernet_padding_is_ignored()
    {
        byte[] frame = PacketBuilder.Udp(A, 1, B, 2, "x"u8);
        byte[] padded = [.. frame, .. new byte[60 - frame.Length]];
        Packet p = Packet.Parse(padded);
        Assert.Equal("x", Encoding.ASCII.GetString(p.Payload));
        Assert.True(p.ChecksumsValid);
    }

    [Fact]
    public void Non_ip_frames()
    {
        Packet arp = Packet.Parse(PacketBuilder.Arp(A, B));
        Assert.Equal(EtherTypes.Arp, arp.Eth.EtherType);
        Assert.Null(arp.Ip);
        Assert.Equal(28, arp.Payload.Length);
        Assert.False(arp.IpChecksumValid);

        byte[] v6 = PacketBuilder.Ipv6Udp(IPAddress.Parse("fd00::1"), 1, IPAddress.Parse("fd00::2"), 2, "x"u8);
        Packet p6 = Packet.Parse(v6);
        Assert.Equal(EtherTypes.IPv6, p6.Eth.EtherType);
        Assert.Null(p6.Ip);
        Assert.Equal(40 + 8 + 1, p6.Payload.Length);
        // The IPv6 UDP checksum is valid: verify with the pseudo-header directly.
        Assert.True(Checksum.IsL4Valid(IPAddress.Parse("fd00::1"), IPAddress.Parse("fd00::2"), IpProtocols.Udp, p6.Payload.AsSpan(40)));
    }

    [Fact]
    public void Icmp_echo()
    {
        Packet p = Packet.Parse(PacketBuilder.IcmpEcho(A, B, 7, 9, "ping"u8));
        Assert.NotNull(p.Icmp);
        Assert.Equal(8, p.Icmp.Type);
        Assert.Equal((7u << 16) | 9u, p.Icmp.RestOfHeader);
        Assert.True(p.ChecksumsValid);
    }

    [Fact]
    public void Builder_rejects_bad_arguments()
    {
        Assert.Throws<ArgumentException>(() => PacketBuilder.Tcp(IPAddress.IPv6Loopback, 1, B, 2));
        Assert.Throws<ArgumentException>(() => PacketBuilder.Udp(A, 1, B, 2, options: new PacketOptions { IpOptions = new byte[41] }));
        Assert.Throws<ArgumentOutOfRangeException>(() => PacketBuilder.Udp(A, 1, B, 2, options: new PacketOptions { FragmentOffset = 0x2000 }));
    }
}
