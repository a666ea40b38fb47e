using System.Net;
using EbpfProxy.Core.Model;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Testing;
using EbpfProxy.Testing.Packets;

namespace EbpfProxy.Datapath.Tests;

/// <summary>from_pod / to_pod on crafted packets (BPF_PROG_TEST_RUN), maps seeded by the real syncer.</summary>
public class PodProgramTests
{
    private static readonly string[] Three = ["10.244.0.11", "10.244.0.12", "10.244.0.13"];
    private static readonly IPAddress[] ThreeIps = [.. Three.Select(IPAddress.Parse)];

    /// <summary>
    /// Asserts that <paramref name="output"/> differs from <paramref name="input"/> only in the given
    /// byte ranges (offset, length) and that both checksums are valid.
    /// </summary>
    private static void AssertOnlyChanged(byte[] input, byte[] output, params (int Offset, int Length)[] allowed)
    {
        Assert.Equal(input.Length, output.Length);
        for (int i = 0; i < input.Length; i++)
        {
            if (allowed.Any(a => i >= a.Offset && i < a.Offset + a.Length))
                continue;
            Assert.True(input[i] == output[i], $"byte {i} changed from 0x{input[i]:x2} to 0x{output[i]:x2}");
        }
    }

    // Offsets in an Ethernet + IPv4 (ihl 5) frame.
    private const int IpCsum = 14 + 10, IpSrc = 14 + 12, IpDst = 14 + 16, L4 = 14 + 20;
    private const int TcpCsum = L4 + 16, UdpCsum = L4 + 6;

