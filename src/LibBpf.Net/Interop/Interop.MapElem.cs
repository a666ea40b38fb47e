using System.Runtime.InteropServices;

namespace LibBpf.Net;

internal static partial class Interop
{
    /// <summary>Element and batch operations on a map fd (thin bpf(2) wrappers from bpf.h).</summary>
    internal static unsafe partial class LibBpf
    {
        /// <summary><c>struct bpf_map_batch_opts</c> (24 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct BpfMapBatchOpts
        {
            public nuint sz;
            public ulong elem_flags;
            public ulong flags;
        }

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map_lookup_elem", SetLastError = true)]
        private static partial int bpf_map_lookup_elem(int fd, void* key, void* value);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map_update_elem", SetLastError = true)]
        private static partial int bpf_map_update_elem(int fd, void* key, void* value, ulong flags);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map_delete_elem", SetLastError = true)]
        private static partial int bpf_map_delete_elem(int fd, void* key);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map_get_next_key", SetLastError = true)]
        private static partial int bpf_map_get_next_key(int fd, void* key, void* nextKey);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map_lookup_batch", SetLastError = true)]
        private static partial int bpf_map_lookup_batch(int fd, void* inBatch, void* outBatch, void* keys, void* values, uint* count, BpfMapBatchOpts* opts);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map_update_batch", SetLastError = true)]
        private static partial int bpf_map_update_batch(int fd, void* keys, void* values, uint* count, BpfMapBatchOpts* opts);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_map_delete_batch", SetLastError = true)]
        private static partial int bpf_map_delete_batch(int fd, void* keys, uint* count, BpfMapBatchOpts* opts);

        /// <summary>False when the key does not exist.</summary>
        internal static bool MapLookupElem(SafeBpfFdHandle fd, void* key, void* value, string name)
        {
            int rc;
            using (var lease = new HandleLease(fd))
            {
                rc = bpf_map_lookup_elem(lease.Fd, key, value);
            }
            return rc != -ENOENT && ThrowIfNegative(rc, "bpf_map_lookup_elem", "map", name) == 0;
        }

        internal static void MapUpdateElem(SafeBpfFdHandle fd, void* key, void* value, ulong flags, string name)
        {
            int rc;
            using (var lease = new HandleLease(fd))
            {
                rc = bpf_map_update_elem(lease.Fd, key, value, flags);
            }
            ThrowIfNegative(rc, "bpf_map_update_elem", "map", name);
        }

        /// <summary>False when the key does not exist.</summary>
        internal static bool MapDeleteElem(SafeBpfFdHandle fd, void* key, string name)
        {
            int rc;
            using (var lease = new HandleLease(fd))
            {
                rc = bpf_map_delete_elem(lease.Fd, key);
            }
            return rc != -ENOENT && ThrowIfNegative(rc, "bpf_map_delete_elem", "map", name) == 0;
        }

        /// <summary>False at the end of the map. A null <paramref name="key"/> returns the first key.</summary>
        internal static bool MapGetNextKey(SafeBpfFdHandle fd, void* key, void* nextKey, string name)
        {
            int rc;
            using (var lease = new HandleLease(fd))
            {
                rc = bpf_map_get_next_key(lease.Fd, key, nextKey);
            }
            return rc != -ENOENT && ThrowIfNegative(rc, "bpf_map_get_next_key", "map", name) == 0;
        }

        /// <summary>Returns 0 or -errno; <paramref name="count"/> is in (capacity) / out (elements returned, also with -ENOENT at the end).</summary>
        internal static int MapLookupBatch(SafeBpfFdHandle fd, void* inBatch, void* outBatch, void* keys, void* values, ref uint count)
        {
            var opts = new BpfMapBatchOpts { sz = (nuint)sizeof(BpfMapBatchOpts) };
            using var lease = new HandleLease(fd);
            fixed (uint* pCount = &count)
            {
                return bpf_map_lookup_batch(lease.Fd, inBatch, outBatch, keys, values, pCount, &opts);
            }
        }

        /// <summary>Returns 0 or -errno; <paramref name="count"/> is in (elements) / out (elements processed).</summary>
        internal static int MapUpdateBatch(SafeBpfFdHandle fd, void* keys, void* values, ref uint count, ulong elemFlags)
        {
            var opts = new BpfMapBatchOpts { sz = (nuint)sizeof(BpfMapBatchOpts), elem_flags = elemFlags };
            using var lease = new HandleLease(fd);
            fixed (uint* pCount = &count)
            {
                return bpf_map_update_batch(lease.Fd, keys, values, pCount, &opts);
            }
        }

        /// <summary>Returns 0 or -errno; <paramref name="count"/> is in (elements) / out (elements deleted). Stops with -ENOENT at the first missing key.</summary>
        internal static int MapDeleteBatch(SafeBpfFdHandle fd, void* keys, ref uint count)
        {
            var opts = new BpfMapBatchOpts { sz = (nuint)sizeof(BpfMapBatchOpts) };
            using var lease = new HandleLease(fd);
            fixed (uint* pCount = &count)
            {
                return bpf_map_delete_batch(lease.Fd, keys, pCount, &opts);
            }
        }
    }
}
