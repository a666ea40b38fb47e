using EbpfProxy.Datapath.Sync;
using EbpfProxy.Core.Policy;
using System.Net;
using EbpfProxy.Core.Model;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Policy;
using EbpfProxy.Testing;
using EbpfProxy.Testing.Packets;

namespace EbpfProxy.Datapath.Tests;

/// <summary>
/// NetworkPolicy in from_pod / to_pod on crafted packets (BPF_PROG_TEST_RUN), the policy maps
/// seeded by the real <see cref="PolicyStage"/> and the service maps by the real syncer.
/// </summary>
public class PolicyProgramTests
{
    private const PolicyDirection In = PolicyDirection.Ingress, Out = PolicyDirection.Egress;

    // Local pods A (client, 10.244.0.2 = PodDatapath.Client) and B (server); R on another node; the node itself.
    private static readonly IPAddress A = PodDatapath.Client, B = IPAddress.Parse("10.244.0.11"), R = IPAddress.Parse("10.244.1.5");
    private static readonly IPAddress Node = IPAddress.Parse("192.168.1.10"), Outside = IPAddress.Parse("203.0.113.9");
    private const uint IdA = 300, IdB = 301, IdR = 302;
    private const uint EpA = 1, EpB = 2;

    private static readonly Dictionary<IPNetwork, uint> Ipcache = new()
    {
        [new IPNetwork(A, 32)] = IdA,
        [new IPNetwork(B, 32)] = IdB,
        [new IPNetwork(R, 32)] = IdR,
        [new IPNetwork(Node, 32)] = PolicyIdentity.Host,
    };

    private static PolicyState State(PolicyIsolation a, PolicyIsolation b, params PolicyRule[] rules) => new()
    {
        Ipcache = Ipcache,
        Endpoints = new Dictionary<IPAddress, EndpointEntry> { [A] = new(EpA, IdA, a), [B] = new(EpB, IdB, b) },
        Rules = rules.ToHashSet(),
    };

    private static PolicyStage Seed(PodDatapath dp, PolicyState state)
    {
        var writer = new PolicyStage(dp.Loaded.DatapathMaps);
        writer.Apply(state);
        return writer;
    }

    private static List<KeyValuePair<Ct4Key, PolCtEntry>> PolicyEntries(PodDatapath dp) =>
        dp.Loaded.Policy.Conntrack.Entries().ToList();

    private static void AssertVerdict(uint expected, (uint Verdict, byte[] Packet) run, string what) =>
        Assert.True(run.Verdict == expected, $"{what}: tc verdict {run.Verdict}, expected {expected}");

    [PrivilegedFact]
    public void AnIsolatedPodWithoutRulesDeniesIngressExceptFromItsNode()
    {
        using var dp = new PodDatapath();
        Seed(dp, State(PolicyIsolation.None, PolicyIsolation.Ingress));

        AssertVerdict(PodDatapath.TcActShot, dp.ToPod(PacketBuilder.Tcp(R, 40000, B, 8080)), "remote pod -> B");
        AssertVerdict(PodDatapath.TcActShot, dp.ToPod(PacketBuilder.Udp(Outside, 5000, B, 53, "q"u8)), "world -> B");
        AssertVerdict(PodDatapath.TcActOk, dp.ToPod(PacketBuilder.Tcp(Node, 40001, B, 8080)), "node (kubelet probe) -> B");
        // B's egress is open, and its ingress does not concern what it sends.
        AssertVerdict(PodDatapath.TcActOk, dp.FromPod(PacketBuilder.Tcp(B, 40002, R, 80)), "B -> remote pod");

        Assert.Equal(2UL, dp.Counter(Reason.PolicyIngressDenied, MetricsDirection.Egress));
        Assert.Equal(0UL, dp.Counter(Reason.PolicyEgressDenied, MetricsDirection.Ingress));
    }

