using System.Runtime.InteropServices;

namespace LibBpf.Net;

internal static partial class Interop
{
    /// <summary><c>bpf_map__*</c>: accessors of a map inside a <c>struct bpf_object</c> (pointer valid while the object is open).</summary>
    internal static unsafe partial class LibBpf
    {
        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map__name")]
        private static partial byte* bpf_map__name(nint map);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map__type")]
        internal static partial BpfMapType MapType(nint map);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map__key_size")]
        internal static partial uint MapKeySize(nint map);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map__value_size")]
        internal static partial uint MapValueSize(nint map);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map__max_entries")]
        internal static partial uint MapMaxEntries(nint map);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map__map_flags")]
        internal static partial uint MapFlags(nint map);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map__is_internal")]
        [return: MarshalAs(UnmanagedType.U1)]
        internal static partial bool MapIsInternal(nint map);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map__autocreate")]
        [return: MarshalAs(UnmanagedType.U1)]
        internal static partial bool MapAutoCreate(nint map);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map__is_pinned")]
        [return: MarshalAs(UnmanagedType.U1)]
        internal static partial bool MapIsPinned(nint map);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map__pin_path")]
        private static partial byte* bpf_map__pin_path(nint map);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map__fd")]
        private static partial int bpf_map__fd(nint map);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map__set_max_entries")]
        private static partial int bpf_map__set_max_entries(nint map, uint maxEntries);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map__set_map_flags")]
        private static partial int bpf_map__set_map_flags(nint map, uint flags);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map__set_autocreate")]
        private static partial int bpf_map__set_autocreate(nint map, [MarshalAs(UnmanagedType.U1)] bool autocreate);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map__set_pin_path", StringMarshalling = StringMarshalling.Utf8)]
        private static partial int bpf_map__set_pin_path(nint map, string? path);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map__pin", StringMarshalling = StringMarshalling.Utf8)]
        private static partial int bpf_map__pin(nint map, string? path);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map__unpin", StringMarshalling = StringMarshalling.Utf8)]
        private static partial int bpf_map__unpin(nint map, string? path);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map__reuse_fd")]
        private static partial int bpf_map__reuse_fd(nint map, int fd);

        internal static string MapName(nint map) => Marshal.PtrToStringUTF8((nint)bpf_map__name(map)) ?? string.Empty;

        internal static string? MapPinPath(nint map) => Marshal.PtrToStringUTF8((nint)bpf_map__pin_path(map));

        /// <summary>The map's fd, or -errno (EINVAL) when it has not been created.</summary>
        internal static int MapFd(nint map) => bpf_map__fd(map);

        internal static void MapSetMaxEntries(nint map, uint maxEntries, string name) =>
            ThrowIfNegative(bpf_map__set_max_entries(map, maxEntries), "bpf_map__set_max_entries", "map", name);

        internal static void MapSetFlags(nint map, uint flags, string name) =>
            ThrowIfNegative(bpf_map__set_map_flags(map, flags), "bpf_map__set_map_flags", "map", name);

        internal static void MapSetAutoCreate(nint map, bool autoCreate, string name) =>
            ThrowIfNegative(bpf_map__set_autocreate(map, autoCreate), "bpf_map__set_autocreate", "map", name);

        internal static void MapSetPinPath(nint map, string? path, string name) =>
            ThrowIfNegative(bpf_map__set_pin_path(map, path), "bpf_map__set_pin_path", "map", name);

        internal static void MapPin(nint map, string? path, string name) =>
            ThrowIfNegative(bpf_map__pin(map, path), "bpf_map__pin", "map", name);

        internal static void MapUnpin(nint map, string? path, string name) =>
            ThrowIfNegative(bpf_map__unpin(map, path), "bpf_map__unpin", "map", name);

        internal static void MapReuseFd(nint map, SafeBpfFdHandle fd, string name)
        {
            int rc;
            using (var lease = new HandleLease(fd))
            {
                rc = bpf_map__reuse_fd(map, lease.Fd);
            }
            ThrowIfNegative(rc, "bpf_map__reuse_fd", "map", name);
        }
    }
}
