using System.Runtime.InteropServices;

namespace LibBpf.Net;

internal static partial class Interop
{
    internal static unsafe partial class LibBpf
    {
        /// <summary>
        /// <c>libbpf_print_fn_t libbpf_set_print(libbpf_print_fn_t fn)</c> with
        /// <c>int (*)(enum libbpf_print_level, const char *fmt, va_list ap)</c>.
        /// Process-global; returns the previous callback.
        /// </summary>
        [LibraryImport(Libraries.LibBpf, EntryPoint = "libbpf_set_print")]
        internal static partial nint SetPrint(delegate* unmanaged[Cdecl]<int, byte*, nint, int> fn);
    }
}