    [PrivilegedFact]
    public void IcmpAndOtherProtocolsNeedARuleForEveryProtocolButErrorsAboutItsConnectionsPass()
    {
        using var dp = new PodDatapath();
        Seed(dp, State(PolicyIsolation.None, PolicyIsolation.Ingress));

        AssertVerdict(PodDatapath.TcActShot, dp.ToPod(PacketBuilder.IcmpEcho(R, B)), "ping from a remote pod");
        AssertVerdict(PodDatapath.TcActShot, dp.ToPod(PacketBuilder.Ipv4(R, B, 47, new byte[8])), "GRE from a remote pod");
        AssertVerdict(PodDatapath.TcActOk, dp.ToPod(PacketBuilder.IcmpEcho(Node, B)), "ping from the node");
        // Fragmentation needed about a connection B opened (its egress is open, so it is tracked): delivered.
        var sent = PacketBuilder.Tcp(B, 40100, R, 443, TcpFlags.Syn);
        AssertVerdict(PodDatapath.TcActOk, dp.FromPod(sent), "B -> R");
        AssertVerdict(PodDatapath.TcActOk, dp.ToPod(IcmpErrorTests.IcmpError(R, B, 3, 4, sent, mtu: 1280)), "ICMP error about B's connection");
        // The same error about a connection B never had is not (bpf/lib/icmp.h), nor one quoting no tuple.
        AssertVerdict(PodDatapath.TcActShot, dp.ToPod(IcmpErrorTests.IcmpError(R, B, 3, 4, PacketBuilder.Tcp(B, 40101, R, 443), mtu: 1280)), "unrelated ICMP error");
        Assert.Equal(1UL, dp.Counter(Reason.PolicyIcmpUnrelated, MetricsDirection.Egress));
        var unreachable = new byte[36];
        unreachable[0] = 3;
        unreachable[1] = 4;
        AssertVerdict(PodDatapath.TcActShot, dp.ToPod(PacketBuilder.Ipv4(R, B, 1, unreachable)), "ICMP error quoting nothing");
        // A's side is not isolated.
        AssertVerdict(PodDatapath.TcActOk, dp.ToPod(PacketBuilder.IcmpEcho(R, A)), "ping to a pod without isolation");

        // A rule without ports admits every protocol from that peer, ICMP included.
        Seed(dp, State(PolicyIsolation.None, PolicyIsolation.Ingress, PolicyRule.AllTraffic(EpB, IdR, In)));
        AssertVerdict(PodDatapath.TcActOk, dp.ToPod(PacketBuilder.IcmpEcho(R, B)), "ping under an all-traffic rule");
        Assert.Equal(3UL, dp.Counter(Reason.PolicyIngressDenied, MetricsDirection.Egress));
    }

    [PrivilegedFact]
    public void AnIsolatedPodWithoutRulesDeniesEgress()
    {
        using var dp = new PodDatapath();
        Seed(dp, State(PolicyIsolation.Egress, PolicyIsolation.None));

        AssertVerdict(PodDatapath.TcActShot, dp.FromPod(PacketBuilder.Tcp(A, 40000, R, 80)), "A -> remote pod");
        AssertVerdict(PodDatapath.TcActShot, dp.FromPod(PacketBuilder.Udp(A, 40001, Node, 53, "q"u8)), "A -> node (egress to the node is not special)");
        AssertVerdict(PodDatapath.TcActOk, dp.ToPod(PacketBuilder.Tcp(R, 40002, A, 8080)), "remote -> A (ingress open)");

        Assert.Equal(2UL, dp.Counter(Reason.PolicyEgressDenied, MetricsDirection.Ingress));
        Assert.Equal(0UL, dp.Counter(Reason.PolicyIngressDenied, MetricsDirection.Egress));
        // Only the admitted connection is tracked (for its replies, which A's egress must let out).
        var entry = Assert.Single(PolicyEntries(dp));
        Assert.Equal((A, R, (ushort)8080, CtDirection.Policy, PolCtFlags.Inbound), (entry.Key.SaddrBe.ToAddress(), entry.Key.DaddrBe.ToAddress(), entry.Key.SportBe.ToHost(), entry.Key.Dir, entry.Value.Flags));
        AssertVerdict(PodDatapath.TcActOk, dp.FromPod(PacketBuilder.Tcp(A, 8080, R, 40002, TcpFlags.Syn | TcpFlags.Ack)), "A's reply to R");
    }

