using System.Buffers.Binary;
using System.Net;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Policy;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Sync;
using EbpfProxy.Testing;
using EbpfProxy.Testing.Packets;

namespace EbpfProxy.Datapath.Tests;

/// <summary>
/// IPv4 fragments (bpf/lib/frag.h) on crafted packets: later fragments get their first's
/// translation and policy verdict; a later fragment whose first was not seen is dropped where a
/// translation or an isolated pod is involved, and passes elsewhere.
/// </summary>
public class FragmentTests
{
    private static readonly string[] One = ["10.244.0.11"];
    private static readonly IPAddress Backend = IPAddress.Parse("10.244.0.11");
    private static readonly IPAddress Remote = IPAddress.Parse("10.244.1.5");
    private static readonly byte[] Payload = [.. Enumerable.Range(0, 1200).Select(i => (byte)(i * 7))];

    /// <summary>A UDP datagram split after <paramref name="firstBytes"/> bytes of IP payload (a multiple of 8).</summary>
    internal static (byte[] First, byte[] Later) Fragment(IPAddress src, ushort sport, IPAddress dst, ushort dport, ushort id, int firstBytes = 512)
    {
        var whole = PacketBuilder.Udp(src, sport, dst, dport, Payload);
        var l4 = whole.AsSpan(PacketBuilder.EthernetHeaderLength + PacketBuilder.Ipv4HeaderLength);
        var first = PacketBuilder.Ipv4(src, dst, IpProtocols.Udp, l4[..firstBytes], new PacketOptions { Id = id, DontFragment = false, MoreFragments = true });
        var later = PacketBuilder.Ipv4(src, dst, IpProtocols.Udp, l4[firstBytes..], new PacketOptions { Id = id, DontFragment = false, FragmentOffset = (ushort)(firstBytes / 8) });
        return (first, later);
    }

    /// <summary>Reassembles two fragments' IP payloads and checks the UDP checksum against the first's addresses.</summary>
    private static void AssertReassembledChecksumValid(byte[] first, byte[] later)
    {
        const int ip = PacketBuilder.EthernetHeaderLength;
        var a = Packet.Parse(first);
        var b = Packet.Parse(later);
        Assert.True(a.IpChecksumValid && b.IpChecksumValid, "IP header checksums");
        Assert.Equal(a.Source, b.Source);
        Assert.Equal(a.Destination, b.Destination);
        byte[] segment = [.. first.AsSpan(ip + a.Ip!.HeaderLength).ToArray(), .. later.AsSpan(ip + b.Ip!.HeaderLength).ToArray()];
        Assert.True(Checksum.IsL4Valid(a.Source!, a.Destination!, IpProtocols.Udp, segment), "UDP checksum over the reassembled datagram");
        Assert.Equal(segment.Length, BinaryPrimitives.ReadUInt16BigEndian(segment.AsSpan(4)));
    }

