namespace LibBpf.Net;

internal static partial class Interop
{
    internal static class Libraries
    {
        /// <summary>The libbpf runtime SONAME (Debian's libbpf1; the unversioned .so only ships with -dev).</summary>
        internal const string LibBpf = "libbpf.so.1";

        /// <summary>The C library (glibc's SONAME).</summary>
        internal const string Libc = "libc.so.6";
    }
}