    [PrivilegedFact]
    public void ARuleAdmitsItsIdentityProtocolAndPortOnly()
    {
        using var dp = new PodDatapath();
        Seed(dp, State(PolicyIsolation.None, PolicyIsolation.Ingress, PolicyRule.SinglePort(EpB, IdR, In, L4Protocol.Tcp, 8080)));

        AssertVerdict(PodDatapath.TcActOk, dp.ToPod(PacketBuilder.Tcp(R, 40000, B, 8080)), "R tcp/8080");
        AssertVerdict(PodDatapath.TcActShot, dp.ToPod(PacketBuilder.Tcp(R, 40001, B, 8081)), "R tcp/8081");
        AssertVerdict(PodDatapath.TcActShot, dp.ToPod(PacketBuilder.Udp(R, 40002, B, 8080, "x"u8)), "R udp/8080 (a TCP rule never admits UDP)");
        AssertVerdict(PodDatapath.TcActShot, dp.ToPod(PacketBuilder.Tcp(A, 40003, B, 8080)), "A (another identity) tcp/8080");
        AssertVerdict(PodDatapath.TcActShot, dp.ToPod(PacketBuilder.Tcp(Outside, 40004, B, 8080)), "world tcp/8080");
        Assert.Equal(4UL, dp.Counter(Reason.PolicyIngressDenied, MetricsDirection.Egress));
    }

    [PrivilegedFact]
    public void ARuleForIdentityZeroAdmitsEveryPeerIncludingTheWorld()
    {
        using var dp = new PodDatapath();
        Seed(dp, State(PolicyIsolation.None, PolicyIsolation.Ingress, PolicyRule.SinglePort(EpB, PolicyIdentity.Any, In, L4Protocol.Tcp, 8080)));

        foreach (var peer in new[] { R, A, Outside })
            AssertVerdict(PodDatapath.TcActOk, dp.ToPod(PacketBuilder.Tcp(peer, 40000, B, 8080)), $"{peer} tcp/8080");
        AssertVerdict(PodDatapath.TcActShot, dp.ToPod(PacketBuilder.Tcp(R, 40000, B, 9090)), "R tcp/9090");
    }

    [PrivilegedFact]
    public void AProtocolOnlyRuleAdmitsEveryPortOfThatProtocol()
    {
        using var dp = new PodDatapath();
        Seed(dp, State(PolicyIsolation.Egress, PolicyIsolation.None, PolicyRule.AllPorts(EpA, IdR, Out, L4Protocol.Udp)));

        foreach (ushort port in new ushort[] { 1, 53, 8080, 65535 })
            AssertVerdict(PodDatapath.TcActOk, dp.FromPod(PacketBuilder.Udp(A, 40000, R, port, "x"u8)), $"udp/{port}");
        AssertVerdict(PodDatapath.TcActShot, dp.FromPod(PacketBuilder.Tcp(A, 40000, R, 53)), "tcp/53");
        AssertVerdict(PodDatapath.TcActShot, dp.FromPod(PacketBuilder.Sctp(A, 40000, R, 53)), "sctp/53");
    }

