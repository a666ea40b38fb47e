namespace LibBpf.Net;

/// <summary>Where a tc BPF filter runs (<c>enum bpf_tc_attach_point</c>).</summary>
public enum TcAttachPoint
{
    /// <summary><c>BPF_TC_INGRESS</c>: clsact ingress.</summary>
    Ingress = 1,
    /// <summary><c>BPF_TC_EGRESS</c>: clsact egress.</summary>
    Egress = 2,
}

/// <summary>A tc BPF filter created by <see cref="TcHook.Attach(int, TcAttachPoint, SafeBpfFdHandle, uint, uint, bool)"/>.</summary>
/// <param name="Ifindex">Interface index (in the network namespace of the attaching thread).</param>
/// <param name="AttachPoint">Ingress or egress.</param>
/// <param name="Handle">Filter handle (chosen by the kernel when 0 was requested).</param>
/// <param name="Priority">Filter priority (chosen by the kernel when 0 was requested).</param>
/// <param name="ProgramId">Kernel id of the attached program.</param>
public readonly record struct TcAttachment(int Ifindex, TcAttachPoint AttachPoint, uint Handle, uint Priority, uint ProgramId);

/// <summary>A tc BPF filter found by <see cref="TcHook.Query"/>.</summary>
/// <param name="Handle">Filter handle.</param>
/// <param name="Priority">Filter priority.</param>
/// <param name="ProgramId">Kernel id of the attached program.</param>
public readonly record struct TcFilterInfo(uint Handle, uint Priority, uint ProgramId);

/// <summary>
/// tc (clsact qdisc + direct-action bpf filter) attachment through libbpf's netlink API
/// (<c>bpf_tc_*</c>; libbpf 1.1 predates TCX). Each call opens its own netlink socket, so it acts in the
/// network namespace of the calling thread. Filters are kernel state: nothing here detaches on dispose
/// or process exit; attach and detach are explicit.
/// </summary>
public static class TcHook
{
    private const int BothPoints = (int)TcAttachPoint.Ingress | (int)TcAttachPoint.Egress;

    /// <summary>Creates the clsact qdisc on <paramref name="ifindex"/> unless it exists (<c>bpf_tc_hook_create</c>).</summary>
    /// <returns>True if this call created it, false if it already existed.</returns>
    public static bool EnsureClsact(int ifindex)
    {
        int rc = Interop.LibBpf.TcHookCreate(Interop.LibBpf.TcHook(ifindex, BothPoints));
        if (rc == -Interop.EEXIST)
        {
            return false;
        }
        Throw(rc, "bpf_tc_hook_create", ifindex, null);
        return true;
    }

    /// <summary>Deletes the clsact qdisc and with it every filter on both points (<c>bpf_tc_hook_destroy</c>).</summary>
    /// <returns>False when there was no clsact qdisc.</returns>
    public static bool DestroyClsact(int ifindex)
    {
        int rc = Interop.LibBpf.TcHookDestroy(Interop.LibBpf.TcHook(ifindex, BothPoints));
        if (rc is -Interop.ENOENT or -Interop.EINVAL)
        {
            return false;
        }
        Throw(rc, "bpf_tc_hook_destroy", ifindex, null);
        return true;
    }

    /// <summary>Attaches a loaded program, see <see cref="Attach(int, TcAttachPoint, SafeBpfFdHandle, uint, uint, bool)"/>.</summary>
    public static TcAttachment Attach(int ifindex, TcAttachPoint point, BpfProgram program, uint handle, uint priority, bool replace = false)
    {
        ArgumentNullException.ThrowIfNull(program);
        return Attach(ifindex, point, program.Fd, handle, priority, replace);
    }

