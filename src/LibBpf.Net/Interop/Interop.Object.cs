using System.Runtime.InteropServices;
using System.Runtime.InteropServices.Marshalling;

namespace LibBpf.Net;

internal static partial class Interop
{
    internal static unsafe partial class LibBpf
    {
        /// <summary><c>struct bpf_object_open_opts</c> (libbpf 1.1, 80 bytes on LP64).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct BpfObjectOpenOpts
        {
            public nuint sz;
            public byte* object_name;
            public byte relaxed_maps; // bool
            public byte* pin_root_path;
            public uint removed_attach_prog_fd; // __u32 :32
            public byte* kconfig;
            public byte* btf_custom_path;
            public byte* kernel_log_buf;
            public nuint kernel_log_size;
            public uint kernel_log_level;
            /// <inheritdoc cref="BpfTcHook.tail_zero"/>
            public uint tail_zero;
        }

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_object__open_file", SetLastError = true)]
        private static partial nint bpf_object__open_file(byte* path, BpfObjectOpenOpts* opts);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_object__load")]
        private static partial int bpf_object__load(SafeBpfObjectHandle obj);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_object__close")]
        internal static partial void ObjectClose(nint obj);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_object__name")]
        private static partial byte* bpf_object__name(SafeBpfObjectHandle obj);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_object__next_map")]
        internal static partial nint ObjectNextMap(SafeBpfObjectHandle obj, nint prev);

        [LibraryImport(Libraries.LibBpf, EntryPoint = "bpf_object__next_program")]
        internal static partial nint ObjectNextProgram(SafeBpfObjectHandle obj, nint prev);

        internal static SafeBpfObjectHandle ObjectOpenFile(string path, string? objectName, string? pinRootPath, string? btfCustomPath, uint kernelLogLevel)
        {
            byte* pPath = Utf8StringMarshaller.ConvertToUnmanaged(path);
            byte* pName = Utf8StringMarshaller.ConvertToUnmanaged(objectName);
            byte* pPin = Utf8StringMarshaller.ConvertToUnmanaged(pinRootPath);
            byte* pBtf = Utf8StringMarshaller.ConvertToUnmanaged(btfCustomPath);
            try
            {
                var opts = new BpfObjectOpenOpts
                {
                    sz = (nuint)sizeof(BpfObjectOpenOpts),
                    object_name = pName,
                    pin_root_path = pPin,
                    btf_custom_path = pBtf,
                    kernel_log_level = kernelLogLevel,
                };
                nint obj = bpf_object__open_file(pPath, &opts);
                if (obj == 0)
                {
                    throw LastErrorException("bpf_object__open_file", "file", path);
                }
                return new SafeBpfObjectHandle(obj);
            }
            finally
            {
                Utf8StringMarshaller.Free(pPath);
                Utf8StringMarshaller.Free(pName);
                Utf8StringMarshaller.Free(pPin);
                Utf8StringMarshaller.Free(pBtf);
            }
        }

        /// <summary>Returns 0 or -errno (the caller adds the captured log to the exception).</summary>
        internal static int ObjectLoad(SafeBpfObjectHandle obj) => bpf_object__load(obj);

        internal static string ObjectName(SafeBpfObjectHandle obj) => Marshal.PtrToStringUTF8((nint)bpf_object__name(obj)) ?? string.Empty;
    }
}
