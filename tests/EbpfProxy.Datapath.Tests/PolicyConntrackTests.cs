using System.Net;
using EbpfProxy.Core.Model;
using EbpfProxy.Datapath.Loading;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Policy;
using EbpfProxy.Testing;
using EbpfProxy.Testing.Packets;
using Microsoft.Extensions.Logging.Abstractions;

namespace EbpfProxy.Datapath.Tests;

/// <summary>
/// pol_ct4, the policy conntrack map of its own: service flows cannot evict an admitted
/// connection, and an upgrade moves the entries older versions kept in ct4.
/// </summary>
public class PolicyConntrackTests
{
    private static readonly IPAddress A = PodDatapath.Client, B = IPAddress.Parse("10.244.0.11"), R = IPAddress.Parse("10.244.1.5");
    private const uint EpB = 2, IdR = 302;

    /// <summary>B isolated both ways; its ingress admits R on TCP 8080, its egress admits nothing.</summary>
    private static void Seed(PodDatapath dp) => new PolicyMapWriter(dp.Loaded.Policy).Apply(new PolicyState
    {
        Ipcache = new Dictionary<IPNetwork, uint> { [new IPNetwork(R, 32)] = IdR, [new IPNetwork(B, 32)] = 301 },
        Endpoints = new Dictionary<IPAddress, PolicyEndpoint> { [B] = new(EpB, 301, PolicyIsolation.Ingress | PolicyIsolation.Egress) },
        Rules = new HashSet<PolicyRule> { PolicyRule.SinglePort(EpB, IdR, PolicyDirection.Ingress, L4Protocol.Tcp, 8080) },
    });

    private static uint Reply(PodDatapath dp) => dp.FromPod(PacketBuilder.Tcp(B, 8080, R, 40000, TcpFlags.Syn | TcpFlags.Ack)).Verdict;

    [PrivilegedFact]
    public void AFloodOfServiceFlowsNeverEvictsAnAdmittedConnection()
    {
        using var dp = new PodDatapath(configure: o => o.PolicyConntrackMax = 1024);
        dp.Apply(PodDatapath.EchoService("10.244.0.12"));
        Seed(dp);
        Assert.Equal(PodDatapath.TcActOk, dp.ToPod(PacketBuilder.Tcp(R, 40000, B, 8080, TcpFlags.Syn)).Verdict);
        Assert.Equal(PodDatapath.TcActOk, Reply(dp));

        // Three times as many service flows as ct4 holds (4096 here): the service map turns over.
        for (int i = 0; i < 6144; i++)
            Assert.Equal(PodDatapath.TcActOk, dp.FromPod(PacketBuilder.Tcp(A, (ushort)(10000 + i), PodDatapath.Vip, 80, TcpFlags.Syn)).Verdict);
        Assert.True(dp.Maps.Ct4.Keys().Count() <= (int)dp.Options.ConntrackMax);

        // B's reply is still recognised (its egress admits nothing new).
        var entry = Assert.Single(dp.Loaded.Policy.Conntrack.Entries());
        Assert.Equal((B, R, PolCtFlags.Inbound), (entry.Key.SaddrBe.ToAddress(), entry.Value.PeerBe.ToAddress(), entry.Value.Flags));
        Assert.Equal(PodDatapath.TcActOk, Reply(dp));
        Assert.Equal(0UL, dp.Counter(Reason.PolicyEgressDenied, MetricsDirection.Ingress));
        Assert.Equal(1024u, dp.Loaded.Policy.Conntrack.Map.MaxEntries);

        // The pressure `ebpf-proxy maps` shows: ct4 full and turning over, pol_ct4 holding its one entry.
        var fill = MapPressure.Read(dp.Options.PinPath).ToDictionary(m => m.Name);
        Assert.Equal((1L, 1024u, true), (fill[PolicyMaps.ConntrackMap].Entries!.Value, fill[PolicyMaps.ConntrackMap].MaxEntries, fill[PolicyMaps.ConntrackMap].Evicts));
        Assert.InRange(fill[LbMaps.Conntrack].Entries!.Value, 2048L, dp.Options.ConntrackMax);
        Assert.Null(fill[LbMaps.MetricsMap].Entries);
    }

    [PrivilegedFact]
    public void AnUpgradeMovesPolicyEntriesOutOfTheServiceConntrack()
    {
        using var dp = new PodDatapath();
        Seed(dp);
        // What an older version left in ct4: B's admitted inbound connection from R:40000.
        var key = new Ct4Key
        {
            SaddrBe = Be32Address.FromAddress(B), DaddrBe = Be32Address.FromAddress(R),
            SportBe = Be16.FromHost(8080), DportBe = Be16.FromHost(40000), Proto = 6, Dir = CtDirection.Policy,
        };
        ulong now = (ulong)((Environment.TickCount64 - 1000) * 1_000_000L); // CLOCK_MONOTONIC, a little in the past
        var peer = Be32Address.FromAddress(R);
        var legacy = new CtEntry
        {
            LastSeenNs = now, CreatedNs = now,
            BackendId = System.Runtime.CompilerServices.Unsafe.As<Be32Address, uint>(ref peer),
            RevNatId = RawPort(40000), Flags = CtFlags.PolicyInbound,
        };
        dp.Maps.Ct4.Update(key, legacy);
        Assert.NotEqual(PodDatapath.TcActOk, Reply(dp)); // not found where this version looks

        // The new version's load over the same pins moves it.
        using (var upgraded = DatapathLoader.Load(dp.Options, NullLogger.Instance))
        {
            Assert.DoesNotContain(dp.Maps.Ct4.Entries(), e => e.Key.Dir == CtDirection.Policy);
            var moved = Assert.Single(dp.Loaded.Policy.Conntrack.Entries());
            Assert.Equal(key, moved.Key);
            Assert.Equal((R, (ushort)40000, PolCtFlags.Inbound, now), (moved.Value.PeerBe.ToAddress(), moved.Value.PeerPortBe.ToHost(), moved.Value.Flags, moved.Value.LastSeenNs));
            Assert.Equal(PodDatapath.TcActOk, PodDatapath.Run(upgraded.FromPod, PacketBuilder.Tcp(B, 8080, R, 40000, TcpFlags.Ack)).Verdict);
        }
    }

    private static ushort RawPort(ushort port) => BitConverter.IsLittleEndian ? System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(port) : port;
}
