using System.Runtime.InteropServices;

namespace LibBpf.Net;

internal static partial class Interop
{
    /// <summary>tc clsact qdisc and bpf filter management (netlink, in the calling thread's network namespace).</summary>
    internal static unsafe partial class LibBpf
    {
        internal const int BPF_TC_F_REPLACE = 1;

        /// <summary><c>struct bpf_tc_hook</c> (24 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct BpfTcHook
        {
            public nuint sz;
            public int ifindex;
            public int attach_point; // enum bpf_tc_attach_point
            public uint parent;
            /// <summary>
            /// The C struct's tail padding (<c>size_t :0</c>), as a field so that it is always zero:
            /// libbpf rejects options whose bytes past the last field are not (EINVAL, "has non-zero
            /// extra bytes"), and optimized code does not zero padding.
            /// </summary>
            public uint tail_zero;
        }

        /// <summary><c>struct bpf_tc_opts</c> (32 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct BpfTcOpts
        {
            public nuint sz;
            public int prog_fd;
            public uint flags;
            public uint prog_id;
            public uint handle;
            public uint priority;
            /// <inheritdoc cref="BpfTcHook.tail_zero"/>
            public uint tail_zero;
        }

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_tc_hook_create")]
        private static partial int bpf_tc_hook_create(BpfTcHook* hook);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_tc_hook_destroy")]
        private static partial int bpf_tc_hook_destroy(BpfTcHook* hook);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_tc_attach")]
        private static partial int bpf_tc_attach(BpfTcHook* hook, BpfTcOpts* opts);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_tc_detach")]
        private static partial int bpf_tc_detach(BpfTcHook* hook, BpfTcOpts* opts);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_tc_query")]
        private static partial int bpf_tc_query(BpfTcHook* hook, BpfTcOpts* opts);

        internal static BpfTcHook TcHook(int ifindex, int attachPoint) =>
            new() { sz = (nuint)sizeof(BpfTcHook), ifindex = ifindex, attach_point = attachPoint };

        internal static BpfTcOpts TcOpts(uint handle, uint priority) =>
            new() { sz = (nuint)sizeof(BpfTcOpts), handle = handle, priority = priority };

        /// <summary>Returns 0 or -errno (-EEXIST when the qdisc already exists).</summary>
        internal static int TcHookCreate(BpfTcHook hook) => bpf_tc_hook_create(&hook);

        /// <summary>Returns 0 or -errno.</summary>
        internal static int TcHookDestroy(BpfTcHook hook) => bpf_tc_hook_destroy(&hook);

        /// <summary>Returns 0 or -errno; fills handle, priority and prog_id.</summary>
        internal static int TcAttach(BpfTcHook hook, ref BpfTcOpts opts, SafeBpfFdHandle prog)
        {
            using var lease = new HandleLease(prog);
            opts.prog_fd = lease.Fd;
            fixed (BpfTcOpts* p = &opts)
            {
                int rc = bpf_tc_attach(&hook, p);
                p->prog_fd = 0;
                return rc;
            }
        }

        /// <summary>Returns 0 or -errno.</summary>
        internal static int TcDetach(BpfTcHook hook, BpfTcOpts opts) => bpf_tc_detach(&hook, &opts);

        /// <summary>Returns 0 or -errno; fills prog_id.</summary>
        internal static int TcQuery(BpfTcHook hook, ref BpfTcOpts opts)
        {
            fixed (BpfTcOpts* p = &opts)
            {
                return bpf_tc_query(&hook, p);
            }
        }
    }
}
