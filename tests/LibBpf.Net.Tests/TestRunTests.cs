namespace LibBpf.Net.Tests;

public class TestRunTests
{
    [PrivilegedFact]
    public void Tc_ReturnsRetvalAndModifiedPacket()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        obj.GetMap("config").As<uint, uint>().Update(0, 7);
        byte[] input = TestObjects.Frame(64);
        var output = new byte[128];

        TestRunResult result = obj.GetProgram("tc_count").TestRun(input, output);

        Assert.Equal(7u, result.ReturnValue);
        Assert.Equal(64, result.DataSizeOut);
        Assert.Equal(0xAA, output[0]);
        Assert.Equal(input.AsSpan(1, 63).ToArray(), output.AsSpan(1, 63).ToArray());
        Assert.Equal(0xFF, input[0]); // input untouched
    }

    [PrivilegedFact]
    public void Tc_RepeatRunsCountPerCpu()
    {
        using BpfObject obj = TestObjects.LoadProgs();

        TestRunResult result = obj.GetProgram("tc_count").TestRun(TestObjects.Frame(100), [], repeat: 5);

        Assert.Equal(TestObjects.TcActOk, result.ReturnValue);
        Assert.Equal(100, result.DataSizeOut);
        PcpuValue[] perCpu = obj.GetMap("pcpu_stats").AsPerCpu<uint, PcpuValue>().Lookup(0)!;
        Assert.Equal(5u, (uint)perCpu.Sum(v => (long)v.Packets));
        Assert.Equal(500u, (uint)perCpu.Sum(v => (long)v.Bytes));
        Assert.Contains(perCpu, v => v.LastLen == 100);
    }

    [PrivilegedFact]
    public void OutputBufferTooSmall_ThrowsEnospc()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        var output = new byte[32];

        var e = Assert.Throws<BpfException>(() => obj.GetProgram("tc_count").TestRun(TestObjects.Frame(64), output));

        Assert.Equal(28, e.Errno);
        Assert.Equal("bpf_prog_test_run_opts", e.Operation);
        Assert.Equal("tc_count", e.ObjectName);
        Assert.Contains("the output packet is 64 bytes, the buffer 32", e.Message);
    }

    [PrivilegedFact]
    public void Xdp_ReturnsXdpPassAndCounts()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        BpfProgram xdp = obj.GetProgram("xdp_pass");
        var output = new byte[64];

        TestRunResult result = BpfProgram.TestRun(xdp.Fd, TestObjects.Frame(64), output, repeat: 3);

        Assert.Equal(TestObjects.XdpPass, result.ReturnValue);
        Assert.Equal(64, result.DataSizeOut);
        Assert.Equal(TestObjects.Frame(64), output);
        Assert.Equal(3, obj.GetMap("pcpu_stats").AsPerCpu<uint, PcpuValue>().Lookup(1)!.Sum(v => (long)v.Packets));
    }

    [PrivilegedFact]
    public void InvalidArguments_AreRejected()
    {
        using BpfObject obj = TestObjects.LoadProgs();
        BpfProgram tc = obj.GetProgram("tc_count");

        Assert.Throws<ArgumentException>(() => tc.TestRun([], []));
        Assert.Throws<ArgumentOutOfRangeException>(() => tc.TestRun(TestObjects.Frame(), [], repeat: 0));
        var e = Assert.Throws<BpfException>(() => tc.TestRun(new byte[4], [])); // shorter than an Ethernet header
        Assert.Equal(22, e.Errno);
    }
}
