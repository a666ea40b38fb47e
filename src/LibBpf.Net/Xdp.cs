namespace LibBpf.Net;

/// <summary>XDP attach flags (<c>XDP_FLAGS_*</c>).</summary>
[Flags]
public enum XdpFlags : uint
{
    /// <summary>Let the kernel pick native (driver) mode if supported, else generic.</summary>
    None = 0,
    /// <summary><c>XDP_FLAGS_UPDATE_IF_NOEXIST</c>: fail with EBUSY if a program is already attached.</summary>
    UpdateIfNoExist = 1 << 0,
    /// <summary><c>XDP_FLAGS_SKB_MODE</c>: generic (skb) mode.</summary>
    SkbMode = 1 << 1,
    /// <summary><c>XDP_FLAGS_DRV_MODE</c>: native driver mode.</summary>
    DrvMode = 1 << 2,
    /// <summary><c>XDP_FLAGS_HW_MODE</c>: offloaded to the NIC.</summary>
    HwMode = 1 << 3,
    /// <summary><c>XDP_FLAGS_REPLACE</c>: replace only an expected program (needs the old fd; not exposed here).</summary>
    Replace = 1 << 4,
}

/// <summary>
/// XDP attachment through netlink (<c>bpf_xdp_*</c>), in the network namespace of the calling thread.
/// Attachments are kernel state and outlive the process; detach is explicit. Attaching over an
/// existing program replaces it atomically unless <see cref="XdpFlags.UpdateIfNoExist"/> is set.
/// </summary>
public static class Xdp
{
    /// <summary>Attaches <paramref name="programFd"/> to <paramref name="ifindex"/> (<c>bpf_xdp_attach</c>).</summary>
    public static void Attach(int ifindex, SafeBpfFdHandle programFd, XdpFlags flags = XdpFlags.None)
    {
        ArgumentNullException.ThrowIfNull(programFd);
        Interop.LibBpf.XdpAttach(ifindex, programFd, (uint)flags);
    }

    /// <summary>Attaches a loaded program to <paramref name="ifindex"/> (<c>bpf_xdp_attach</c>).</summary>
    public static void Attach(int ifindex, BpfProgram program, XdpFlags flags = XdpFlags.None)
    {
        ArgumentNullException.ThrowIfNull(program);
        Attach(ifindex, program.Fd, flags);
    }

    /// <summary>Detaches the program of the mode given in <paramref name="flags"/> (<c>bpf_xdp_detach</c>); no error if none.</summary>
    public static void Detach(int ifindex, XdpFlags flags = XdpFlags.None) =>
        Interop.LibBpf.XdpDetach(ifindex, (uint)flags);

    /// <summary>
    /// Id of the program attached in the mode given in <paramref name="flags"/> (SkbMode, DrvMode, HwMode;
    /// None: the single attached program), 0 when none (<c>bpf_xdp_query_id</c>).
    /// </summary>
    public static uint QueryProgramId(int ifindex, XdpFlags flags = XdpFlags.None) =>
        Interop.LibBpf.XdpQueryId(ifindex, (uint)flags);
}
