using System.Runtime.InteropServices;

namespace LibBpf.Net;

internal static partial class Interop
{
    internal static unsafe partial class LibBpf
    {
        [LibraryImport(Libraries.LibBpf, EntryPoint = "libbpf_strerror")]
        private static partial int libbpf_strerror(int err, byte* buf, nuint size);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "libbpf_num_possible_cpus")]
        private static partial int libbpf_num_possible_cpus();

        [LibraryImport(Libraries.LibBpf, EntryPoint = "libbpf_version_string")]
        private static partial byte* libbpf_version_string();

        internal static string StrError(int errno)
        {
            byte* buf = stackalloc byte[256];
            try
            {
                return libbpf_strerror(errno, buf, 256) == 0 || buf[0] != 0
                    ? Marshal.PtrToStringUTF8((nint)buf) ?? string.Empty
                    : Marshal.GetPInvokeErrorMessage(errno);
            }
            catch (DllNotFoundException)
            {
                return Marshal.GetPInvokeErrorMessage(errno);
            }
        }

        internal static int NumPossibleCpus() =>
            ThrowIfNegative(libbpf_num_possible_cpus(), "libbpf_num_possible_cpus", null, null);

        internal static string VersionString() => Marshal.PtrToStringUTF8((nint)libbpf_version_string()) ?? string.Empty;
    }
}
