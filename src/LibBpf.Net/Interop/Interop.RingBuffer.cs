using System.Runtime.InteropServices;

namespace LibBpf.Net;

internal static partial class Interop
{
    internal static unsafe partial class LibBpf
    {
        /// <summary><c>struct ring_buffer *ring_buffer__new(int map_fd, ring_buffer_sample_fn cb, void *ctx, const struct ring_buffer_opts *opts)</c>.</summary>
        [LibraryImport(Libraries.LibBpf, EntryPoint = "ring_buffer__new", SetLastError = true)]
        internal static partial nint RingBufferNew(int mapFd, delegate* unmanaged[Cdecl]<nint, byte*, nuint, int> sampleCb, nint ctx, void* opts);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "ring_buffer__free")]
        internal static partial void RingBufferFree(nint rb);

        /// <summary>Returns the number of records consumed or -errno (including a callback's non-zero return).</summary>
        [LibraryImport(Libraries.LibBpf, EntryPoint = "ring_buffer__poll")]
        internal static partial int RingBufferPoll(SafeRingBufferHandle rb, int timeoutMs);

        /// <summary>Returns the number of records consumed or -errno.</summary>
        [LibraryImport(Libraries.LibBpf, EntryPoint = "ring_buffer__consume")]
        internal static partial int RingBufferConsume(SafeRingBufferHandle rb);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "ring_buffer__epoll_fd")]
        internal static partial int RingBufferEpollFd(SafeRingBufferHandle rb);
    }
}