    /// <summary>
    /// Adds a direct-action bpf filter running <paramref name="programFd"/> at <paramref name="point"/>
    /// (<c>bpf_tc_attach</c>). The clsact qdisc must exist (<see cref="EnsureClsact"/>).
    /// </summary>
    /// <param name="ifindex">Interface index.</param>
    /// <param name="point">Ingress or egress.</param>
    /// <param name="programFd">A loaded SCHED_CLS program.</param>
    /// <param name="handle">Filter handle; 0 lets the kernel choose (not with <paramref name="replace"/>).</param>
    /// <param name="priority">Filter priority (1..65535, lower runs first); 0 lets the kernel choose (not with <paramref name="replace"/>).</param>
    /// <param name="replace">
    /// BPF_TC_F_REPLACE: atomically replace the program of the existing filter with this handle and priority
    /// (or create it). Without it an existing filter fails with EEXIST.
    /// </param>
    public static TcAttachment Attach(int ifindex, TcAttachPoint point, SafeBpfFdHandle programFd, uint handle, uint priority, bool replace = false)
    {
        ArgumentNullException.ThrowIfNull(programFd);
        CheckPoint(point);
        var opts = Interop.LibBpf.TcOpts(handle, priority);
        opts.flags = replace ? (uint)Interop.LibBpf.BPF_TC_F_REPLACE : 0;
        int rc = Interop.LibBpf.TcAttach(Interop.LibBpf.TcHook(ifindex, (int)point), ref opts, programFd);
        Throw(rc, "bpf_tc_attach", ifindex, point);
        return new TcAttachment(ifindex, point, opts.handle, opts.priority, opts.prog_id);
    }

    /// <summary>Removes the filter with <paramref name="handle"/> and <paramref name="priority"/> (<c>bpf_tc_detach</c>).</summary>
    /// <returns>False when there was no such filter (or no clsact qdisc).</returns>
    public static bool Detach(int ifindex, TcAttachPoint point, uint handle, uint priority)
    {
        CheckFilter(point, handle, priority);
        LibBpfLog.EnsureInstalled(); // "no qdisc" is an answer here, not a message for stderr
        int rc = Interop.LibBpf.TcDetach(Interop.LibBpf.TcHook(ifindex, (int)point), Interop.LibBpf.TcOpts(handle, priority));
        if (rc is -Interop.ENOENT or -Interop.EINVAL) // the kernel answers EINVAL when there is no qdisc
        {
            return false;
        }
        Throw(rc, "bpf_tc_detach", ifindex, point);
        return true;
    }

    /// <summary>Detaches <paramref name="attachment"/>.</summary>
    /// <returns>False when the filter was already gone.</returns>
    public static bool Detach(TcAttachment attachment) =>
        Detach(attachment.Ifindex, attachment.AttachPoint, attachment.Handle, attachment.Priority);

    /// <summary>Finds the bpf filter with <paramref name="handle"/> and <paramref name="priority"/> (<c>bpf_tc_query</c>).</summary>
    /// <returns>The filter, or null when there is none (or no clsact qdisc).</returns>
    public static TcFilterInfo? Query(int ifindex, TcAttachPoint point, uint handle, uint priority)
    {
        CheckFilter(point, handle, priority);
        // libbpf prints the kernel's "Parent Qdisc doesn't exists" to stderr unless its print
        // callback is ours; for a query, no qdisc is an answer (null), not a message.
        LibBpfLog.EnsureInstalled();
        var opts = Interop.LibBpf.TcOpts(handle, priority);
        int rc = Interop.LibBpf.TcQuery(Interop.LibBpf.TcHook(ifindex, (int)point), ref opts);
        if (rc is -Interop.ENOENT or -Interop.EINVAL) // the kernel answers EINVAL when there is no qdisc
        {
            return null;
        }
        Throw(rc, "bpf_tc_query", ifindex, point);
        return new TcFilterInfo(opts.handle, opts.priority, opts.prog_id);
    }

    private static void CheckFilter(TcAttachPoint point, uint handle, uint priority)
    {
        CheckPoint(point);
        // libbpf rejects 0 with EINVAL, which would be indistinguishable from "no qdisc".
        ArgumentOutOfRangeException.ThrowIfZero(handle);
        ArgumentOutOfRangeException.ThrowIfZero(priority);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(priority, (uint)ushort.MaxValue);
    }

    private static void CheckPoint(TcAttachPoint point)
    {
        if (point is not (TcAttachPoint.Ingress or TcAttachPoint.Egress))
        {
            throw new ArgumentOutOfRangeException(nameof(point), point, "ingress or egress");
        }
    }

    private static void Throw(int rc, string operation, int ifindex, TcAttachPoint? point)
    {
        if (rc < 0)
        {
            string where = Interop.Libc.DescribeInterface(ifindex);
            throw new BpfException(-rc, operation, "interface", point is null ? where : $"{where} {point.Value.ToString().ToLowerInvariant()}");
        }
    }
}
