using System.Runtime.InteropServices;

namespace LibBpf.Net;

internal static partial class Interop
{
    internal static unsafe partial class Libc
    {
        internal const long BPF_FS_MAGIC = 0xcafe4a11;
        internal const int MNT_DETACH = 2;
        /// <summary>x86_64 SysV <c>__va_list_tag</c>: gp_offset, fp_offset, overflow_arg_area, reg_save_area.</summary>
        internal const int VaListTagSize = 24;

        [LibraryImport(Libraries.Libc, EntryPoint = "close", SetLastError = true)]
        internal static partial int Close(int fd);

        [LibraryImport(Libraries.Libc, EntryPoint = "vsnprintf")]
        internal static partial int VsnPrintf(byte* buf, nuint size, byte* format, nint args);

        [LibraryImport(Libraries.Libc, EntryPoint = "if_indextoname", SetLastError = true)]
        private static partial byte* if_indextoname(uint ifindex, byte* ifname);

        [LibraryImport(Libraries.Libc, EntryPoint = "statfs", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        private static partial int statfs(string path, byte* buf);

        [LibraryImport(Libraries.Libc, EntryPoint = "mount", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        private static partial int mount(string source, string target, string fstype, nuint flags, void* data);

        [LibraryImport(Libraries.Libc, EntryPoint = "umount2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        private static partial int umount2(string target, int flags);

        [LibraryImport(Libraries.Libc, EntryPoint = "unlink", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        private static partial int unlink(string path);

        [LibraryImport(Libraries.Libc, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        private static partial int open(string path, int flags);

        private const int O_RDONLY = 0, O_DIRECTORY = 0x10000, O_CLOEXEC = 0x80000;

        /// <summary>An fd for a directory (a cgroup, as attach target).</summary>
        internal static SafeBpfFdHandle OpenDirectory(string path)
        {
            int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            ThrowIfMinusOneErrno(fd, "open", "path", path);
            return new SafeBpfFdHandle(fd, ownsHandle: true);
        }

        internal static void Unlink(string path) =>
            ThrowIfMinusOneErrno(unlink(path), "unlink", "path", path);

        /// <summary>Returns <c>statfs(path).f_type</c> (the first, long-sized field on every 64-bit glibc ABI).</summary>
        internal static long StatFsType(string path)
        {
            long* buf = stackalloc long[32]; // struct statfs is 120 bytes on x86_64/arm64
            ThrowIfMinusOneErrno(statfs(path, (byte*)buf), "statfs", "path", path);
            return buf[0];
        }

        internal static void Mount(string source, string target, string fsType) =>
            ThrowIfMinusOneErrno(mount(source, target, fsType, 0, null), "mount", "path", target);

        internal static void Unmount(string target, int flags) =>
            ThrowIfMinusOneErrno(umount2(target, flags), "umount2", "path", target);

        /// <summary>Best-effort interface name for error messages (in the calling thread's network namespace).</summary>
        internal static string DescribeInterface(int ifindex)
        {
            byte* name = stackalloc byte[16]; // IF_NAMESIZE
            return ifindex > 0 && if_indextoname((uint)ifindex, name) != null
                ? $"{Marshal.PtrToStringUTF8((nint)name)} (ifindex {ifindex})"
                : $"ifindex {ifindex}";
        }
    }
}
