namespace EbpfProxy.Datapath.Tests;

/// <summary>Issue 14 item 2: connection maps sized from the node's memory as Cilium does; flags win.</summary>
public sealed class MapSizingTests
{
    private const ulong GiB = 1UL << 30;

    private static DatapathOptions Unset() => new() { ConntrackMax = 0, MasqueradeMax = 0, PolicyConntrackMax = 0, SockRevNatMax = 0, AffinityMax = 0 };

    [Fact]
    public void ConnectionMapsGrowWithMemoryBetweenTheirFloorAndTheLimit()
    {
        var small = Unset();
        MapSizing.Apply(small, 1 * GiB, MapSizing.DefaultRatio);
        var medium = Unset();
        MapSizing.Apply(medium, 32 * GiB, MapSizing.DefaultRatio);
        var large = Unset();
        MapSizing.Apply(large, 128 * GiB, MapSizing.DefaultRatio);
        var huge = Unset();
        MapSizing.Apply(huge, 1UL << 50, MapSizing.DefaultRatio);

        Assert.Equal(131072u, small.ConntrackMax); // the floor
        Assert.True(medium.ConntrackMax > 524288, $"{medium.ConntrackMax}");
        Assert.True(large.ConntrackMax > 3 * medium.ConntrackMax, $"{large.ConntrackMax} vs {medium.ConntrackMax}");
        Assert.True(large.MasqueradeMax > medium.MasqueradeMax);
        Assert.True(large.PolicyConntrackMax > medium.PolicyConntrackMax);
        Assert.Equal(MapSizing.MaxEntries, huge.ConntrackMax);
        // 0.25 % of the memory, give or take the clamps and rounding.
        double bytes = MapSizing.DynamicMaps.Sum(m => (double)m.Get(large) * m.EntryBytes);
        Assert.InRange(bytes, 0.9 * 0.0025 * 128 * GiB, 1.1 * 0.0025 * 128 * GiB);
    }

    [Fact]
    public void AGivenSizeWinsAndARatioOfZeroKeepsTheFixedDefaults()
    {
        var options = Unset();
        options.ConntrackMax = 1000;
        var computed = MapSizing.Apply(options, 64 * GiB, MapSizing.DefaultRatio);
        Assert.Equal(1000u, options.ConntrackMax);
        Assert.DoesNotContain(computed, c => c.Map == "ct4");

        var fixedSizes = Unset();
        MapSizing.Apply(fixedSizes, 64 * GiB, 0);
        Assert.Equal(524288u, fixedSizes.ConntrackMax);
        Assert.Equal(262144u, fixedSizes.PolicyConntrackMax);
        Assert.Throws<ArgumentException>(() => MapSizing.Apply(Unset(), GiB, 1.5));
    }

    [Fact]
    public void TotalMemoryIsReadFromMeminfo()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "MemTotal:       16384000 kB\nMemFree:         1000 kB\n");
            Assert.Equal(16384000UL * 1024, MapSizing.TotalMemory(path));
            Assert.True(MapSizing.TotalMemory() > 0);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void SizesOutOfRangeAreRefusedNamingTheFlag()
    {
        var options = new DatapathOptions { ServicesMax = 0 };
        Assert.Contains("--services-max", Assert.Throws<ArgumentException>(options.Validate).Message, StringComparison.Ordinal);
        options = new DatapathOptions { DropEventsBytes = 5000 };
        Assert.Contains("--events-bytes", Assert.Throws<ArgumentException>(options.Validate).Message, StringComparison.Ordinal);
    }
}
