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