    [PrivilegedFact]
    public void APortRangeAdmitsExactlyItsPortsBoundariesIncluded()
    {
        using var dp = new PodDatapath();
        // port 32000, endPort 32768: blocks 32000/8, 32256/7, 32768/16.
        Seed(dp, State(PolicyIsolation.None, PolicyIsolation.Ingress, [.. PolicyRule.PortRange(EpB, IdR, In, L4Protocol.Tcp, 32000, 32768)]));

        foreach (var (port, admitted) in new (ushort, bool)[] { (31999, false), (32000, true), (32255, true), (32256, true), (32511, true), (32767, true), (32768, true), (32769, false), (33024, false), (1, false) })
            AssertVerdict(admitted ? PodDatapath.TcActOk : PodDatapath.TcActShot, dp.ToPod(PacketBuilder.Tcp(R, 40000, B, port)), $"tcp/{port}");
    }

    public static TheoryData<string> Protocols() => new() { "tcp", "udp", "sctp" };

    private static byte[] Make(string proto, IPAddress src, ushort sport, IPAddress dst, ushort dport, bool reply = false) => proto switch
    {
        "tcp" => PacketBuilder.Tcp(src, sport, dst, dport, reply ? TcpFlags.Syn | TcpFlags.Ack : TcpFlags.Syn),
        "udp" => PacketBuilder.Udp(src, sport, dst, dport, "x"u8),
        _ => PacketBuilder.Sctp(src, sport, dst, dport),
    };

    [PrivilegedTheory]
    [MemberData(nameof(Protocols))]
    public void RepliesOfAnAdmittedConnectionPassBothHooks(string proto)
    {
        using var dp = new PodDatapath();
        // Both pods isolated both ways; A may reach R on 80, R may reach B on 8080; nothing else.
        var l4 = proto switch { "tcp" => L4Protocol.Tcp, "udp" => L4Protocol.Udp, _ => L4Protocol.Sctp };
        Seed(dp, State(PolicyIsolation.Ingress | PolicyIsolation.Egress, PolicyIsolation.Ingress | PolicyIsolation.Egress,
            PolicyRule.SinglePort(EpA, IdR, Out, l4, 80), PolicyRule.SinglePort(EpB, IdR, In, l4, 8080)));

        // A opens to R: egress judged in from_pod; R's reply enters A through to_pod (A's ingress admits nothing).
        AssertVerdict(PodDatapath.TcActOk, dp.FromPod(Make(proto, A, 40000, R, 80)), "A -> R");
        for (int i = 0; i < 3; i++)
            AssertVerdict(PodDatapath.TcActOk, dp.ToPod(Make(proto, R, 80, A, 40000, reply: true)), "R -> A reply");
        AssertVerdict(PodDatapath.TcActOk, dp.FromPod(Make(proto, A, 40000, R, 80)), "A -> R again");
        // R opens to B: ingress judged in to_pod; B's reply leaves through from_pod (B's egress admits nothing).
        AssertVerdict(PodDatapath.TcActOk, dp.ToPod(Make(proto, R, 50000, B, 8080)), "R -> B");
        AssertVerdict(PodDatapath.TcActOk, dp.FromPod(Make(proto, B, 8080, R, 50000, reply: true)), "B -> R reply");

        // The same ports in another connection are not replies.
        AssertVerdict(PodDatapath.TcActShot, dp.ToPod(Make(proto, R, 81, A, 40000, reply: true)), "R:81 -> A");
        AssertVerdict(PodDatapath.TcActShot, dp.FromPod(Make(proto, B, 8080, R, 50001, reply: true)), "B -> R:50001");
        Assert.Equal(2, PolicyEntries(dp).Count);
    }

