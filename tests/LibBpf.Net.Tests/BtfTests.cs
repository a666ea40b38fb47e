using System.Runtime.CompilerServices;

namespace LibBpf.Net.Tests;

public class BtfTests
{
    [Fact] // parses the ELF file only: no privileges needed
    public void FindStruct_DescribesTheCLayout_MatchingTheCSharpMirrors()
    {
        using BtfFile btf = BtfFile.ParseElf(TestObjects.ProgsPath);

        BtfStruct key = btf.FindStruct("test_key")!;
        Assert.Equal(8u, key.Size);
        Assert.Equal(
            [("addr", 0u, 4L), ("port", 4u, 2L), ("proto", 6u, 1L), ("pad", 7u, 1L)],
            key.Members.Select(m => (m.Name, m.ByteOffset, m.Size)));
        Assert.Equal((int)key.Size, Unsafe.SizeOf<TestKey>());
        Assert.Equal((int)btf.FindStruct("test_value")!.Size, Unsafe.SizeOf<TestValue>());
        Assert.Equal((int)btf.FindStruct("pcpu_value")!.Size, Unsafe.SizeOf<PcpuValue>());
        Assert.Null(btf.FindStruct("no_such_struct"));
    }

    [Fact]
    public void ParseElf_MissingFile_Throws()
    {
        var e = Assert.Throws<BpfException>(() => BtfFile.ParseElf("/nonexistent.o"));

        Assert.Equal(2, e.Errno);
        Assert.Equal("btf__parse_elf", e.Operation);
    }
}
