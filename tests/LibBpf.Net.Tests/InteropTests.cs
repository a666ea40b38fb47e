using System.Runtime.InteropServices;

namespace LibBpf.Net.Tests;

/// <summary>Checks of the binding's native layouts (sizes measured with a C compiler against libbpf 1.1's headers).</summary>
public class InteropTests
{
    [Fact]
    public unsafe void NativeStructSizes_MatchLibbpf11()
    {
        Assert.Equal(80, sizeof(Interop.LibBpf.BpfObjectOpenOpts));
        Assert.Equal(24, sizeof(Interop.LibBpf.BpfTcHook));
        Assert.Equal(32, sizeof(Interop.LibBpf.BpfTcOpts));
        Assert.Equal(80, sizeof(Interop.LibBpf.BpfTestRunOpts));
        Assert.Equal(24, sizeof(Interop.LibBpf.BpfMapBatchOpts));
        Assert.Equal(88, sizeof(Interop.LibBpf.BpfMapInfo));
        Assert.Equal(232, sizeof(Interop.LibBpf.BpfProgInfo));
    }

    /// <summary>
    /// libbpf rejects options whose bytes between the last field it knows and <c>sz</c> are not
    /// zero, and padding is not zeroed by optimized code (ReadyToRun, tier 1): every options struct
    /// ends with a field, none with padding.
    /// </summary>
    [Fact]
    public unsafe void OptionStructsEndWithAFieldNotPadding()
    {
        Assert.Equal(sizeof(Interop.LibBpf.BpfObjectOpenOpts) - 4, (int)Marshal.OffsetOf<Interop.LibBpf.BpfObjectOpenOpts>(nameof(Interop.LibBpf.BpfObjectOpenOpts.tail_zero)));
        Assert.Equal(sizeof(Interop.LibBpf.BpfTcHook) - 4, (int)Marshal.OffsetOf<Interop.LibBpf.BpfTcHook>(nameof(Interop.LibBpf.BpfTcHook.tail_zero)));
        Assert.Equal(sizeof(Interop.LibBpf.BpfTcOpts) - 4, (int)Marshal.OffsetOf<Interop.LibBpf.BpfTcOpts>(nameof(Interop.LibBpf.BpfTcOpts.tail_zero)));
        Assert.Equal(sizeof(Interop.LibBpf.BpfTestRunOpts) - 4, (int)Marshal.OffsetOf<Interop.LibBpf.BpfTestRunOpts>(nameof(Interop.LibBpf.BpfTestRunOpts.batch_size)));
        Assert.Equal(sizeof(Interop.LibBpf.BpfMapBatchOpts) - 8, (int)Marshal.OffsetOf<Interop.LibBpf.BpfMapBatchOpts>(nameof(Interop.LibBpf.BpfMapBatchOpts.flags)));
    }

    [Fact]
    public void ErrnoNames()
    {
        Assert.Equal("EPERM", BpfException.GetErrnoName(1));
        Assert.Equal("E2BIG", BpfException.GetErrnoName(7));
        Assert.Equal("EBUSY", BpfException.GetErrnoName(16));
        Assert.Equal("EINVAL", BpfException.GetErrnoName(22));
        Assert.Equal("ENOSPC", BpfException.GetErrnoName(28));
        Assert.Equal("ENOMSG", BpfException.GetErrnoName(42));
        Assert.Equal("EBFONT", BpfException.GetErrnoName(59));
        Assert.Equal("EOPNOTSUPP", BpfException.GetErrnoName(95));
        Assert.Equal("ECANCELED", BpfException.GetErrnoName(125));
        Assert.Equal("EHWPOISON", BpfException.GetErrnoName(133));
        Assert.Equal("ENOTSUPP", BpfException.GetErrnoName(524));
        Assert.Equal("E#9999", BpfException.GetErrnoName(9999));
    }

    [Fact]
    public void Message_Format()
    {
        var e = new BpfException(7, "bpf_map_update_elem", "map", "lb4_services");

        Assert.Equal("bpf_map_update_elem on map 'lb4_services' failed: E2BIG (errno 7): Argument list too long", e.Message);
        Assert.Equal("bpf_map_lookup_batch failed: ENOTSUPP (errno 524): Operation not supported (kernel ENOTSUPP)", new BpfException(524, "bpf_map_lookup_batch").Message);
    }

    [Fact]
    public void Libbpf_Facts()
    {
        Assert.StartsWith("v1.", Libbpf.Version);
        Assert.InRange(Libbpf.NumPossibleCpus, Environment.ProcessorCount, 4096);
    }
}