    [PrivilegedFact]
    public void TcpToTheVipIsTranslatedToABackendWithValidChecksums()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Three));
        var input = PacketBuilder.Tcp(PodDatapath.Client, 40000, PodDatapath.Vip, 80, TcpFlags.Syn, "hello"u8);

        var (verdict, output) = dp.FromPod(input);

        Assert.Equal(PodDatapath.TcActOk, verdict);
        var p = Packet.Parse(output);
        Assert.Contains(p.Destination, ThreeIps);
        Assert.Equal(8080, p.DestinationPort);
        Assert.Equal(PodDatapath.Client, p.Source);
        Assert.Equal(40000, p.SourcePort);
        Assert.True(p.IpChecksumValid, "IP checksum");
        Assert.True(p.L4ChecksumValid, "TCP checksum");
        AssertOnlyChanged(input, output, (IpCsum, 2), (IpDst, 4), (L4 + 2, 2), (TcpCsum, 2));
        Assert.Equal(1UL, dp.Counter(Reason.ForwardServiceNew, MetricsDirection.Ingress));
    }

    [PrivilegedFact]
    public void UdpToTheVipIsTranslatedWithValidChecksums()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Three));
        var input = PacketBuilder.Udp(PodDatapath.Client, 5353, PodDatapath.Vip, 80, "query"u8);

        var (verdict, output) = dp.FromPod(input);

        Assert.Equal(PodDatapath.TcActOk, verdict);
        var p = Packet.Parse(output);
        Assert.Contains(p.Destination, ThreeIps);
        Assert.Equal(8080, p.DestinationPort);
        Assert.True(p.IpChecksumValid && p.L4ChecksumValid, p.ToString());
        AssertOnlyChanged(input, output, (IpCsum, 2), (IpDst, 4), (L4 + 2, 2), (UdpCsum, 2));
    }

    [PrivilegedFact]
    public void UdpWithoutChecksumKeepsAZeroChecksum()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Three));
        var input = PacketBuilder.UdpWithoutChecksum(PodDatapath.Client, 5353, PodDatapath.Vip, 80, "q"u8);

        var (_, output) = dp.FromPod(input);

        var p = Packet.Parse(output);
        Assert.Contains(p.Destination, ThreeIps);
        Assert.Equal(0, p.Udp!.Checksum);
        Assert.True(p.IpChecksumValid);
    }

    [PrivilegedFact]
    public void ReplyIsReverseTranslatedToTheVip()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Three));
        foreach (var udp in new[] { false, true })
        {
            var request = udp
                ? PacketBuilder.Udp(PodDatapath.Client, 40001, PodDatapath.Vip, 80, "x"u8)
                : PacketBuilder.Tcp(PodDatapath.Client, 40001, PodDatapath.Vip, 80, TcpFlags.Syn);
            var backend = Packet.Parse(dp.FromPod(request).Packet).Destination!;

            var reply = udp
                ? PacketBuilder.Udp(backend, 8080, PodDatapath.Client, 40001, "answer"u8)
                : PacketBuilder.Tcp(backend, 8080, PodDatapath.Client, 40001, TcpFlags.Syn | TcpFlags.Ack, seq: 7, ack: 2);
            var (verdict, output) = dp.ToPod(reply);

            Assert.Equal(PodDatapath.TcActOk, verdict);
            var p = Packet.Parse(output);
            Assert.Equal(PodDatapath.Vip, p.Source);
            Assert.Equal(80, p.SourcePort);
            Assert.Equal(PodDatapath.Client, p.Destination);
            Assert.Equal(40001, p.DestinationPort);
            Assert.True(p.IpChecksumValid && p.L4ChecksumValid, p.ToString());
            AssertOnlyChanged(reply, output, (IpCsum, 2), (IpSrc, 4), (L4, 2), (udp ? UdpCsum : TcpCsum, 2));
        }
        Assert.Equal(2UL, dp.Counter(Reason.ForwardReverseNat, MetricsDirection.Egress));
    }

    [PrivilegedFact]
    public void NewFlowsAreSpreadOverEveryBackend()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Three));
        var chosen = new HashSet<IPAddress>();
        for (ushort port = 20000; port < 20200; port++)
            chosen.Add(Packet.Parse(dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, port, PodDatapath.Vip, 80)).Packet).Destination!);
        Assert.Equal(ThreeIps.OrderBy(a => a.ToString()), chosen.OrderBy(a => a.ToString()));
    }

    [PrivilegedFact]
    public void EstablishedFlowKeepsItsBackendWhenTheBackendSetChanges()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Three));
        var syn = PacketBuilder.Tcp(PodDatapath.Client, 41000, PodDatapath.Vip, 80, TcpFlags.Syn);
        var backend = Packet.Parse(dp.FromPod(syn).Packet).Destination!;

        // Remove one of the other backends and add two new ones.
        var others = Three.Where(b => b != backend.ToString()).ToList();
        dp.Apply(PodDatapath.EchoService([backend.ToString(), others[0], "10.244.0.21", "10.244.0.22"]));

        for (uint i = 0; i < 50; i++)
        {
            var data = PacketBuilder.Tcp(PodDatapath.Client, 41000, PodDatapath.Vip, 80, TcpFlags.Ack, "data"u8, seq: 2 + i);
            var (verdict, output) = dp.FromPod(data);
            Assert.Equal(PodDatapath.TcActOk, verdict);
            Assert.Equal(backend, Packet.Parse(output).Destination);
        }
        Assert.Equal(50UL, dp.Counter(Reason.ForwardServiceEstablished, MetricsDirection.Ingress));
    }

    [PrivilegedFact]
    public void FlowOfARemovedBackendIsPurgedAndRebalanced()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Three));
        var dgram = PacketBuilder.Udp(PodDatapath.Client, 53000, PodDatapath.Vip, 80, "dns"u8);
        var first = Packet.Parse(dp.FromPod(dgram).Packet).Destination!;

        var survivors = Three.Where(b => b != first.ToString()).ToArray();
        var result = dp.Apply(PodDatapath.EchoService(survivors));
        Assert.True(result.ConntrackPurged >= 2, $"purged {result.ConntrackPurged} conntrack entries");

        var next = Packet.Parse(dp.FromPod(dgram).Packet).Destination!;
        Assert.NotEqual(first, next);
        Assert.Contains(next.ToString(), survivors);
    }

    [PrivilegedFact]
    public void WithNoBackendNewFlowsAreRejectedWhileAnEstablishedTcpConnectionDrains()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Three));
        var syn = PacketBuilder.Tcp(PodDatapath.Client, 42000, PodDatapath.Vip, 80, TcpFlags.Syn);
        var backend = Packet.Parse(dp.FromPod(syn).Packet).Destination!;
        Assert.Contains(backend, ThreeIps);
        var udp = PacketBuilder.Udp(PodDatapath.Client, 42003, PodDatapath.Vip, 80, "x"u8);
        Assert.Contains(Packet.Parse(dp.FromPod(udp).Packet).Destination, ThreeIps);

        dp.Apply(PodDatapath.EchoService([]));

        // kube-proxy rejects only new connections (ctstate NEW): the established one goes on.
        var late = PacketBuilder.Tcp(PodDatapath.Client, 42000, PodDatapath.Vip, 80, TcpFlags.Ack, "late"u8, seq: 2);
        var (lateVerdict, lateOut) = dp.FromPod(late);
        Assert.Equal(PodDatapath.TcActOk, lateVerdict);
        Assert.Equal(backend, Packet.Parse(lateOut).Destination);
        foreach (var packet in new[]
        {
            PacketBuilder.Tcp(PodDatapath.Client, 42001, PodDatapath.Vip, 80, TcpFlags.Syn),
            PacketBuilder.Udp(PodDatapath.Client, 42002, PodDatapath.Vip, 80, "x"u8),
            udp, // its conntrack entry was purged with the backend
        })
        {
            var (verdict, output) = dp.FromPod(packet);
            Assert.Equal(PodDatapath.TcActRedirect, verdict);
            AssertPortUnreachable(packet, output);
        }
        Assert.Equal(3UL, dp.Counter(Reason.RejectNoEndpoint, MetricsDirection.Ingress));
        Assert.DoesNotContain(dp.Maps.Ct4.Entries(), e => e.Value.BackendId != 0 && e.Key.Dir == CtDirection.Service && e.Key.Proto != 6);
    }

    /// <summary>
    /// Issue 9 item 2: a TCP connection keeps its backend when the backend turns not ready, then
    /// terminating, then leaves the slice, over incremental and full passes; new flows go elsewhere; a UDP
    /// flow to it moves at once. The backend stays in lb4_backends (draining) until no live conntrack entry
    /// names it, then a full pass removes it.
    /// </summary>
    [PrivilegedFact]
    public void AnEstablishedTcpConnectionKeepsARemovedBackendUntilItEnds()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Three));
        IPAddress backend = null!;
        ushort tcpPort = 0, udpPort = 0;
        for (ushort port = 43000; tcpPort == 0 && port < 43100; port++)
        {
            var to = Packet.Parse(dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, port, PodDatapath.Vip, 80, TcpFlags.Syn)).Packet).Destination!;
            if (backend is null || to.Equals(backend))
                (backend, tcpPort) = (to, port);
        }
        for (ushort port = 44000; udpPort == 0 && port < 44100; port++)
            if (Packet.Parse(dp.FromPod(PacketBuilder.Udp(PodDatapath.Client, port, PodDatapath.Vip, 80, "u"u8)).Packet).Destination!.Equals(backend))
                udpPort = port;
        Assert.NotEqual(0, udpPort);
        var others = Three.Where(b => b != backend.ToString()).ToArray();
        uint seq = 2;

        void StillThere(string stage)
        {
            var (verdict, output) = dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, tcpPort, PodDatapath.Vip, 80, TcpFlags.Ack, "data"u8, seq: seq++));
            Assert.Equal(PodDatapath.TcActOk, verdict);
            Assert.True(backend.Equals(Packet.Parse(output).Destination), $"{stage}: the established connection went to {Packet.Parse(output).Destination}, not {backend}");
            // The backend's reply is still translated back to the VIP.
            var (rv, reply) = dp.ToPod(PacketBuilder.Tcp(backend, 8080, PodDatapath.Client, tcpPort, TcpFlags.Ack, "ok"u8, seq: 9, ack: seq));
            Assert.Equal(PodDatapath.TcActOk, rv);
            Assert.Equal(PodDatapath.Vip, Packet.Parse(reply).Source);
            for (ushort port = 45000; port < 45030; port++)
                Assert.NotEqual(backend, Packet.Parse(dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, port, PodDatapath.Vip, 80, TcpFlags.Syn)).Packet).Destination);
        }

        // Not ready: out of every slot; the UDP flow moves, the TCP connection stays.
        string WithBackend(string conditions) => PodDatapath.EchoService(others).Replace("endpoints:", $"endpoints:\n- {{addresses: [{backend}], conditions: {conditions}}}");
        dp.Apply(WithBackend("{ready: false, serving: false, terminating: false}"));
        StillThere("not ready");
        var udpNow = Packet.Parse(dp.FromPod(PacketBuilder.Udp(PodDatapath.Client, udpPort, PodDatapath.Vip, 80, "u"u8)).Packet).Destination!;
        Assert.Contains(udpNow.ToString(), others);
        Assert.Contains(dp.Syncer.Current!.Backends.Values, b => b.Address.Address.Equals(backend) && b.Address.Protocol == L4Protocol.Tcp);
        Assert.DoesNotContain(dp.Syncer.Current!.Backends.Values, b => b.Address.Address.Equals(backend) && b.Address.Protocol == L4Protocol.Udp);

        // Terminating (still serving, others ready): the same, over a full pass that checks conntrack.
        dp.ApplyFull(WithBackend("{ready: false, serving: true, terminating: true}"));
        StillThere("terminating");

        // Deleted from the slice, incremental and full passes.
        dp.Apply(PodDatapath.EchoService(others));
        StillThere("deleted");
        dp.ApplyFull(PodDatapath.EchoService(others));
        StillThere("deleted, full pass");
        var id = dp.Syncer.Current!.BackendIds[new BackendAddress(backend, 8080, L4Protocol.Tcp)];
        Assert.True(dp.Syncer.Current.IsDraining(id));

        // The connection closes (FIN), its entries expire (aged past the closing lifetime here): the next full pass releases the backend.
        dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, tcpPort, PodDatapath.Vip, 80, TcpFlags.Fin | TcpFlags.Ack, seq: seq++));
        dp.ApplyFull(PodDatapath.EchoService(others));
        Assert.True(dp.Maps.Lb4Backends.TryLookup(id, out _), "released while the closing connection's entry was still live");
        foreach (var (k, v) in dp.Maps.Ct4.Entries().ToList())
            if (v.BackendId == id)
                dp.Maps.Ct4.Update(k, v with { LastSeenNs = KernelNow() - 11_000_000_000UL });
        dp.ApplyFull(PodDatapath.EchoService(others));
        Assert.False(dp.Maps.Lb4Backends.TryLookup(id, out _), "the drained backend is still in lb4_backends");
        Assert.DoesNotContain(dp.Syncer.Current!.Backends.Values, b => b.Address.Address.Equals(backend));
    }

    /// <summary>The output is an ICMP port unreachable from the original destination to the client, quoting the original.</summary>
    private static void AssertPortUnreachable(byte[] original, byte[] output)
    {
        var o = Packet.Parse(original);
        var p = Packet.Parse(output);
        Assert.Equal(o.Destination, p.Source);
        Assert.Equal(o.Source, p.Destination);
        Assert.Equal(o.Eth.Source, p.Eth.Destination);
        Assert.Equal(o.Eth.Destination, p.Eth.Source);
        Assert.NotNull(p.Icmp);
        Assert.Equal((3, 3), (p.Icmp!.Type, p.Icmp.Code));
        Assert.True(p.IpChecksumValid, "IP checksum");
        Assert.True(p.L4ChecksumValid, "ICMP checksum");
        // RFC 792: the original IP header and the first 8 bytes of its payload.
        Assert.Equal(original.AsSpan(14, 28).ToArray(), p.Payload);
    }

    [PrivilegedFact]
    public void AKnownClusterIpOnAnUndefinedPortOrProtocolIsRejected()
    {
        using var dp = new PodDatapath("10.96.0.0/12");
        dp.Apply(PodDatapath.EchoService(Three)); // defines TCP/80 and UDP/80 only
        foreach (var packet in new[]
        {
            PacketBuilder.Tcp(PodDatapath.Client, 1000, PodDatapath.Vip, 443),
            PacketBuilder.Udp(PodDatapath.Client, 1000, PodDatapath.Vip, 53, "q"u8),
        })
        {
            var (verdict, output) = dp.FromPod(packet);
            Assert.Equal(PodDatapath.TcActRedirect, verdict);
            AssertPortUnreachable(packet, output);
        }
        Assert.Equal(2UL, dp.Counter(Reason.RejectNoPort, MetricsDirection.Ingress));
    }

    [PrivilegedFact]
    public void AnUnallocatedAddressInTheServiceCidrIsDroppedAndOtherTrafficPasses()
    {
        using var dp = new PodDatapath("10.96.0.0/12");
        dp.Apply(PodDatapath.EchoService(Three));
        var unallocated = PacketBuilder.Tcp(PodDatapath.Client, 1000, IPAddress.Parse("10.96.7.7"), 80);
        Assert.Equal(PodDatapath.TcActShot, dp.FromPod(unallocated).Verdict);
        Assert.Equal(1UL, dp.Counter(Reason.DropUnallocatedVip, MetricsDirection.Ingress));

        var podToPod = PacketBuilder.Tcp(PodDatapath.Client, 1000, IPAddress.Parse("10.244.0.12"), 8080);
        var (verdict, output) = dp.FromPod(podToPod);
        Assert.Equal(PodDatapath.TcActOk, verdict);
        Assert.Equal(podToPod, output);
    }

    [PrivilegedFact]
    public void WithoutAServiceCidrUnknownAddressesPass()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Three));
        var packet = PacketBuilder.Tcp(PodDatapath.Client, 1000, IPAddress.Parse("10.96.7.7"), 80);
        var (verdict, output) = dp.FromPod(packet);
        Assert.Equal(PodDatapath.TcActOk, verdict);
        Assert.Equal(packet, output);
    }

    [PrivilegedFact]
    public void TerminatingBackendsAreUsedOnlyWhenNoneIsReady()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService("10.96.0.42", ["10.244.0.11"], ["10.244.0.31"]));
        for (ushort port = 30000; port < 30050; port++)
            Assert.Equal(IPAddress.Parse("10.244.0.11"), Packet.Parse(dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, port, PodDatapath.Vip, 80)).Packet).Destination);

        dp.Apply(PodDatapath.EchoService("10.96.0.42", [], ["10.244.0.31"]));
        var (verdict, output) = dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, 31000, PodDatapath.Vip, 80));
        Assert.Equal(PodDatapath.TcActOk, verdict);
        Assert.Equal(IPAddress.Parse("10.244.0.31"), Packet.Parse(output).Destination);
    }

    [PrivilegedFact]
    public void ALargeServiceIsWrittenInBatchesAndReadsBackExactly()
    {
        using var dp = new PodDatapath();
        var backends = Enumerable.Range(0, 300).Select(i => $"10.245.{i / 250}.{i % 250 + 1}").ToArray();
        var result = dp.Apply(PodDatapath.EchoService(backends));
        Assert.True(result.Writes > 1200, $"{result.Writes} writes");

        // What the kernel holds is exactly what the syncer believes it wrote.
        var readBack = Sync.LbMapIo.Read(dp.Maps);
        Assert.Equal(Core.Planning.LbStateFormatter.ToText(dp.Syncer.Current!), Core.Planning.LbStateFormatter.ToText(readBack));
        Assert.Equal(2, readBack.Frontends.Values.Count(f => f.Slots.Count == 300)); // TCP and UDP

        var chosen = new HashSet<IPAddress>();
        for (ushort port = 10000; port < 13000; port++)
            chosen.Add(Packet.Parse(dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, port, PodDatapath.Vip, 80)).Packet).Destination!);
        Assert.True(chosen.Count > 250, $"{chosen.Count} of 300 backends chosen in 3000 flows");
        Assert.All(chosen, c => Assert.Contains(c.ToString(), backends));
    }

    private static IPAddress ClientN(int n) => IPAddress.Parse($"10.244.7.{n}");

    private static IPAddress Chosen(PodDatapath dp, IPAddress client, ushort port) =>
        Packet.Parse(dp.FromPod(PacketBuilder.Tcp(client, port, PodDatapath.Vip, 80)).Packet).Destination!;

    [PrivilegedFact]
    public void SessionAffinityPinsAClientToOneBackendAndOthersStillSpread()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService("10.96.0.42", Three, affinitySeconds: 10800));
        var first = Chosen(dp, ClientN(1), 20000);
        for (ushort port = 20001; port < 20040; port++)
            Assert.Equal(first, Chosen(dp, ClientN(1), port));

        var perClient = Enumerable.Range(2, 40).Select(n => Chosen(dp, ClientN(n), 30000)).ToHashSet();
        Assert.True(perClient.Count > 1, "different clients all landed on one backend");
    }

    [PrivilegedFact]
    public void AnExpiredPinIsNotUsed()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService("10.96.0.42", Three, affinitySeconds: 60));
        var revNat = dp.Syncer.Current!.Frontends.Single(f => f.Key.Frontend.Port == 80 && f.Key.Frontend.Protocol == Core.Model.L4Protocol.Tcp).Value.Service!.Value.RevNatId;
        var pinned = dp.Syncer.Current.BackendIds.First(kv => kv.Key.Protocol == Core.Model.L4Protocol.Tcp).Value;

        // Pins that are fresh are honoured; pins older than the timeout are not.
        var fresh = new List<IPAddress>();
        var stale = new List<IPAddress>();
        for (int n = 1; n <= 30; n++)
        {
            dp.Maps.Affinity.Update(new Lb4AffinityKey { ClientBe = Be32Address.FromAddress(ClientN(n)), RevNatId = revNat },
                new LbAffinityValue { BackendId = pinned, LastUsedNs = n <= 15 ? KernelNow() : 1 });
            (n <= 15 ? fresh : stale).Add(Chosen(dp, ClientN(n), 40000));
        }
        var pinnedIp = dp.Syncer.Current.Backends[pinned].Address.Address;
        Assert.All(fresh, ip => Assert.Equal(pinnedIp, ip));
        Assert.Contains(stale, ip => !ip.Equals(pinnedIp));
    }

    [PrivilegedFact]
    public void APinToARemovedBackendIsForgotten()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService("10.96.0.42", Three, affinitySeconds: 10800));
        var first = Chosen(dp, ClientN(1), 20000);

        var rest = Three.Where(b => b != first.ToString()).ToArray();
        dp.Apply(PodDatapath.EchoService("10.96.0.42", rest, affinitySeconds: 10800));
        Assert.DoesNotContain(dp.Maps.Affinity.Entries(), e => dp.Syncer.Current!.Backends.GetValueOrDefault(e.Value.BackendId).Address.Address?.Equals(first) ?? true);

        var next = Chosen(dp, ClientN(1), 20001);
        Assert.Contains(next.ToString(), rest);
        for (ushort port = 20002; port < 20020; port++)
            Assert.Equal(next, Chosen(dp, ClientN(1), port));
    }

    [PrivilegedFact]
    public void TrafficInOneDirectionKeepsBothConntrackEntriesAlive()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Three));
        var first = PacketBuilder.Udp(PodDatapath.Client, 6000, PodDatapath.Vip, 80, "subscribe"u8);
        var backend = Packet.Parse(dp.FromPod(first).Packet).Destination!;

        foreach (var replyOnly in new[] { true, false })
        {
            // Age both entries to 50 s (the UDP lifetime is 60 s).
            var aged = KernelNow() - 50_000_000_000UL;
            foreach (var (k, v) in dp.Maps.Ct4.Entries().ToList())
                dp.Maps.Ct4.Update(k, v with { LastSeenNs = aged });

            var start = KernelNow();
            if (replyOnly)
                dp.ToPod(PacketBuilder.Udp(backend, 8080, PodDatapath.Client, 6000, "event"u8));
            else
                dp.FromPod(PacketBuilder.Udp(PodDatapath.Client, 6000, PodDatapath.Vip, 80, "ping"u8));

            var entries = dp.Maps.Ct4.Entries().ToList();
            Assert.Equal(2, entries.Count);
            Assert.All(entries, e => Assert.True(e.Value.LastSeenNs >= start, $"{e.Key.Dir} entry not refreshed by {(replyOnly ? "replies" : "requests")} alone"));
        }
    }

    [PrivilegedFact]
    public void ARestartWithAnotherMapSizeKeepsThePinnedMapsAndTheirContent()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Three));
        var backend = Packet.Parse(dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, 7000, PodDatapath.Vip, 80)).Packet).Destination!;

        // A second load into the same pins asks for other sizes, as an upgraded daemon with new flags would.
        var options = new DatapathOptions
        {
            BpfFsRoot = dp.Options.BpfFsRoot,
            ObjectDirectory = dp.Options.ObjectDirectory,
            ConntrackMax = dp.Options.ConntrackMax * 2,
            ServicesMax = dp.Options.ServicesMax * 2,
            BackendsMax = dp.Options.BackendsMax,
            RevNatMax = dp.Options.RevNatMax,
        };
        using var second = Loading.DatapathLoader.Load(options, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        Assert.Equal(dp.Options.ConntrackMax, second.Maps.Ct4.Map.MaxEntries);
        var (_, output) = PodDatapath.Run(second.FromPod, PacketBuilder.Tcp(PodDatapath.Client, 7000, PodDatapath.Vip, 80, TcpFlags.Ack, seq: 2));
        Assert.Equal(backend, Packet.Parse(output).Destination); // the established flow survived
    }

    /// <summary>CLOCK_MONOTONIC in nanoseconds: what bpf_ktime_get_ns() returns.</summary>
    private static ulong KernelNow() => (ulong)(System.Diagnostics.Stopwatch.GetTimestamp() * (1_000_000_000.0 / System.Diagnostics.Stopwatch.Frequency));

    private static byte[] Sctp(IPAddress src, ushort sport, IPAddress dst, ushort dport) => PacketBuilder.Sctp(src, sport, dst, dport);

    [PrivilegedFact]
    public void SctpIsTranslatedByAddressWithTheCrcUntouched()
    {
        using var dp = new PodDatapath();
        dp.Apply("""
            apiVersion: v1
            kind: Service
            metadata: {name: diameter, namespace: default}
            spec: {clusterIP: 10.96.0.60, ports: [{name: d, port: 3868, protocol: SCTP}, {name: other, port: 3869, protocol: SCTP}]}
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: diameter-1, namespace: default, labels: {kubernetes.io/service-name: diameter}}
            addressType: IPv4
            ports: [{name: d, port: 3868, protocol: SCTP}, {name: other, port: 9999, protocol: SCTP}]
            endpoints: [{addresses: [10.244.0.70]}]
            """, expectErrors: true);
        var vip = IPAddress.Parse("10.96.0.60");
        var input = Sctp(PodDatapath.Client, 5000, vip, 3868);

        var (verdict, output) = dp.FromPod(input);
        Assert.Equal(PodDatapath.TcActOk, verdict);
        Assert.Equal(IPAddress.Parse("10.244.0.70"), new IPAddress(output.AsSpan(30, 4)));
        Assert.True(Packet.Parse(output).IpChecksumValid);
        AssertOnlyChanged(input, output, (IpCsum, 2), (IpDst, 4)); // SCTP header and CRC32c untouched

        var reply = Sctp(IPAddress.Parse("10.244.0.70"), 3868, PodDatapath.Client, 5000);
        var (rv, back) = dp.ToPod(reply);
        Assert.Equal(PodDatapath.TcActOk, rv);
        Assert.Equal(vip, new IPAddress(back.AsSpan(26, 4)));
        AssertOnlyChanged(reply, back, (IpCsum, 2), (IpSrc, 4));

        // A port change cannot be done without recomputing the CRC32c: dropped, with its reason.
        Assert.Equal(PodDatapath.TcActShot, dp.FromPod(Sctp(PodDatapath.Client, 5001, vip, 3869)).Verdict);
        Assert.Equal(1UL, dp.Counter(Reason.DropSctpPort, MetricsDirection.Ingress));
    }

    public static TheoryData<string, byte[]> UnmatchedPackets() => new()
    {
        { "pod to pod, no service", PacketBuilder.Tcp(PodDatapath.Client, 1234, IPAddress.Parse("10.244.0.12"), 8080) },
        { "VIP with another protocol", PacketBuilder.IcmpEcho(PodDatapath.Client, PodDatapath.Vip) },
        { "ARP", PacketBuilder.Arp(PodDatapath.Client, PodDatapath.Vip) },
        { "IPv6", PacketBuilder.Ipv6Udp(IPAddress.Parse("fd00::2"), 1, IPAddress.Parse("fd00::42"), 80) },
        { "IP options", PacketBuilder.Tcp(PodDatapath.Client, 1234, IPAddress.Parse("10.244.0.12"), 8080, options: new PacketOptions { IpOptions = [1, 1, 1, 0] }) },
        // A first fragment is handled like a whole datagram (FragmentTests): pod to pod it is not ours.
        { "fragment", PacketBuilder.Udp(PodDatapath.Client, 1234, IPAddress.Parse("10.244.0.12"), 80, "frag"u8, new PacketOptions { DontFragment = false, MoreFragments = true }) },
    };

    [PrivilegedTheory]
    [MemberData(nameof(UnmatchedPackets))]
    public void UnmatchedTrafficPassesUntouched(string what, byte[] input)
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Three));

        var (verdict, output) = dp.FromPod(input);
        Assert.True(verdict == PodDatapath.TcActOk, what);
        Assert.Equal(input, output);
        var (verdict2, output2) = dp.ToPod(input);
        Assert.True(verdict2 == PodDatapath.TcActOk, what);
        Assert.Equal(input, output2);
    }

    [PrivilegedFact]
    public void IpOptionsAreSkippedCorrectlyWhenTranslating()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Three));
        var input = PacketBuilder.Tcp(PodDatapath.Client, 1234, PodDatapath.Vip, 80, options: new PacketOptions { IpOptions = [1, 1, 1, 0] });

        var p = Packet.Parse(dp.FromPod(input).Packet);
        Assert.Contains(p.Destination, ThreeIps);
        Assert.Equal(8080, p.DestinationPort);
        Assert.Equal(1234, p.SourcePort);
        Assert.True(p.ChecksumsValid, p.ToString());
    }

    [PrivilegedFact]
    public void TruncatedHeadersAreDropped()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Three));
        var full = PacketBuilder.Tcp(PodDatapath.Client, 1234, PodDatapath.Vip, 80);
        var truncated = full[..(14 + 20 + 8)]; // TCP header cut short
        Assert.Equal(PodDatapath.TcActShot, dp.FromPod(truncated).Verdict);
        Assert.Equal(1UL, dp.Counter(Reason.DropInvalid, MetricsDirection.Ingress));
    }
}
