using System.Runtime.InteropServices;

namespace LibBpf.Net;

internal static partial class Interop
{
    internal static unsafe partial class LibBpf
    {
        internal const uint BtfKindStruct = 4;
        internal const uint BtfKindEnum = 6;

        [StructLayout(LayoutKind.Sequential)]
        internal struct btf_type
        {
            public uint name_off;
            public uint info;
            public uint size_or_type;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct btf_member
        {
            public uint name_off;
            public uint type;
            public uint offset;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct btf_enum
        {
            public uint name_off;
            public int val;
        }

        [LibraryImport(Libraries.LibBpf, EntryPoint = "btf__parse_elf", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        internal static partial SafeBtfHandle btf__parse_elf(string path, nint btfExt);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "btf__free")]
        internal static partial void btf__free(nint btf);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "btf__find_by_name_kind", StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int btf__find_by_name_kind(SafeBtfHandle btf, string name, uint kind);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "btf__type_by_id")]
        internal static partial btf_type* btf__type_by_id(SafeBtfHandle btf, uint id);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "btf__name_by_offset")]
        internal static partial byte* btf__name_by_offset(SafeBtfHandle btf, uint offset);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "btf__resolve_size")]
        internal static partial long btf__resolve_size(SafeBtfHandle btf, uint typeId);
    }
}