    [PrivilegedFact]
    public void AReplyLookingPacketWithoutAConnectionIsJudgedAsNew()
    {
        using var dp = new PodDatapath();
        Seed(dp, State(PolicyIsolation.Ingress, PolicyIsolation.None));

        // As if A had opened to R:80 before conntrack was lost (a restart without pins, an evicted entry).
        AssertVerdict(PodDatapath.TcActShot, dp.ToPod(PacketBuilder.Tcp(R, 80, A, 40000, TcpFlags.Syn | TcpFlags.Ack)), "SYN-ACK");
        AssertVerdict(PodDatapath.TcActShot, dp.ToPod(PacketBuilder.Tcp(R, 80, A, 40000, TcpFlags.Ack, "data"u8)), "ACK");
        AssertVerdict(PodDatapath.TcActShot, dp.ToPod(PacketBuilder.Udp(R, 53, A, 40000, "answer"u8)), "UDP answer");
        Assert.Equal(3UL, dp.Counter(Reason.PolicyIngressDenied, MetricsDirection.Egress));
        Assert.Empty(PolicyEntries(dp));

        // Once A has opened the connection, the same packets are replies.
        AssertVerdict(PodDatapath.TcActOk, dp.FromPod(PacketBuilder.Tcp(A, 40000, R, 80)), "A's SYN");
        AssertVerdict(PodDatapath.TcActOk, dp.ToPod(PacketBuilder.Tcp(R, 80, A, 40000, TcpFlags.Syn | TcpFlags.Ack)), "SYN-ACK after A's SYN");
    }

    [PrivilegedFact]
    public void BetweenTwoLocalPodsBothSidesJudgeTheFirstPacketAndBothSeeTheReplies()
    {
        using var dp = new PodDatapath();
        var both = PolicyIsolation.Ingress | PolicyIsolation.Egress;
        Seed(dp, State(both, both, PolicyRule.SinglePort(EpA, IdB, Out, L4Protocol.Tcp, 8080)));

        // A's egress admits; B's ingress does not: the first packet dies on B's side.
        AssertVerdict(PodDatapath.TcActOk, dp.FromPod(PacketBuilder.Tcp(A, 40000, B, 8080)), "A -> B, A's egress");
        AssertVerdict(PodDatapath.TcActShot, dp.ToPod(PacketBuilder.Tcp(A, 40000, B, 8080)), "A -> B, B's ingress");
        // B cannot answer what it never admitted.
        AssertVerdict(PodDatapath.TcActShot, dp.FromPod(PacketBuilder.Tcp(B, 8080, A, 40000, TcpFlags.Syn | TcpFlags.Ack)), "B -> A without B's entry");

        Seed(dp, State(both, both, PolicyRule.SinglePort(EpA, IdB, Out, L4Protocol.Tcp, 8080), PolicyRule.SinglePort(EpB, IdA, In, L4Protocol.Tcp, 8080)));
        AssertVerdict(PodDatapath.TcActOk, dp.FromPod(PacketBuilder.Tcp(A, 40001, B, 8080)), "A -> B, A's egress");
        AssertVerdict(PodDatapath.TcActOk, dp.ToPod(PacketBuilder.Tcp(A, 40001, B, 8080)), "A -> B, B's ingress");
        AssertVerdict(PodDatapath.TcActOk, dp.FromPod(PacketBuilder.Tcp(B, 8080, A, 40001, TcpFlags.Syn | TcpFlags.Ack)), "B -> A reply, B's egress");
        AssertVerdict(PodDatapath.TcActOk, dp.ToPod(PacketBuilder.Tcp(B, 8080, A, 40001, TcpFlags.Syn | TcpFlags.Ack)), "B -> A reply, A's ingress");
        var owners = PolicyEntries(dp).Where(e => e.Key.SportBe.ToHost() == 40001 || e.Key.DportBe.ToHost() == 40001)
            .Select(e => (e.Key.SaddrBe.ToAddress().ToString(), (e.Value.Flags & PolCtFlags.Inbound) != 0)).Order().ToList();
        Assert.Equal(new[] { (A.ToString(), false), (B.ToString(), true) }.Order(), owners);
    }

