namespace LibBpf.Net;

/// <summary>Attach points of <see cref="BpfLink.AttachCgroup"/> (enum bpf_attach_type).</summary>
public enum BpfAttachType : uint
{
    /// <summary>BPF_CGROUP_INET4_CONNECT: connect() on IPv4 sockets.</summary>
    CgroupInet4Connect = 10,
    /// <summary>BPF_CGROUP_UDP4_SENDMSG: sendmsg()/sendto() on unconnected IPv4 UDP sockets.</summary>
    CgroupUdp4Sendmsg = 14,
    /// <summary>BPF_CGROUP_UDP4_RECVMSG: the source address recvmsg()/recvfrom() report.</summary>
    CgroupUdp4Recvmsg = 19,
    /// <summary>BPF_CGROUP_INET4_GETPEERNAME: the peer address getpeername() reports.</summary>
    CgroupInet4GetPeerName = 29,
    /// <summary>BPF_TCX_INGRESS: a tc program on an interface's ingress, owned by a link (Linux 6.6+).</summary>
    TcxIngress = 46,
    /// <summary>BPF_TCX_EGRESS: a tc program on an interface's egress, owned by a link (Linux 6.6+).</summary>
    TcxEgress = 47,
}

/// <summary>What the kernel tells about a link (<c>struct bpf_link_info</c>, the fields used here).</summary>
/// <param name="Type">enum bpf_link_type (<see cref="BpfLinkInfo.TcxType"/> for tcx).</param>
/// <param name="Id">The link's kernel id.</param>
/// <param name="ProgramId">The attached program's id.</param>
/// <param name="TcxIfindex">tcx links: the interface; 0 once the interface is gone (the link is then defunct).</param>
/// <param name="TcxAttachType">tcx links: <see cref="BpfAttachType.TcxIngress"/> or <see cref="BpfAttachType.TcxEgress"/>.</param>
public readonly record struct BpfLinkInfo(uint Type, uint Id, uint ProgramId, int TcxIfindex, BpfAttachType TcxAttachType)
{
    /// <summary>BPF_LINK_TYPE_TCX.</summary>
    public const uint TcxType = 11;
}

/// <summary>
/// A BPF link (an attachment owned by an fd). It detaches when its last reference goes: the fd,
/// or a pin on bpffs, which lets an attachment outlive the process and be taken over by a
/// successor (<see cref="OpenPinned"/> then <see cref="Update"/> swaps the program atomically).
/// </summary>
public sealed class BpfLink : IDisposable
{
    private BpfLink(SafeBpfFdHandle fd, string name)
    {
        Fd = fd;
        Name = name;
    }

    /// <summary>The link's fd; closing it (with no pin left) detaches the program.</summary>
    public SafeBpfFdHandle Fd { get; }

    /// <summary>The program or pin path it was created from, for messages.</summary>
    public string Name { get; }

    /// <summary>Attaches <paramref name="program"/> to the cgroup (v2) directory <paramref name="cgroupPath"/>.</summary>
    public static BpfLink AttachCgroup(BpfProgram program, string cgroupPath, BpfAttachType type)
    {
        ArgumentNullException.ThrowIfNull(program);
        using var cgroup = Interop.Libc.OpenDirectory(cgroupPath);
        int cgroupFd;
        using (var lease = new HandleLease(cgroup))
        {
            cgroupFd = lease.Fd;
            return new BpfLink(Interop.LibBpf.LinkCreate(program.Fd, cgroupFd, type, program.Name), program.Name);
        }
    }

    /// <summary>
    /// Attaches a SCHED_CLS <paramref name="program"/> to <paramref name="ifindex"/> (of the calling
    /// thread's network namespace) through a tcx link (Linux 6.6+), behind whatever tcx programs are
    /// already there. libbpf 1.1 has no helper for it (<c>bpf_program__attach_tcx</c> came in 1.3);
    /// <c>bpf_link_create</c> passes the ifindex as the target. Older kernels answer EINVAL.
    /// </summary>
    public static BpfLink AttachTcx(BpfProgram program, int ifindex, TcAttachPoint point)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(ifindex);
        var type = point switch
        {
            TcAttachPoint.Ingress => BpfAttachType.TcxIngress,
            TcAttachPoint.Egress => BpfAttachType.TcxEgress,
            _ => throw new ArgumentOutOfRangeException(nameof(point), point, "ingress or egress"),
        };
        return new BpfLink(Interop.LibBpf.LinkCreate(program.Fd, ifindex, type, program.Name), program.Name);
    }

    /// <summary>The kernel's information about the link (<c>bpf_obj_get_info_by_fd</c>).</summary>
    public BpfLinkInfo GetInfo()
    {
        var info = Interop.LibBpf.GetLinkInfo(Fd, Name);
        return new BpfLinkInfo(info.type, info.id, info.prog_id, (int)info.tcx_ifindex, (BpfAttachType)info.tcx_attach_type);
    }

    /// <summary>Opens a pinned link.</summary>
    public static BpfLink OpenPinned(string path) => new(Interop.LibBpf.ObjGet(path), path);

    /// <summary>Pins the link at <paramref name="path"/> (on bpffs): it stays attached after this process.</summary>
    public void Pin(string path) => Interop.LibBpf.ObjPin(Fd, path, "link", Name);

    /// <summary>Replaces the link's program in place (no moment without a program attached).</summary>
    public void Update(BpfProgram program)
    {
        ArgumentNullException.ThrowIfNull(program);
        Interop.LibBpf.LinkUpdate(Fd, program.Fd, program.Name);
    }

    /// <summary>Closes this process's reference; a pinned link stays attached.</summary>
    public void Dispose() => Fd.Dispose();
}
