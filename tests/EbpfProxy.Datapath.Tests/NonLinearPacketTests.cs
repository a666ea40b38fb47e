using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Testing;
using EbpfProxy.Testing.Packets;
using LibBpf.Net;

namespace EbpfProxy.Datapath.Tests;

/// <summary>
/// Packets whose headers are not in the skb's linear area (bpf/README.md, "Non-linear packets").
/// BPF_PROG_TEST_RUN always builds a linear skb, so the packets come from a tap device in a
/// namespace of the test's own, opened with IFF_NAPI_FRAGS: the kernel puts the first iovec of a
/// write in the linear area and every other in a page fragment, as a NIC driver building packets in
/// pages does. With GRO off on the tap only the Ethernet header is linear; with GRO on, GRO pulls
/// the headers it parses (IP, TCP, UDP) but not an SCTP header. from_pod runs at the tap's tc
/// ingress and must translate the packet; without bpf_skb_pull_data it drops it as invalid.
/// </summary>
public class NonLinearPacketTests
{
    private const ulong TUNSETIFF = 0x400454ca;
    private const short IFF_TAP = 0x0002, IFF_NAPI = 0x0010, IFF_NAPI_FRAGS = 0x0020, IFF_NO_PI = 0x1000;
    private const int O_RDWR = 2;
    private const ulong SIOCETHTOOL = 0x8946;
    private const uint ETHTOOL_SGRO = 0x2c;

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static extern int Ioctl(int fd, ulong request, byte[] arg);

    [DllImport("libc", EntryPoint = "writev", SetLastError = true)]
    private static extern nint Writev(int fd, nint[] iov, int count);

    [DllImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static extern int Socket(int domain, int type, int protocol);

    [DllImport("libc", EntryPoint = "close")]
    private static extern int Close(int fd);

    private static readonly IPAddress Backend = IPAddress.Parse("10.244.0.11");

    private const string Service = """
        apiVersion: v1
        kind: Service
        metadata: {name: mix, namespace: default}
        spec:
          clusterIP: 10.96.0.42
          ports:
          - {name: tcp, port: 80, protocol: TCP}
          - {name: udp, port: 80, protocol: UDP}
          - {name: sctp, port: 9000, protocol: SCTP}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: mix-1, namespace: default, labels: {kubernetes.io/service-name: mix}}
        addressType: IPv4
        ports: [{name: tcp, port: 8080, protocol: TCP}, {name: udp, port: 8080, protocol: UDP}, {name: sctp, port: 9000, protocol: SCTP}]
        endpoints:
        - {addresses: [10.244.0.11], conditions: {ready: true}, nodeName: node-1}
        """;

    [PrivilegedTheory]
    [InlineData("tcp", false)]
    [InlineData("udp", false)]
    [InlineData("sctp", false)]
    [InlineData("sctp", true)]
    public void APacketWhoseHeadersAreInPageFragmentsIsTranslated(string protocol, bool gro)
    {
        using var dp = new PodDatapath();
        dp.Apply(Service);
        var packet = protocol switch
        {
            "tcp" => PacketBuilder.Tcp(PodDatapath.Client, 40000, PodDatapath.Vip, 80, TcpFlags.Syn),
            "udp" => PacketBuilder.Udp(PodDatapath.Client, 40000, PodDatapath.Vip, 80, new byte[200]),
            _ => PacketBuilder.Sctp(PodDatapath.Client, 40000, PodDatapath.Vip, 9000),
        };

        using var ns = NetNs.Create("nonlinear");
        var tap = Names.Interface("tap");
        int fd = ns.Run(() => OpenTap(tap));
        try
        {
            if (!gro)
                ns.Run(() => SetGro(tap, false));
            ns.Ip("link", "set", tap, "up");
            var ifindex = ns.GetIfIndex(tap);
            ns.Run(() =>
            {
                TcHook.EnsureClsact(ifindex);
                TcHook.Attach(ifindex, TcAttachPoint.Ingress, dp.Loaded.FromPod, 0xeb9f, 1);
            });

            // Only the Ethernet header in the linear area; the rest in one page fragment.
            WriteSplit(fd, packet, PacketBuilder.EthernetHeaderLength);

            var sw = Stopwatch.StartNew();
            while (dp.Counter(Reason.ForwardServiceNew, MetricsDirection.Ingress) == 0 && dp.Counter(Reason.DropInvalid, MetricsDirection.Ingress) == 0 && sw.Elapsed < TimeSpan.FromSeconds(20))
                Thread.Sleep(20);
            Assert.Equal(0UL, dp.Counter(Reason.DropInvalid, MetricsDirection.Ingress));
            Assert.Equal(1UL, dp.Counter(Reason.ForwardServiceNew, MetricsDirection.Ingress));
        }
        finally
        {
            Close(fd);
        }
    }

    private static int OpenTap(string name)
    {
        int fd = Open("/dev/net/tun", O_RDWR);
        if (fd < 0)
            throw new IOException($"open /dev/net/tun: errno {Marshal.GetLastPInvokeError()}");
        var ifreq = new byte[40];
        Encoding.ASCII.GetBytes(name).CopyTo(ifreq, 0);
        BitConverter.GetBytes((short)(IFF_TAP | IFF_NO_PI | IFF_NAPI | IFF_NAPI_FRAGS)).CopyTo(ifreq, 16);
        if (Ioctl(fd, TUNSETIFF, ifreq) < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            Close(fd);
            throw new IOException($"TUNSETIFF {name} (IFF_NAPI_FRAGS): errno {errno}");
        }
        return fd;
    }

    /// <summary>ETHTOOL_SGRO through SIOCETHTOOL (no ethtool binary needed).</summary>
    private static void SetGro(string name, bool on)
    {
        int sock = Socket(2 /* AF_INET */, 2 /* SOCK_DGRAM */, 0);
        if (sock < 0)
            throw new IOException($"socket: errno {Marshal.GetLastPInvokeError()}");
        var value = new byte[8];
        BitConverter.GetBytes(ETHTOOL_SGRO).CopyTo(value, 0);
        BitConverter.GetBytes(on ? 1u : 0u).CopyTo(value, 4);
        var pin = GCHandle.Alloc(value, GCHandleType.Pinned);
        try
        {
            var ifreq = new byte[40];
            Encoding.ASCII.GetBytes(name).CopyTo(ifreq, 0);
            BitConverter.GetBytes((long)pin.AddrOfPinnedObject()).CopyTo(ifreq, 16);
            if (Ioctl(sock, SIOCETHTOOL, ifreq) < 0)
                throw new IOException($"SIOCETHTOOL ETHTOOL_SGRO {name}: errno {Marshal.GetLastPInvokeError()}");
        }
        finally
        {
            pin.Free();
            Close(sock);
        }
    }

    /// <summary>One write of two iovecs: the kernel makes the first linear, the second a page fragment.</summary>
    private static void WriteSplit(int fd, byte[] frame, int linear)
    {
        var head = frame[..linear];
        var tail = frame[linear..];
        var h = GCHandle.Alloc(head, GCHandleType.Pinned);
        var t = GCHandle.Alloc(tail, GCHandleType.Pinned);
        try
        {
            nint[] iov = [h.AddrOfPinnedObject(), head.Length, t.AddrOfPinnedObject(), tail.Length];
            var n = Writev(fd, iov, 2);
            if (n != frame.Length)
                throw new IOException($"writev to the tap wrote {n} of {frame.Length} bytes: errno {Marshal.GetLastPInvokeError()}");
        }
        finally
        {
            h.Free();
            t.Free();
        }
    }
}
