using System.Runtime.InteropServices;

namespace LibBpf.Net;

internal static partial class Interop
{
    /// <summary><c>bpf_program__*</c>: accessors of a program inside a <c>struct bpf_object</c>.</summary>
    internal static unsafe partial class LibBpf
    {
        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_program__name")]
        private static partial byte* bpf_program__name(nint prog);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_program__section_name")]
        private static partial byte* bpf_program__section_name(nint prog);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_program__type")]
        internal static partial BpfProgramType ProgramType(nint prog);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_program__autoload")]
        [return: MarshalAs(UnmanagedType.U1)]
        internal static partial bool ProgramAutoload(nint prog);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_program__set_autoload")]
        private static partial int bpf_program__set_autoload(nint prog, [MarshalAs(UnmanagedType.U1)] bool autoload);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_program__set_type")]
        private static partial int bpf_program__set_type(nint prog, BpfProgramType type);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_program__fd")]
        private static partial int bpf_program__fd(nint prog);

        internal static string ProgramName(nint prog) => Marshal.PtrToStringUTF8((nint)bpf_program__name(prog)) ?? string.Empty;

        internal static string ProgramSectionName(nint prog) => Marshal.PtrToStringUTF8((nint)bpf_program__section_name(prog)) ?? string.Empty;

        /// <summary>The program's fd, or -errno (EINVAL) when it is not loaded.</summary>
        internal static int ProgramFd(nint prog) => bpf_program__fd(prog);

        internal static void ProgramSetAutoload(nint prog, bool autoload, string name) =>
            ThrowIfNegative(bpf_program__set_autoload(prog, autoload), "bpf_program__set_autoload", "program", name);

        internal static void ProgramSetType(nint prog, BpfProgramType type, string name) =>
            ThrowIfNegative(bpf_program__set_type(prog, type), "bpf_program__set_type", "program", name);
    }
}