    [PrivilegedFact]
    public void AServiceFlowIsJudgedOnTheBackendAddressAndPortAndItsRepliesPass()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(R.ToString())); // 10.96.0.42:80 -> R:8080
        var both = PolicyIsolation.Ingress | PolicyIsolation.Egress;

        // A rule for the service port (80) does not admit: policy sees the backend's port.
        Seed(dp, State(both, PolicyIsolation.None, PolicyRule.SinglePort(EpA, IdR, Out, L4Protocol.Tcp, 80)));
        AssertVerdict(PodDatapath.TcActShot, dp.FromPod(PacketBuilder.Tcp(A, 40000, PodDatapath.Vip, 80)), "A -> VIP with a rule for port 80");

        Seed(dp, State(both, PolicyIsolation.None, PolicyRule.SinglePort(EpA, IdR, Out, L4Protocol.Tcp, 8080)));
        var (verdict, output) = dp.FromPod(PacketBuilder.Tcp(A, 40001, PodDatapath.Vip, 80));
        Assert.Equal(PodDatapath.TcActOk, verdict);
        Assert.Equal(R, Packet.Parse(output).Destination);
        AssertVerdict(PodDatapath.TcActOk, dp.FromPod(PacketBuilder.Tcp(A, 40001, PodDatapath.Vip, 80, TcpFlags.Ack, "more"u8, seq: 2)), "established");

        // The backend's reply is reverse-translated and passes A's ingress (which admits nothing) as a reply.
        var (rv, back) = dp.ToPod(PacketBuilder.Tcp(R, 8080, A, 40001, TcpFlags.Syn | TcpFlags.Ack));
        Assert.Equal(PodDatapath.TcActOk, rv);
        Assert.Equal(PodDatapath.Vip, Packet.Parse(back).Source);
        Assert.Equal(1UL, dp.Counter(Reason.PolicyEgressDenied, MetricsDirection.Ingress));
        Assert.Equal(0UL, dp.Counter(Reason.PolicyIngressDenied, MetricsDirection.Egress));
        // A's entry is the connection as A sees it: A -> VIP.
        var entry = Assert.Single(PolicyEntries(dp));
        Assert.Equal((A, PodDatapath.Vip, (ushort)80), (entry.Key.SaddrBe.ToAddress(), entry.Key.DaddrBe.ToAddress(), entry.Key.DportBe.ToHost()));
    }

    [PrivilegedFact]
    public void AServiceFlowMovedToAnotherBackendIsJudgedAgain()
    {
        using var dp = new PodDatapath();
        var other = IPAddress.Parse("10.244.1.6"); // identity 303, which A may not reach
        dp.Apply(PodDatapath.EchoService(R.ToString()));
        var state = State(PolicyIsolation.Egress, PolicyIsolation.None, PolicyRule.AllTraffic(EpA, IdR, Out));
        Seed(dp, state with { Ipcache = new Dictionary<IPNetwork, uint>(Ipcache) { [new IPNetwork(other, 32)] = 303 } });
        AssertVerdict(PodDatapath.TcActOk, dp.FromPod(PacketBuilder.Udp(A, 40000, PodDatapath.Vip, 80, "x"u8)), "to R");

        // R leaves the service; its flows are purged and the next datagram goes to the other backend.
        dp.Apply(PodDatapath.EchoService(other.ToString()));
        AssertVerdict(PodDatapath.TcActShot, dp.FromPod(PacketBuilder.Udp(A, 40000, PodDatapath.Vip, 80, "x"u8)), "same tuple, now to the other backend");
    }

    [PrivilegedFact]
    public void APodWithoutIsolationIsUntouchedAndTracksNothing()
    {
        using var dp = new PodDatapath();
        // A has an entry without isolation, B none at all; rules exist but apply to nobody.
        Seed(dp, new PolicyState
        {
            Ipcache = Ipcache,
            Endpoints = new Dictionary<IPAddress, EndpointEntry> { [A] = new(EpA, IdA, PolicyIsolation.None) },
            Rules = new HashSet<PolicyRule> { PolicyRule.SinglePort(EpA, IdR, In, L4Protocol.Tcp, 1) },
        });
        foreach (var local in new[] { A, B })
        {
            var send = PacketBuilder.Tcp(local, 40000, R, 80);
            var receive = PacketBuilder.Udp(Outside, 53, local, 40000, "x"u8);
            foreach (var (input, run) in new[] { (send, dp.FromPod(send)), (receive, dp.ToPod(receive)) })
            {
                Assert.Equal(PodDatapath.TcActOk, run.Verdict);
                Assert.Equal(input, run.Packet);
            }
        }
        Assert.Empty(PolicyEntries(dp));
        Assert.Equal(4UL, dp.Counter(Reason.PassNotService, MetricsDirection.Ingress) + dp.Counter(Reason.PassNotService, MetricsDirection.Egress));
    }

    [PrivilegedFact]
    public void ATracedPacketIsJudgedButLeavesNoConnection()
    {
        using var dp = new PodDatapath();
        Seed(dp, State(PolicyIsolation.None, PolicyIsolation.Ingress, PolicyRule.SinglePort(EpB, IdR, In, L4Protocol.Tcp, 8080)));

        var allowed = Tracing.PacketTracer.Run(dp.Options.PinPath, new Tracing.TraceRequest(R, 40000, B, 8080, L4Protocol.Tcp, Tracing.TraceHook.ToPod));
        Assert.Equal(("forward", "not_service"), (allowed.Verdict, allowed.Reason));
        Assert.Equal(new Tracing.TracePolicy(EpB, IdR, PolicyVerdict.AllowIdentity), allowed.Policy);
        var denied = Tracing.PacketTracer.Run(dp.Options.PinPath, new Tracing.TraceRequest(R, 40000, B, 9090, L4Protocol.Tcp, Tracing.TraceHook.ToPod));
        Assert.Equal(("DROP", "policy_ingress_denied"), (denied.Verdict, denied.Reason));
        Assert.Equal(new Tracing.TracePolicy(EpB, IdR, PolicyVerdict.Deny), denied.Policy);
        var open = Tracing.PacketTracer.Run(dp.Options.PinPath, new Tracing.TraceRequest(R, 40000, A, 9090, L4Protocol.Tcp, Tracing.TraceHook.ToPod));
        Assert.Null(open.Policy);

        Assert.Empty(PolicyEntries(dp));
        Assert.Equal(0UL, dp.Counter(Reason.PolicyIngressDenied, MetricsDirection.Egress));
        // A real connection is then reported as tracked.
        dp.ToPod(PacketBuilder.Tcp(R, 40000, B, 8080));
        var tracked = Tracing.PacketTracer.Run(dp.Options.PinPath, new Tracing.TraceRequest(R, 40000, B, 8080, L4Protocol.Tcp, Tracing.TraceHook.ToPod));
        Assert.Equal(PolicyVerdict.Tracked, tracked.Policy?.Verdict);
    }

    [PrivilegedFact]
    public void ATraceRecordPinnedWithTheOlderLayoutIsReplacedAtLoad()
    {
        using var dp = new PodDatapath();
        // What a daemon from before trace_record grew its policy fields left pinned (16-byte records).
        var pin = Path.Combine(dp.Options.PinPath, LbMaps.TraceMap);
        File.Delete(pin);
        Cmd.Run("bpftool", "map", "create", pin, "type", "array", "key", "4", "value", "16", "entries", "1", "name", LbMaps.TraceMap);

        using var upgraded = Loading.DatapathLoader.Load(dp.Options, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        using var pinned = LibBpf.Net.BpfMap.OpenPinned(pin);
        Assert.Equal((uint)System.Runtime.CompilerServices.Unsafe.SizeOf<TraceRecord>(), pinned.ValueSize);
        Assert.Equal("forward", Tracing.PacketTracer.Run(dp.Options.PinPath, new Tracing.TraceRequest(R, 40000, B, 80, L4Protocol.Tcp, Tracing.TraceHook.ToPod)).Verdict);
    }
}
