using System.Net;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Observe;
using EbpfProxy.Testing;
using EbpfProxy.Testing.Packets;
using Xunit.Abstractions;

namespace EbpfProxy.Datapath.Tests;

/// <summary>
/// New connections reach user space through the flow_events ring buffer, with their tuple before
/// and after DNAT, only while an observer has set a rate, and never more than that rate per CPU
/// (every new connection is either sent or counted as suppressed).
/// </summary>
public class FlowEventTests(ITestOutputHelper output)
{
    private static readonly IPAddress Backend = IPAddress.Parse("10.244.0.11");

    [PrivilegedFact]
    public void NewServiceConnectionsAreReportedTranslatedOnlyWhileObservedAndWithinTheRate()
    {
        using var dp = new PodDatapath("10.96.0.0/12");
        dp.Apply(PodDatapath.EchoService([Backend.ToString()]));
        ushort revNat = 0;
        string? Name(ushort id)
        {
            revNat = id;
            return "default/echo:http";
        }

        // Nobody observes: no event, nothing counted as suppressed.
        Assert.Equal(PodDatapath.TcActOk, dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, 42000, PodDatapath.Vip, 80)).Verdict);
        Assert.Equal(0UL, FlowObserver.Suppressed(dp.Options.PinPath));

        using (var observer = new FlowObserver(dp.Options.PinPath, 1000, Name, _ => null))
        {
            Assert.True(observer.FlowsOn);
            Assert.Empty(observer.Poll(20));
            var before = DateTimeOffset.UtcNow;
            Assert.Equal(PodDatapath.TcActOk, dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, 42001, PodDatapath.Vip, 80)).Verdict);
            // The same connection's next packet, and a packet for no service: not new connections.
            dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, 42001, PodDatapath.Vip, 80, TcpFlags.Ack));
            dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, 42002, IPAddress.Parse("10.244.0.12"), 80));
            var after = DateTimeOffset.UtcNow;
            var ev = Assert.Single(observer.Poll(100));
            Assert.False(ev.Dropped);
            Assert.Equal(Reason.ForwardServiceNew, ev.Reason);
            Assert.Equal(new IPEndPoint(PodDatapath.Client, 42001), ev.Source);
            Assert.Equal(new IPEndPoint(PodDatapath.Vip, 80), ev.Destination);
            Assert.Equal(new IPEndPoint(PodDatapath.Client, 42001), ev.TranslatedSource);
            Assert.Equal(new IPEndPoint(Backend, 8080), ev.TranslatedDestination);
            Assert.Equal("default/echo:http", ev.Service);
            Assert.NotEqual(0, revNat);
            Assert.Equal(6, ev.Protocol);
            Assert.Equal(MetricsDirection.Ingress, ev.Direction);
            Assert.InRange(ev.Time, before.AddMilliseconds(-5), after.AddMilliseconds(5));
        }

        // A rate of 2 a second per CPU: of 200 new connections, each is either sent or suppressed.
        using (var observer = new FlowObserver(dp.Options.PinPath, 2, Name, _ => null))
        {
            var suppressedBefore = FlowObserver.Suppressed(dp.Options.PinPath);
            var sw = System.Diagnostics.Stopwatch.StartNew();
            for (ushort port = 43000; port < 43200; port++)
                dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, port, PodDatapath.Vip, 80));
            var seconds = sw.Elapsed.TotalSeconds;
            int sent = observer.Poll(100).Count;
            ulong suppressed = FlowObserver.Suppressed(dp.Options.PinPath) - suppressedBefore;
            output.WriteLine($"rate 2/s per CPU: {sent} sent, {suppressed} suppressed in {seconds:F2} s");
            Assert.Equal(200UL, (ulong)sent + suppressed);
            Assert.InRange(sent, 1, 2 * Environment.ProcessorCount * ((int)Math.Ceiling(seconds) + 1));
        }

        // The observer put the rate back: no more events.
        using (var reader = new FlowObserver(dp.Options.PinPath, 0, Name, _ => null))
        {
            Assert.False(reader.FlowsOn);
            using var config = LibBpf.Net.BpfMap.OpenPinned(Path.Combine(dp.Options.PinPath, LbMaps.FlowConfigMap));
            Assert.True(config.As<uint, FlowConfig>().TryLookup(0, out var held));
            Assert.Equal(0u, held.Rate);
        }
    }

    /// <summary>
    /// What an event costs a new connection in the kernel: from_pod run (BPF_PROG_TEST_RUN, the
    /// kernel's own timing) on 2000 new connections each way, flow events off and on, alternating
    /// in blocks. A figure (docs/benchmarks.md), not a timing assertion.
    /// </summary>
    [PrivilegedFact]
    public void NewConnectionCostWithFlowEventsOffAndOn()
    {
        using var dp = new PodDatapath("10.96.0.0/12", configure: o => o.ConntrackMax = 65536);
        dp.Apply(PodDatapath.EchoService([Backend.ToString()]));
        var off = new List<uint>();
        var on = new List<uint>();
        var buffer = new byte[512];
        ushort port = 10000;
        int events = 0;
        for (int block = 0; block < 10; block++)
        {
            for (int i = 0; i < 200; i++)
                off.Add(dp.Loaded.FromPod.TestRun(PacketBuilder.Tcp(PodDatapath.Client, port++, PodDatapath.Vip, 80), buffer).DurationNs);
            using var observer = new FlowObserver(dp.Options.PinPath, 1_000_000, _ => null, _ => null);
            for (int i = 0; i < 200; i++)
                on.Add(dp.Loaded.FromPod.TestRun(PacketBuilder.Tcp(PodDatapath.Client, port++, PodDatapath.Vip, 80), buffer).DurationNs);
            events += observer.Poll(50).Count;
        }
        Assert.Equal(2000, events);
        static uint Median(List<uint> v) => v.Order().ElementAt(v.Count / 2);
        output.WriteLine($"from_pod, new service connection, kernel time per packet: flow events off median {Median(off)} ns, on {Median(on)} ns " +
            $"(p90 {off.Order().ElementAt(off.Count * 9 / 10)} / {on.Order().ElementAt(on.Count * 9 / 10)} ns; load {File.ReadAllText("/proc/loadavg").Split(' ')[0]})");
    }
}
