using System.Runtime.InteropServices;

namespace LibBpf.Net;

internal static partial class Interop
{
    /// <summary>XDP attach/detach/query (netlink, in the calling thread's network namespace).</summary>
    internal static unsafe partial class LibBpf
    {
        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_xdp_attach")]
        private static partial int bpf_xdp_attach(int ifindex, int progFd, uint flags, void* opts);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_xdp_detach")]
        private static partial int bpf_xdp_detach(int ifindex, uint flags, void* opts);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_xdp_query_id")]
        private static partial int bpf_xdp_query_id(int ifindex, int flags, uint* progId);

        internal static void XdpAttach(int ifindex, SafeBpfFdHandle prog, uint flags)
        {
            int rc;
            using (var lease = new HandleLease(prog))
            {
                rc = bpf_xdp_attach(ifindex, lease.Fd, flags, null);
            }
            if (rc < 0)
            {
                throw new BpfException(-rc, "bpf_xdp_attach", "interface", Libc.DescribeInterface(ifindex));
            }
        }

        internal static void XdpDetach(int ifindex, uint flags)
        {
            int rc = bpf_xdp_detach(ifindex, flags, null);
            if (rc < 0)
            {
                throw new BpfException(-rc, "bpf_xdp_detach", "interface", Libc.DescribeInterface(ifindex));
            }
        }

        internal static uint XdpQueryId(int ifindex, uint flags)
        {
            uint id = 0;
            int rc = bpf_xdp_query_id(ifindex, (int)flags, &id);
            if (rc < 0)
            {
                throw new BpfException(-rc, "bpf_xdp_query_id", "interface", Libc.DescribeInterface(ifindex));
            }
            return id;
        }
    }
}
