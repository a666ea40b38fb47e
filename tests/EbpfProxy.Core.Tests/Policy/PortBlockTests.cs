using EbpfProxy.Core.Model;
using EbpfProxy.Core.Policy;

namespace EbpfProxy.Core.Tests.Policy;

public class PortBlockTests
{
    [Theory]
    [InlineData(80, 80, 1)]
    [InlineData(8000, 8010, 3)]
    [InlineData(1024, 2047, 1)]
    [InlineData(1, 65535, 16)]
    [InlineData(32768, 60999, 7)]
    public void RangesBecomeTheFewestAlignedBlocks(int first, int last, int count)
    {
        var blocks = RuleResolver.PortBlocks(first, last).ToList();
        Assert.Equal(count, blocks.Count);
        AssertExactCover(first, last, blocks);
    }

    [Fact]
    public void RandomRangesAreCoveredExactly()
    {
        var rng = new Random(5);
        for (int i = 0; i < 2000; i++)
        {
            int a = rng.Next(1, 65536), b = rng.Next(1, 65536);
            var (first, last) = (Math.Min(a, b), Math.Max(a, b));
            var blocks = RuleResolver.PortBlocks(first, last).ToList();
            AssertExactCover(first, last, blocks);
            // Aligned blocks cover a range in at most two per bit of the port.
            Assert.InRange(blocks.Count, 1, 30);
        }
    }

    private static void AssertExactCover(int first, int last, List<(ushort First, int Bits)> blocks)
    {
        int next = first;
        foreach (var (start, bits) in blocks)
        {
            var key = PolicyRuleKey.PortBlock(1, 256, PolicyDirection.Ingress, L4Protocol.Tcp, start, bits);
            Assert.Equal(start, key.Port); // aligned: nothing cleared
            var (lo, hi) = key.PortRange;
            Assert.Equal(next, lo);
            next = hi + 1;
        }
        Assert.Equal(last + 1, next);
    }

    [Fact]
    public void KeysExposeTheirPrefix()
    {
        var key = PolicyRuleKey.PortBlock(3, 300, PolicyDirection.Egress, L4Protocol.Udp, 8003, 14);
        Assert.Equal(8000, key.Port);
        Assert.Equal(94, key.PrefixLength);
        Assert.Equal(((ushort)8000, (ushort)8003), key.PortRange);
        Assert.Equal("egress 300 UDP/8000-8003", key.ToString());
        Assert.Equal(PolicyRuleKey.AllPortsOf(3, 300, PolicyDirection.Egress, L4Protocol.Udp), key.WithPrefix(80));
        Assert.Equal(PolicyRuleKey.AnyPort(3, 300, PolicyDirection.Egress), key.WithPrefix(72));
        Assert.Equal("ingress any *", PolicyRuleKey.AnyPort(1, 0, PolicyDirection.Ingress).ToString());
    }
}
