using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace EbpfProxy.Datapath.Attach;

/// <summary>What a netlink notification says about an interface.</summary>
public enum LinkEventKind
{
    /// <summary>RTM_NEWLINK: an interface appeared or changed (state, name, ...).</summary>
    NewLink,
    /// <summary>RTM_DELLINK: an interface went away.</summary>
    DelLink,
    /// <summary>RTM_NEWADDR / RTM_DELADDR: an IPv4 address was added to or removed from the interface.</summary>
    Address,
}

/// <summary>One netlink notification about an interface of the monitored network namespace.</summary>
public readonly record struct LinkEvent(LinkEventKind Kind, int IfIndex, string? Name);

/// <summary>
/// A NETLINK_ROUTE socket subscribed to link and IPv4 address notifications (RTMGRP_LINK,
/// RTMGRP_IPV4_IFADDR) in the network namespace of the thread that creates it. The kernel sends
/// RTM_NEWLINK as it registers a device, so a listener learns of a pod's veth before the CNI has
/// addressed it or brought it up (Cilium's devices controller subscribes the same way:
/// pkg/datapath/linux/devices_controller.go). When the socket buffer overflows the kernel drops
/// notifications and says so (ENOBUFS): <see cref="Receive"/> then returns null and the caller
/// must rescan.
/// </summary>
public sealed partial class LinkMonitor : IDisposable
{
    private const int AF_NETLINK = 16, SOCK_RAW = 3, SOCK_CLOEXEC = 0x80000, NETLINK_ROUTE = 0;
    private const int SOL_SOCKET = 1, SO_RCVBUF = 8, SO_RCVBUFFORCE = 33;
    private const uint RTMGRP_LINK = 0x1, RTMGRP_IPV4_IFADDR = 0x10;
    private const ushort RTM_NEWLINK = 16, RTM_DELLINK = 17, RTM_NEWADDR = 20, RTM_DELADDR = 21;
    private const ushort IFLA_IFNAME = 3;
    private const int MSG_DONTWAIT = 0x40, POLLIN = 1;
    private const int EINTR = 4, EAGAIN = 11, ENOBUFS = 105;
    private const int NlmsgHeaderSize = 16, IfinfomsgSize = 16, IfaddrmsgSize = 8;

    private readonly int _fd;
    private readonly byte[] _buffer = new byte[256 * 1024];
    private bool _disposed;

    /// <summary>Opens and subscribes the socket (needs no privilege; a bigger buffer is forced when root).</summary>
    /// <param name="receiveBuffer">Socket buffer size: a burst of this many bytes of notifications is kept while the reader is busy.</param>
    public LinkMonitor(int receiveBuffer = 8 << 20)
    {
        _fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (_fd < 0)
            throw new IOException($"netlink socket: {Marshal.GetLastPInvokeErrorMessage()}");
        try
        {
            // A burst of 200 veths is ~200 KB of notifications; SO_RCVBUFFORCE passes rmem_max as root.
            if (setsockopt(_fd, SOL_SOCKET, SO_RCVBUFFORCE, ref receiveBuffer, sizeof(int)) != 0)
                _ = setsockopt(_fd, SOL_SOCKET, SO_RCVBUF, ref receiveBuffer, sizeof(int));
            var addr = new SockaddrNl { Family = AF_NETLINK, Groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR };
            if (bind(_fd, ref addr, Marshal.SizeOf<SockaddrNl>()) != 0)
                throw new IOException($"netlink bind: {Marshal.GetLastPInvokeErrorMessage()}");
        }
        catch
        {
            _ = close(_fd);
            throw;
        }
    }

    /// <summary>
    /// Waits up to <paramref name="timeoutMs"/> for notifications and returns those of one read
    /// (maybe none). Null when the kernel dropped notifications (the socket buffer overflowed):
    /// the caller has missed events and must rescan.
    /// </summary>
    public IReadOnlyList<LinkEvent>? Receive(int timeoutMs)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var pfd = new PollFd { Fd = _fd, Events = POLLIN };
        int ready = poll(ref pfd, 1, timeoutMs);
        if (ready < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            return errno == EINTR ? [] : throw new IOException($"netlink poll: {Marshal.GetLastPInvokeErrorMessage()}");
        }
        if (ready == 0)
            return [];
        nint n = recv(_fd, _buffer, _buffer.Length, MSG_DONTWAIT);
        if (n < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            return errno switch
            {
                ENOBUFS => null,
                EAGAIN or EINTR => [],
                _ => throw new IOException($"netlink recv: {Marshal.GetLastPInvokeErrorMessage()}"),
            };
        }
        return Parse(_buffer.AsSpan(0, (int)n));
    }

    /// <summary>Decodes a read of netlink messages (rtnetlink(7)); messages of other types are skipped.</summary>
    internal static List<LinkEvent> Parse(ReadOnlySpan<byte> data)
    {
        var events = new List<LinkEvent>();
        while (data.Length >= NlmsgHeaderSize)
        {
            int len = (int)BinaryPrimitives.ReadUInt32LittleEndian(data);
            ushort type = BinaryPrimitives.ReadUInt16LittleEndian(data[4..]);
            if (len < NlmsgHeaderSize || len > data.Length)
                break;
            var body = data[NlmsgHeaderSize..len];
            switch (type)
            {
                case RTM_NEWLINK or RTM_DELLINK when body.Length >= IfinfomsgSize:
                    int ifindex = BinaryPrimitives.ReadInt32LittleEndian(body[4..]);
                    events.Add(new LinkEvent(type == RTM_NEWLINK ? LinkEventKind.NewLink : LinkEventKind.DelLink, ifindex, Name(body[IfinfomsgSize..])));
                    break;
                case RTM_NEWADDR or RTM_DELADDR when body.Length >= IfaddrmsgSize:
                    events.Add(new LinkEvent(LinkEventKind.Address, (int)BinaryPrimitives.ReadUInt32LittleEndian(body[4..]), null));
                    break;
            }
            data = data[Math.Min(Align(len), data.Length)..];
        }
        return events;
    }

    /// <summary>IFLA_IFNAME among the attributes, or null.</summary>
    private static string? Name(ReadOnlySpan<byte> attrs)
    {
        while (attrs.Length >= 4)
        {
            int len = BinaryPrimitives.ReadUInt16LittleEndian(attrs);
            ushort type = BinaryPrimitives.ReadUInt16LittleEndian(attrs[2..]);
            if (len < 4 || len > attrs.Length)
                return null;
            if (type == IFLA_IFNAME)
            {
                var value = attrs[4..len];
                int nul = value.IndexOf((byte)0);
                return Encoding.UTF8.GetString(nul >= 0 ? value[..nul] : value);
            }
            attrs = attrs[Math.Min(Align(len), attrs.Length)..];
        }
        return null;
    }

    private static int Align(int len) => (len + 3) & ~3;

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _ = close(_fd);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct SockaddrNl
    {
        public ushort Family;
        public ushort Pad;
        public uint Pid;
        public uint Groups;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    private static partial int setsockopt(int fd, int level, int name, ref int value, int len);

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    private static partial int bind(int fd, ref SockaddrNl addr, int len);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int poll(ref PollFd fds, nuint nfds, int timeout);

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    private static partial nint recv(int fd, [Out] byte[] buf, nint len, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int close(int fd);
}
