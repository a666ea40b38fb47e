using System.Runtime.InteropServices;

namespace LibBpf.Net;

internal static partial class Interop
{
    /// <summary>fd-level object operations: pinning, get-by-id, info.</summary>
    internal static unsafe partial class LibBpf
    {
        /// <summary>Prefix of uapi <c>struct bpf_map_info</c> (88 bytes in 6.1; the kernel copies min(sizes)).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct BpfMapInfo
        {
            public uint type;
            public uint id;
            public uint key_size;
            public uint value_size;
            public uint max_entries;
            public uint map_flags;
            public fixed byte name[16];
            public uint ifindex;
            public uint btf_vmlinux_value_type_id;
            public ulong netns_dev;
            public ulong netns_ino;
            public uint btf_id;
            public uint btf_key_type_id;
            public uint btf_value_type_id;
            public uint pad;
            public ulong map_extra;
        }

        /// <summary>uapi <c>struct bpf_prog_info</c> as of 6.1 (232 bytes; the kernel copies min(sizes)).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct BpfProgInfo
        {
            public uint type;
            public uint id;
            public fixed byte tag[8];
            public uint jited_prog_len;
            public uint xlated_prog_len;
            public ulong jited_prog_insns;
            public ulong xlated_prog_insns;
            public ulong load_time;
            public uint created_by_uid;
            public uint nr_map_ids;
            public ulong map_ids;
            public fixed byte name[16];
            public uint ifindex;
            public uint gpl_compatible; // bit 0
            public ulong netns_dev;
            public ulong netns_ino;
            public uint nr_jited_ksyms;
            public uint nr_jited_func_lens;
            public ulong jited_ksyms;
            public ulong jited_func_lens;
            public uint btf_id;
            public uint func_info_rec_size;
            public ulong func_info;
            public uint nr_func_info;
            public uint nr_line_info;
            public ulong line_info;
            public ulong jited_line_info;
            public uint nr_jited_line_info;
            public uint line_info_rec_size;
            public uint jited_line_info_rec_size;
            public uint nr_prog_tags;
            public ulong prog_tags;
            public ulong run_time_ns;
            public ulong run_cnt;
            public ulong recursion_misses;
            public uint verified_insns;
            public uint attach_btf_obj_id;
            public uint attach_btf_id;
            public uint pad;
        }

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_obj_get", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        private static partial int bpf_obj_get(string path);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_obj_pin", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        private static partial int bpf_obj_pin(int fd, string path);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map_get_fd_by_id", SetLastError = true)]
        private static partial int bpf_map_get_fd_by_id(uint id);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_prog_get_fd_by_id", SetLastError = true)]
        private static partial int bpf_prog_get_fd_by_id(uint id);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_obj_get_info_by_fd", SetLastError = true)]
        private static partial int bpf_obj_get_info_by_fd(int fd, void* info, uint* infoLen);

        internal static SafeBpfFdHandle ObjGet(string path) =>
            SafeBpfFdHandle.FromResult(bpf_obj_get(path), "bpf_obj_get", "path", path);

        internal static void ObjPin(SafeBpfFdHandle fd, string path, string? kind, string name)
        {
            int rc;
            using (var lease = new HandleLease(fd))
            {
                rc = bpf_obj_pin(lease.Fd, path);
            }
            if (rc < 0)
            {
                throw new BpfException(-rc, "bpf_obj_pin", kind, name, detail: $"path '{path}'");
            }
        }

        internal static SafeBpfFdHandle MapGetFdById(uint id) =>
            SafeBpfFdHandle.FromResult(bpf_map_get_fd_by_id(id), "bpf_map_get_fd_by_id", "map id", id.ToString(System.Globalization.CultureInfo.InvariantCulture));

        internal static SafeBpfFdHandle ProgGetFdById(uint id) =>
            SafeBpfFdHandle.FromResult(bpf_prog_get_fd_by_id(id), "bpf_prog_get_fd_by_id", "program id", id.ToString(System.Globalization.CultureInfo.InvariantCulture));

        internal static BpfMapInfo GetMapInfo(SafeBpfFdHandle fd, string? name)
        {
            BpfMapInfo info = default;
            GetInfo(fd, &info, (uint)sizeof(BpfMapInfo), "map", name);
            return info;
        }

        internal static BpfProgInfo GetProgInfo(SafeBpfFdHandle fd, string? name)
        {
            BpfProgInfo info = default;
            GetInfo(fd, &info, (uint)sizeof(BpfProgInfo), "program", name);
            return info;
        }

        /// <summary>
        /// The head of <c>struct bpf_link_info</c>: type, id, prog_id, then the per-type union at
        /// offset 16 (8-byte aligned); for tcx links (Linux 6.6+) it starts with ifindex, attach_type.
        /// The kernel fills only what it has and accepts a shorter buffer than its struct.
        /// </summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct BpfLinkInfoHead
        {
            public uint type;
            public uint id;
            public uint prog_id;
            public uint pad;
            public uint tcx_ifindex;
            public uint tcx_attach_type;
            public ulong reserved0;
            public ulong reserved1;
        }

        internal static BpfLinkInfoHead GetLinkInfo(SafeBpfFdHandle fd, string? name)
        {
            BpfLinkInfoHead info = default;
            GetInfo(fd, &info, (uint)sizeof(BpfLinkInfoHead), "link", name);
            return info;
        }

        private static void GetInfo(SafeBpfFdHandle fd, void* info, uint size, string kind, string? name)
        {
            int rc;
            using (var lease = new HandleLease(fd))
            {
                rc = bpf_obj_get_info_by_fd(lease.Fd, info, &size);
                name ??= "fd " + lease.Fd.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            ThrowIfNegative(rc, "bpf_obj_get_info_by_fd", kind, name);
        }
    }
}
