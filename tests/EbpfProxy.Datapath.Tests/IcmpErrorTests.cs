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
/// ICMP errors about translated connections (bpf/lib/icmp.h) on crafted packets: the quote and the
/// outer header are translated back with every checksum right (recomputed here), and on pod hooks
/// policy judges an error by the connection it quotes.
/// </summary>
public class IcmpErrorTests
{
    private const int Eth = PacketBuilder.EthernetHeaderLength;
    private const int Ip = PacketBuilder.Ipv4HeaderLength;
    private static readonly IPAddress Backend = IPAddress.Parse("10.244.0.11");
    private static readonly IPAddress Router = IPAddress.Parse("10.244.9.1");

    /// <summary>
    /// An ICMP error from <paramref name="from"/> to <paramref name="to"/> quoting the IP header and the
    /// first <paramref name="l4Bytes"/> L4 bytes of <paramref name="offending"/> (an Ethernet frame).
    /// </summary>
    internal static byte[] IcmpError(IPAddress from, IPAddress to, byte type, byte code, byte[] offending, int l4Bytes = 8, ushort mtu = 0)
    {
        var quoteLength = Math.Min(Ip + l4Bytes, offending.Length - Eth);
        var icmp = new byte[8 + quoteLength];
        icmp[0] = type;
        icmp[1] = code;
        BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(6), mtu);
        offending.AsSpan(Eth, quoteLength).CopyTo(icmp.AsSpan(8));
        BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(2), Checksum.Compute(icmp));
        return PacketBuilder.Ipv4(from, to, IpProtocols.Icmp, icmp, new PacketOptions { DontFragment = false });
    }

    /// <summary>What an ICMP error frame says, with each checksum recomputed from its bytes.</summary>
    internal sealed record Error(
        IPAddress OuterSource, IPAddress OuterDestination, byte Type, ushort Mtu,
        IPAddress QuoteSource, ushort QuoteSourcePort, IPAddress QuoteDestination, ushort QuoteDestinationPort,
        bool OuterIpChecksumValid, bool IcmpChecksumValid, bool QuoteIpChecksumValid, byte[] QuoteL4)
    {
        public bool ChecksumsValid => OuterIpChecksumValid && IcmpChecksumValid && QuoteIpChecksumValid;
    }

    internal static Error ReadError(byte[] frame)
    {
        var ihl = (frame[Eth] & 0xf) * 4;
        var icmp = frame.AsSpan(Eth + ihl);
        var quote = icmp[8..];
        var quoteIhl = (quote[0] & 0xf) * 4;
        var l4 = quote[quoteIhl..];
        return new Error(
            new IPAddress(frame.AsSpan(Eth + 12, 4)), new IPAddress(frame.AsSpan(Eth + 16, 4)), icmp[0],
            BinaryPrimitives.ReadUInt16BigEndian(icmp[6..]),
            new IPAddress(quote.Slice(12, 4)), BinaryPrimitives.ReadUInt16BigEndian(l4), new IPAddress(quote.Slice(16, 4)), BinaryPrimitives.ReadUInt16BigEndian(l4[2..]),
            Checksum.IsValid(frame.AsSpan(Eth, ihl)), Checksum.IsValid(icmp), Checksum.IsValid(quote[..quoteIhl]), l4.ToArray());
    }

    [PrivilegedTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void ABackendsPortUnreachableIsTranslatedBackToTheFrontend(bool udp)
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Backend.ToString()));
        var request = udp
            ? PacketBuilder.Udp(PodDatapath.Client, 40000, PodDatapath.Vip, 80, "ping"u8)
            : PacketBuilder.Tcp(PodDatapath.Client, 40000, PodDatapath.Vip, 80, TcpFlags.Syn);
        var (_, dnatted) = dp.FromPod(request);
        Assert.Equal(Backend, Packet.Parse(dnatted).Destination);

        // The backend's kernel answers the packet it got (client -> backend:8080).
        var error = IcmpError(Backend, PodDatapath.Client, 3, 3, dnatted);
        var (verdict, output) = dp.ToPod(error);

        Assert.Equal(PodDatapath.TcActOk, verdict);
        var e = ReadError(output);
        Assert.Equal(PodDatapath.Vip, e.OuterSource); // the backend itself sent it: shown as the frontend
        Assert.Equal(PodDatapath.Client, e.OuterDestination);
        Assert.Equal((PodDatapath.Client, (ushort)40000, PodDatapath.Vip, (ushort)80), (e.QuoteSource, e.QuoteSourcePort, e.QuoteDestination, e.QuoteDestinationPort));
        Assert.True(e.ChecksumsValid, e.ToString());
        // The quoted L4 checksum is left as it was (as Cilium does): only the ports changed.
        Assert.Equal(ReadError(error).QuoteL4[4..], e.QuoteL4[4..]);
        Assert.Equal(1UL, dp.Counter(Reason.ForwardIcmpReverseNat, MetricsDirection.Egress));
    }

    [PrivilegedTheory]
    [InlineData((byte)3, (byte)4)] // fragmentation needed
    [InlineData((byte)11, (byte)0)] // time exceeded
    public void ARoutersErrorKeepsItsSenderAndGetsItsQuoteTranslated(byte type, byte code)
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Backend.ToString()));
        var (_, dnatted) = dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, 40001, PodDatapath.Vip, 80, TcpFlags.Ack, new byte[1400], seq: 5, ack: 7));

        // Linux quotes as much as fits (576 bytes): the whole TCP header here.
        var error = IcmpError(Router, PodDatapath.Client, type, code, dnatted, l4Bytes: 40, mtu: type == 3 ? (ushort)1280 : (ushort)0);
        var (verdict, output) = dp.ToPod(error);

        Assert.Equal(PodDatapath.TcActOk, verdict);
        var e = ReadError(output);
        Assert.Equal(Router, e.OuterSource);
        Assert.Equal(type, e.Type);
        Assert.Equal(type == 3 ? 1280 : 0, e.Mtu);
        Assert.Equal((PodDatapath.Client, (ushort)40001, PodDatapath.Vip, (ushort)80), (e.QuoteSource, e.QuoteSourcePort, e.QuoteDestination, e.QuoteDestinationPort));
        Assert.True(e.ChecksumsValid, e.ToString());
        Assert.Equal(error.Length, output.Length);
        // Past the quoted headers the packet is untouched.
        Assert.Equal(error.AsSpan(Eth + Ip + 8 + Ip + 4).ToArray(), output.AsSpan(Eth + Ip + 8 + Ip + 4).ToArray());
    }

    [PrivilegedFact]
    public void AnErrorAboutNoTrackedConnectionPassesUntouched()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Backend.ToString()));
        var neverSent = PacketBuilder.Udp(PodDatapath.Client, 40002, Backend, 8080, "x"u8);
        var error = IcmpError(Backend, PodDatapath.Client, 3, 3, neverSent);

        var (verdict, output) = dp.ToPod(error);

        Assert.Equal(PodDatapath.TcActOk, verdict);
        Assert.Equal(error, output);
        Assert.Equal(0UL, dp.Counter(Reason.ForwardIcmpReverseNat, MetricsDirection.Egress));
        Assert.Equal(1UL, dp.Counter(Reason.PassUnsupported, MetricsDirection.Egress));
    }

    private const string NodeIp = "192.168.1.10";
    private static readonly IPAddress Node = IPAddress.Parse(NodeIp);
    private static readonly IPAddress Outside = IPAddress.Parse("198.18.0.50");

    [PrivilegedTheory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void AnErrorAboutAMasqueradedConnectionGoesBackToTheClient(bool udp, bool fromRouter)
    {
        using var dp = new PodDatapath();
        dp.Apply(NetdevProgramTests.NodePortService("Cluster"), "node-1", NodeIp);
        var backend = NetdevProgramTests.Backend;
        dp.ConfigureMasquerade(NodeIp);
        ushort nodePort = udp ? (ushort)30053 : (ushort)30080, backendPort = udp ? (ushort)5353 : (ushort)8080;
        var request = udp
            ? PacketBuilder.Udp(Outside, 41000, Node, nodePort, "query"u8)
            : PacketBuilder.Tcp(Outside, 41000, Node, nodePort, TcpFlags.Syn);
        var (_, sent) = dp.FromNetdev(request);
        var fwd = Packet.Parse(sent);
        Assert.Equal((Node, backend), (fwd.Source!, fwd.Destination!));

        // The error comes back to the node address the connection left with.
        var error = IcmpError(fromRouter ? Router : backend, Node, 3, fromRouter ? (byte)4 : (byte)3, sent, mtu: (ushort)(fromRouter ? 1280 : 0));
        var (verdict, output) = dp.FromNetdev(error);

        Assert.NotEqual(PodDatapath.TcActShot, verdict);
        var e = ReadError(output);
        Assert.Equal(fromRouter ? Router : Node, e.OuterSource); // the backend is shown as the frontend it stands for
        Assert.Equal(Outside, e.OuterDestination);
        Assert.Equal((Outside, (ushort)41000, Node, nodePort), (e.QuoteSource, e.QuoteSourcePort, e.QuoteDestination, e.QuoteDestinationPort));
        Assert.True(e.ChecksumsValid, e.ToString());
        Assert.Equal(1UL, dp.Counter(Reason.ForwardIcmpSnatReverse, MetricsDirection.Ingress));

        // An error about a node port no connection holds is not ours.
        var stray = IcmpError(backend, Node, 3, 3, PacketBuilder.Udp(Node, 50505, backend, backendPort, "y"u8));
        var (strayVerdict, strayOut) = dp.FromNetdev(stray);
        Assert.Equal(PodDatapath.TcActOk, strayVerdict);
        Assert.Equal(stray, strayOut);
    }

    private static readonly IPAddress Peer = IPAddress.Parse("10.244.1.5");

    [PrivilegedFact]
    public void AnIsolatedPodGetsTheErrorsOfItsOwnConnectionsOnly()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Backend.ToString()));
        // The client is isolated both ways; its egress admits the service's backend on 8080.
        new PolicyStage(dp.Loaded.DatapathMaps).Apply(new PolicyState
        {
            Ipcache = new Dictionary<IPNetwork, uint> { [new IPNetwork(Backend, 32)] = 301, [new IPNetwork(Peer, 32)] = 302 },
            Endpoints = new Dictionary<IPAddress, EndpointEntry> { [PodDatapath.Client] = new(3, 300, PolicyIsolation.Ingress | PolicyIsolation.Egress) },
            Rules = new HashSet<PolicyRule> { PolicyRule.SinglePort(3, 301, PolicyDirection.Egress, L4Protocol.Udp, 8080) },
        });
        var (v, dnatted) = dp.FromPod(PacketBuilder.Udp(PodDatapath.Client, 40003, PodDatapath.Vip, 80, "q"u8));
        Assert.Equal(PodDatapath.TcActOk, v);

        // The error about the admitted connection passes, translated.
        var (verdict, output) = dp.ToPod(IcmpError(Backend, PodDatapath.Client, 3, 3, dnatted));
        Assert.Equal(PodDatapath.TcActOk, verdict);
        Assert.Equal(PodDatapath.Vip, ReadError(output).QuoteDestination);

        // An error about a connection the pod never had is dropped with its own reason.
        var forged = IcmpError(Peer, PodDatapath.Client, 3, 3, PacketBuilder.Udp(PodDatapath.Client, 40004, Peer, 53, "z"u8));
        Assert.Equal(PodDatapath.TcActShot, dp.ToPod(forged).Verdict);
        Assert.Equal(1UL, dp.Counter(Reason.PolicyIcmpUnrelated, MetricsDirection.Egress));
        // So is an error quoting somebody else's connection.
        var others = IcmpError(Backend, PodDatapath.Client, 3, 3, PacketBuilder.Udp(Peer, 40003, Backend, 8080, "z"u8));
        Assert.Equal(PodDatapath.TcActShot, dp.ToPod(others).Verdict);
        Assert.Equal(2UL, dp.Counter(Reason.PolicyIcmpUnrelated, MetricsDirection.Egress));

        // Leaving the pod: its own port unreachable about a packet it never admitted is dropped too,
        // an error about the admitted connection's reply passes.
        var unadmitted = IcmpError(PodDatapath.Client, Peer, 3, 3, PacketBuilder.Udp(Peer, 53, PodDatapath.Client, 40005, "r"u8));
        Assert.Equal(PodDatapath.TcActShot, dp.FromPod(unadmitted).Verdict);
        Assert.Equal(1UL, dp.Counter(Reason.PolicyIcmpUnrelated, MetricsDirection.Ingress));
        var reply = PacketBuilder.Udp(PodDatapath.Vip, 80, PodDatapath.Client, 40003, "a"u8);
        Assert.Equal(PodDatapath.TcActOk, dp.FromPod(IcmpError(PodDatapath.Client, PodDatapath.Vip, 3, 3, reply)).Verdict);
    }

    [PrivilegedFact]
    public void WithoutIsolationEveryErrorStillPasses()
    {
        using var dp = new PodDatapath();
        var error = IcmpError(Peer, PodDatapath.Client, 11, 0, PacketBuilder.Udp(PodDatapath.Client, 40006, Peer, 53, "t"u8));

        var (verdict, output) = dp.ToPod(error);

        Assert.Equal(PodDatapath.TcActOk, verdict);
        Assert.Equal(error, output);
    }
}