    [PrivilegedFact]
    public void LaterFragmentsFollowTheirFirstThroughTheServiceAndBack()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(One));
        var (first, later) = Fragment(PodDatapath.Client, 40000, PodDatapath.Vip, 80, id: 0x1234);

        var (v1, out1) = dp.FromPod(first);
        var (v2, out2) = dp.FromPod(later);

        Assert.Equal(PodDatapath.TcActOk, v1);
        Assert.Equal(PodDatapath.TcActOk, v2);
        var p1 = Packet.Parse(out1);
        Assert.Equal(Backend, p1.Destination);
        Assert.Equal(8080, p1.DestinationPort);
        Assert.Equal(Backend, Packet.Parse(out2).Destination);
        AssertReassembledChecksumValid(out1, out2);
        // The later fragment's payload is untouched: only the IP header changed.
        Assert.Equal(later.AsSpan(34).ToArray(), out2.AsSpan(34).ToArray());
        Assert.Equal(1UL, dp.Counter(Reason.ForwardServiceNew, MetricsDirection.Ingress));
        Assert.Equal(1UL, dp.Counter(Reason.ForwardServiceEstablished, MetricsDirection.Ingress));

        // The backend's fragmented answer is restored to the VIP, both fragments.
        var (r1, r2) = Fragment(Backend, 8080, PodDatapath.Client, 40000, id: 0x4321);
        var back1 = dp.ToPod(r1);
        var back2 = dp.ToPod(r2);
        Assert.Equal(PodDatapath.TcActOk, back1.Verdict);
        Assert.Equal(PodDatapath.TcActOk, back2.Verdict);
        Assert.Equal(PodDatapath.Vip, Packet.Parse(back1.Packet).Source);
        Assert.Equal(80, Packet.Parse(back1.Packet).SourcePort);
        Assert.Equal(PodDatapath.Vip, Packet.Parse(back2.Packet).Source);
        AssertReassembledChecksumValid(back1.Packet, back2.Packet);
        Assert.Equal(2UL, dp.Counter(Reason.ForwardReverseNat, MetricsDirection.Egress));
    }

    [PrivilegedFact]
    public void ALaterFragmentWithoutItsFirstIsDroppedOnlyWhereItMatters()
    {
        using var dp = new PodDatapath(serviceCidr: "10.96.0.0/16");
        dp.Apply(PodDatapath.EchoService(One));

        var (_, toVip) = Fragment(PodDatapath.Client, 40000, PodDatapath.Vip, 80, id: 7);
        Assert.Equal(PodDatapath.TcActShot, dp.FromPod(toVip).Verdict);
        var (_, toUnallocated) = Fragment(PodDatapath.Client, 40000, IPAddress.Parse("10.96.9.9"), 80, id: 8);
        Assert.Equal(PodDatapath.TcActShot, dp.FromPod(toUnallocated).Verdict);
        Assert.Equal(2UL, dp.Counter(Reason.DropFragmentNotFound, MetricsDirection.Ingress));

        // Pod to pod, nobody isolated: not ours, untouched.
        var (_, toPod) = Fragment(PodDatapath.Client, 40000, Remote, 80, id: 9);
        var (verdict, output) = dp.FromPod(toPod);
        Assert.Equal(PodDatapath.TcActOk, verdict);
        Assert.Equal(toPod, output);
        Assert.Equal(1UL, dp.Counter(Reason.PassUnsupported, MetricsDirection.Ingress));

        // The same IP id from another source is another datagram.
        var (first, _) = Fragment(PodDatapath.Client, 40000, PodDatapath.Vip, 80, id: 10);
        Assert.Equal(PodDatapath.TcActOk, dp.FromPod(first).Verdict);
        var (_, stranger) = Fragment(IPAddress.Parse("10.244.0.3"), 40000, PodDatapath.Vip, 80, id: 10);
        Assert.Equal(PodDatapath.TcActShot, dp.FromPod(stranger).Verdict);
    }

    private static PolicyState IngressIsolatedBackend(params PolicyRule[] rules) => new()
    {
        Ipcache = new Dictionary<IPNetwork, uint> { [new IPNetwork(Remote, 32)] = 302, [new IPNetwork(Backend, 32)] = 301 },
        Endpoints = new Dictionary<IPAddress, EndpointEntry> { [Backend] = new(2, 301, PolicyIsolation.Ingress) },
        Rules = rules.ToHashSet(),
    };

    [PrivilegedFact]
    public void FragmentsToAnIsolatedPodGetTheVerdictOfTheirFirst()
    {
        using var dp = new PodDatapath();
        new PolicyStage(dp.Loaded.DatapathMaps).Apply(IngressIsolatedBackend());

        // Denied: the first fragment by the rules, the later one because its first was.
        var (first, later) = Fragment(Remote, 5000, Backend, 53, id: 100);
        Assert.Equal(PodDatapath.TcActShot, dp.ToPod(first).Verdict);
        Assert.Equal(PodDatapath.TcActShot, dp.ToPod(later).Verdict);
        Assert.Equal(2UL, dp.Counter(Reason.PolicyIngressDenied, MetricsDirection.Egress));
        // A later fragment with no first at all: dropped with its own reason.
        var (_, orphan) = Fragment(Remote, 5000, Backend, 53, id: 101);
        Assert.Equal(PodDatapath.TcActShot, dp.ToPod(orphan).Verdict);
        Assert.Equal(1UL, dp.Counter(Reason.DropFragmentNotFound, MetricsDirection.Egress));

        // Admitted by a rule: both fragments pass.
        new PolicyStage(dp.Loaded.DatapathMaps).Apply(IngressIsolatedBackend(PolicyRule.SinglePort(2, 302, PolicyDirection.Ingress, L4Protocol.Udp, 53)));
        var (ok1, ok2) = Fragment(Remote, 5001, Backend, 53, id: 102);
        Assert.Equal(PodDatapath.TcActOk, dp.ToPod(ok1).Verdict);
        Assert.Equal(PodDatapath.TcActOk, dp.ToPod(ok2).Verdict);
        Assert.Equal(2UL, dp.Counter(Reason.PolicyIngressDenied, MetricsDirection.Egress));
    }
}
