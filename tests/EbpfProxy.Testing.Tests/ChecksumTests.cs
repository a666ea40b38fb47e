using System.Net;
using EbpfProxy.Testing.Packets;

namespace EbpfProxy.Testing.Tests;

public class ChecksumTests
{
    [Fact]
    public void Rfc1071_example_sum_and_checksum()
    {
        // RFC 1071 §3: words 0001 f203 f4f5 f6f7 sum to ddf2 (after end-around carry).
        byte[] data = Convert.FromHexString("0001f203f4f5f6f7");
        Assert.Equal(0xddf2, Checksum.Fold(Checksum.Add(data)));
        Assert.Equal(0x220d, Checksum.Compute(data));
    }

    [Fact]
    public void Known_ipv4_header_checksum()
    {
        // Classic example: 192.168.0.1 -> 192.168.0.199 UDP, checksum b861.
        byte[] header = Convert.FromHexString("450000730000400040110000c0a80001c0a800c7");
        Assert.Equal(0xb861, Checksum.Compute(header));
        header[10] = 0xb8;
        header[11] = 0x61;
        Assert.True(Checksum.IsValid(header));
        header[15] ^= 0x01;
        Assert.False(Checksum.IsValid(header));
    }

    [Fact]
    public void Odd_length_is_zero_padded()
    {
        Assert.Equal(Checksum.Compute([0x12, 0x34, 0x56, 0x00]), Checksum.Compute([0x12, 0x34, 0x56]));
    }

    [Fact]
    public void Pseudo_header_sum_ipv4()
    {
        ulong sum = Checksum.PseudoHeaderSum(IPAddress.Parse("10.0.0.1"), IPAddress.Parse("10.0.0.2"), 17, 13);
        // 0a00 + 0001 + 0a00 + 0002 + 0011 + 000d
        Assert.Equal(0x0a00UL + 0x0001 + 0x0a00 + 0x0002 + 0x0011 + 0x000d, sum);
    }
}
