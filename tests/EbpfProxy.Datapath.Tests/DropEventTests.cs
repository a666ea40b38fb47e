using EbpfProxy.Datapath.Sync;
using EbpfProxy.Core.Policy;
using System.Net;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Observe;
using EbpfProxy.Datapath.Policy;
using EbpfProxy.Testing;
using EbpfProxy.Testing.Packets;

namespace EbpfProxy.Datapath.Tests;

/// <summary>Dropped packets reach user space through the drop_events ring buffer (what `ebpf-proxy observe` prints).</summary>
public class DropEventTests
{
    [PrivilegedFact]
    public void EveryDropIsSentWithItsReasonTupleAndPolicyContext()
    {
        using var dp = new PodDatapath("10.96.0.0/12");
        dp.Apply(PodDatapath.EchoService(["10.244.0.11"]));
        var server = IPAddress.Parse("10.244.0.11");
        var peer = IPAddress.Parse("10.244.1.5");
        new PolicyStage(dp.Loaded.DatapathMaps).Apply(new PolicyState
        {
            Ipcache = new Dictionary<IPNetwork, uint> { [new IPNetwork(peer, 32)] = 300 },
            Endpoints = new Dictionary<IPAddress, EndpointEntry> { [server] = new(5, 301, PolicyIsolation.Ingress) },
        });
        using var reader = new DropEventReader(dp.Maps.DropEvents);
        var before = DateTimeOffset.UtcNow;

        Assert.Equal(PodDatapath.TcActShot, dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, 41000, IPAddress.Parse("10.96.7.7"), 80)).Verdict);
        Assert.Equal(PodDatapath.TcActShot, dp.ToPod(PacketBuilder.Udp(peer, 5353, server, 8080, "q"u8)).Verdict);
        Assert.Equal(PodDatapath.TcActOk, dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, 41001, PodDatapath.Vip, 80)).Verdict); // not a drop

        var after = DateTimeOffset.UtcNow;
        var events = reader.Poll(100);
        Assert.Equal(2, events.Count);
        // The kernel's stamp, converted to wall-clock time, falls within the test-runs (issue 10 item 8).
        foreach (var ev in events)
        {
            var at = LibBpf.Net.KernelClock.ToWallClock(ev.TsNs);
            Assert.InRange(at, before.AddMilliseconds(-5), after.AddMilliseconds(5));
        }
        Assert.True(events[0].TsNs <= events[1].TsNs);
        var vip = events[0];
        Assert.Equal((byte)Reason.DropUnallocatedVip, vip.Reason);
        Assert.Equal((PodDatapath.Client, IPAddress.Parse("10.96.7.7"), (ushort)41000, (ushort)80, (byte)6),
            (vip.SaddrBe.ToAddress(), vip.DaddrBe.ToAddress(), vip.SportBe.ToHost(), vip.DportBe.ToHost(), vip.Proto));
        Assert.Equal((byte)MetricsDirection.Ingress, vip.Dir);
        var denied = events[1];
        Assert.Equal((byte)Reason.PolicyIngressDenied, denied.Reason);
        Assert.Equal((byte)MetricsDirection.Egress, denied.Dir);
        Assert.Equal((peer, server, (byte)17), (denied.SaddrBe.ToAddress(), denied.DaddrBe.ToAddress(), denied.Proto));
        Assert.Equal((5u, 300u), (denied.PolicyEndpoint, denied.PolicyIdentity));
        Assert.Contains("policy_ingress_denied", denied.ToString(), StringComparison.Ordinal);

        // A traced packet is no drop of real traffic: no event.
        EbpfProxy.Datapath.Tracing.PacketTracer.Run(dp.Options.PinPath,
            new EbpfProxy.Datapath.Tracing.TraceRequest(PodDatapath.Client, 1, IPAddress.Parse("10.96.7.7"), 80, Core.Model.L4Protocol.Tcp, EbpfProxy.Datapath.Tracing.TraceHook.FromPod));
        Assert.Empty(reader.Poll(50));
    }
}
