using System.Runtime.InteropServices;

namespace LibBpf.Net;

internal static partial class Interop
{
    internal static unsafe partial class LibBpf
    {
        /// <summary><c>struct bpf_test_run_opts</c> (libbpf 1.1, 80 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct BpfTestRunOpts
        {
            public nuint sz;
            public void* data_in;
            public void* data_out;
            public uint data_size_in;
            public uint data_size_out; // in: capacity of data_out (0 = unbounded!), out: full output length
            public void* ctx_in;
            public void* ctx_out;
            public uint ctx_size_in;
            public uint ctx_size_out;
            public uint retval;
            public int repeat;
            public uint duration;
            public uint flags;
            public uint cpu;
            public uint batch_size;
        }

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_prog_test_run_opts", SetLastError = true)]
        private static partial int bpf_prog_test_run_opts(int progFd, BpfTestRunOpts* opts);

        /// <summary>Returns 0 or -errno; output fields of <paramref name="opts"/> are set even on -ENOSPC.</summary>
        internal static int ProgTestRun(SafeBpfFdHandle fd, ref BpfTestRunOpts opts)
        {
            using var lease = new HandleLease(fd);
            fixed (BpfTestRunOpts* p = &opts)
            {
                return bpf_prog_test_run_opts(lease.Fd, p);
            }
        }
    }
}
