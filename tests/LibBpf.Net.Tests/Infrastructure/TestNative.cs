using System.Runtime.InteropServices;

namespace LibBpf.Net.Tests;

/// <summary>libc calls the tests need beyond the binding (namespaces, raw frames).</summary>
internal static unsafe partial class TestNative
{
    private const string Libc = "libc.so.6";
    private const int CLONE_NEWNET = 0x40000000;
    private const int AF_PACKET = 17;
    private const int SOCK_RAW = 3;

    [LibraryImport(Libc, EntryPoint = "geteuid")]
    internal static partial uint GetEuid();

    [LibraryImport(Libc, EntryPoint = "setns", SetLastError = true)]
    private static partial int setns(int fd, int nstype);

    [LibraryImport(Libc, EntryPoint = "if_nametoindex", StringMarshalling = StringMarshalling.Utf8)]
    private static partial uint if_nametoindex(string name);

    [LibraryImport(Libc, EntryPoint = "socket", SetLastError = true)]
    private static partial int socket(int domain, int type, int protocol);

    [LibraryImport(Libc, EntryPoint = "sendto", SetLastError = true)]
    private static partial nint sendto(int fd, byte* buf, nuint len, int flags, byte* addr, int addrLen);

    [LibraryImport(Libc, EntryPoint = "close")]
    private static partial int close(int fd);

    /// <summary>Moves the calling thread into the network namespace at <paramref name="path"/>.</summary>
    internal static void EnterNetNs(string path)
    {
        using Microsoft.Win32.SafeHandles.SafeFileHandle ns = File.OpenHandle(path);
        if (setns((int)ns.DangerousGetHandle(), CLONE_NEWNET) != 0)
        {
            throw new InvalidOperationException($"setns({path}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    /// <summary>Interface index in the calling thread's network namespace.</summary>
    internal static int IfIndex(string name)
    {
        uint index = if_nametoindex(name);
        return index != 0 ? (int)index : throw new InvalidOperationException($"no interface '{name}'");
    }

    /// <summary>Transmits raw Ethernet frames on an interface (AF_PACKET), in the calling thread's namespace.</summary>
    internal static void SendFrames(int ifindex, ReadOnlySpan<byte> frame, int count)
    {
        int fd = socket(AF_PACKET, SOCK_RAW, 0);
        if (fd < 0)
        {
            throw new InvalidOperationException($"socket(AF_PACKET) failed: errno {Marshal.GetLastPInvokeError()}");
        }
        try
        {
            // struct sockaddr_ll: family, protocol (be16), ifindex, hatype, pkttype, halen, addr[8]
            byte* addr = stackalloc byte[20];
            new Span<byte>(addr, 20).Clear();
            *(ushort*)addr = AF_PACKET;
            *(int*)(addr + 4) = ifindex;
            addr[11] = 6;
            frame[..6].CopyTo(new Span<byte>(addr + 12, 6));
            fixed (byte* p = frame)
            {
                for (int i = 0; i < count; i++)
                {
                    if (sendto(fd, p, (nuint)frame.Length, 0, addr, 20) < 0)
                    {
                        throw new InvalidOperationException($"sendto failed: errno {Marshal.GetLastPInvokeError()}");
                    }
                }
            }
        }
        finally
        {
            close(fd);
        }
    }
}
