using System.Text;
using EbpfProxy.Datapath.Loading;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Sync;
using Microsoft.Extensions.Logging.Abstractions;

namespace EbpfProxy.Datapath.Tests;

/// <summary>
/// Issue 14 item 1 against the kernel: tiny pinned service maps filled by the real translation and
/// service stage. A full lb4_services or no free frontend id used to fail the write with E2BIG
/// halfway through a service, and every later pass (deletions included) with it. Now a service is
/// written whole or not at all, what does not fit never blocks what does, and deletions make room
/// in the same pass.
/// </summary>
public sealed class MapCapacityTests
{
    /// <summary>
    /// A ClusterIP Service with <paramref name="ports"/> TCP ports and these backends. It takes
    /// 1 + ports frontends (each with a rev-NAT id: the VIP's own entry, port 0, and one per port)
    /// and 1 + ports x (1 + backends) lb4_services entries.
    /// </summary>
    private static string Service(string name, int octet, int ports, params int[] backends)
    {
        var sb = new StringBuilder();
        sb.Append($"""
            apiVersion: v1
            kind: Service
            metadata: {"{"}name: {name}, namespace: default{"}"}
            spec:
              clusterIP: 10.96.0.{octet}
              ports:

            """);
        for (int p = 0; p < ports; p++)
            sb.Append($"  - {{name: p{p}, port: {80 + p}, protocol: TCP}}\n");
        sb.Append($"""
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: {name}-1
              namespace: default
              labels: {"{"}kubernetes.io/service-name: {name}{"}"}
            addressType: IPv4
            ports:

            """);
        for (int p = 0; p < ports; p++)
            sb.Append($"- {{name: p{p}, port: {8080 + p}, protocol: TCP}}\n");
        sb.Append("endpoints:\n");
        foreach (var b in backends)
            sb.Append($"- {{addresses: [10.244.{octet}.{b}], conditions: {{ready: true}}, nodeName: node-2}}\n");
        return sb.ToString();
    }

    private static string Cluster(params string[] services) => string.Join("\n---\n", services);

    /// <summary>Frontends (slot 0 entries) of a service in the kernel's lb4_services, and its slots.</summary>
    private static (int Frontends, int Slots) Programmed(PodDatapath dp, int octet)
    {
        int frontends = 0, slots = 0;
        foreach (var (k, _) in dp.Maps.Lb4Services.Entries())
        {
            if (LbMapIo.ToFrontendKey(k).Frontend.Address.ToString() != $"10.96.0.{octet}")
                continue;
            if (k.Slot == 0)
                frontends++;
            else
                slots++;
        }
        return (frontends, slots);
    }

    [Fact]
    public void AServiceThatDoesNotFitIsLeftOutWholeAndNeverBlocksTheRest()
    {
        // Room for 16 entries: a (1 + 2 ports x (1 + 3 backends) = 9) fits, b (1 + 3 x 3 = 10) does not.
        using var dp = new PodDatapath(configure: o => o.ServicesMax = 16);
        var a = Service("a", 1, 2, 1, 2, 3);
        var b = Service("b", 2, 3, 1, 2);
        var small = Service("c", 3, 1, 1, 2); // 4 entries: fits after b is left out
        var result = dp.Apply(Cluster(a, b, small), expectErrors: true);
        var error = Assert.Single(result.Errors);
        Assert.Contains("default/b", error.ToString(), StringComparison.Ordinal);
        Assert.Contains("lb4_services", error.ToString(), StringComparison.Ordinal);
        Assert.Equal((3, 6), Programmed(dp, 1));
        Assert.Equal((0, 0), Programmed(dp, 2)); // not a single port of b
        Assert.Equal((2, 2), Programmed(dp, 3));
        Assert.Equal(13, dp.Maps.Lb4Services.Map.CountEntries());

        // The same cluster again: nothing fails, b is still named, nothing changes.
        result = dp.Apply(Cluster(a, b, small), expectErrors: true);
        Assert.Single(result.Errors);
        Assert.Equal(0, result.Writes + result.Deletes);

        // a is deleted and b fits in the room a's deletion makes, in the same pass.
        result = dp.Apply(Cluster(b, small), expectErrors: true);
        Assert.Empty(result.Errors);
        Assert.Equal((0, 0), Programmed(dp, 1));
        Assert.Equal((4, 6), Programmed(dp, 2));
        Assert.Equal((2, 2), Programmed(dp, 3));
    }

    [Fact]
    public void AChangeThatDoesNotFitKeepsTheServiceAtItsPreviousState()
    {
        using var dp = new PodDatapath(configure: o => o.ServicesMax = 16);
        dp.Apply(Cluster(Service("a", 1, 2, 1, 2, 3), Service("c", 3, 1, 1)));
        var before = dp.Maps.Lb4Services.Entries().ToList();

        // a (9 entries, c 3) scales to 8 backends per port: 1 + 2 x 9 = 19 entries, more than the map holds. c's change fits.
        var result = dp.Apply(Cluster(Service("a", 1, 2, 1, 2, 3, 4, 5, 6, 7, 8), Service("c", 3, 1, 1, 2)), expectErrors: true);
        Assert.Contains("default/a", Assert.Single(result.Errors).ToString(), StringComparison.Ordinal);
        Assert.Contains("kept at its previous state", result.Errors[0].ToString(), StringComparison.Ordinal);
        Assert.Equal(before.Where(e => LbMapIo.ToFrontendKey(e.Key).Frontend.Address.ToString() == "10.96.0.1").OrderBy(e => e.Key.PortBe.ToHost()).ThenBy(e => e.Key.Slot),
            dp.Maps.Lb4Services.Entries().Where(e => LbMapIo.ToFrontendKey(e.Key).Frontend.Address.ToString() == "10.96.0.1").OrderBy(e => e.Key.PortBe.ToHost()).ThenBy(e => e.Key.Slot));
        Assert.Equal((2, 2), Programmed(dp, 3));
    }

    [Fact]
    public void FrontendIdsFreedByADeletionAreReusedInTheSamePass()
    {
        // 7 rev-NAT entries hold ids 1..6: three one-port services (two frontends each) fit, the fourth is left out.
        using var dp = new PodDatapath(configure: o => o.RevNatMax = 7);
        Assert.Equal(6, dp.Loaded.DatapathMaps.ServiceLimits!.MaxRevNat);
        var services = Enumerable.Range(1, 4).Select(i => Service($"s{i}", i, 1, 1)).ToArray();
        var result = dp.Apply(Cluster(services), expectErrors: true);
        var error = Assert.Single(result.Errors).ToString();
        Assert.Contains("default/s4", error, StringComparison.Ordinal);
        Assert.Contains("frontend ids", error, StringComparison.Ordinal);
        Assert.Equal(6, dp.Maps.Lb4ReverseNat.Map.CountEntries());

        // s1 goes: its id is free for s4 in this very pass.
        result = dp.Apply(Cluster(services[1..]), expectErrors: true);
        Assert.Empty(result.Errors);
        Assert.Equal((0, 0), Programmed(dp, 1));
        Assert.Equal((2, 1), Programmed(dp, 4));
        Assert.Equal(6, dp.Maps.Lb4ReverseNat.Map.CountEntries());
    }

    [Fact]
    public void BackendsFreedByADeletionMakeRoomInTheSamePass()
    {
        using var dp = new PodDatapath(configure: o => o.BackendsMax = 4);
        dp.Apply(Cluster(Service("a", 1, 1, 1, 2, 3)));
        // b's 3 new backends do not fit beside a's 3; when a goes in the same pass they do.
        var result = dp.Apply(Cluster(Service("a", 1, 1, 1, 2, 3), Service("b", 2, 1, 1, 2, 3)), expectErrors: true);
        Assert.Contains("lb4_backends", Assert.Single(result.Errors).ToString(), StringComparison.Ordinal);
        Assert.Equal(3, dp.Maps.Lb4Backends.Map.CountEntries());
        result = dp.Apply(Cluster(Service("b", 2, 1, 1, 2, 3)), expectErrors: true);
        Assert.Empty(result.Errors);
        Assert.Equal((2, 3), Programmed(dp, 2));
        Assert.Equal(3, dp.Maps.Lb4Backends.Map.CountEntries());
    }

    [Fact]
    public void ARestartWithOtherSizesKeepsEachPinnedMapItsSizeAndContentAndPlansForThatSize()
    {
        using var dp = new PodDatapath(configure: o => o.ServicesMax = 16);
        dp.Apply(Cluster(Service("a", 1, 2, 1, 2, 3)));
        var flow = new Ct4Key { SaddrBe = Be32Address.FromAddress(PodDatapath.Client), DaddrBe = Be32Address.FromAddress(PodDatapath.Vip), SportBe = Be16.FromHost(40000), DportBe = Be16.FromHost(80), Proto = 6 };
        dp.Maps.Ct4.Update(flow, new CtEntry { BackendId = 1, RevNatId = 1 });

        // The next daemon asks for other sizes while the pins exist (a restart with new flags).
        var next = new DatapathOptions
        {
            BpfFsRoot = dp.Options.BpfFsRoot,
            ObjectDirectory = dp.Options.ObjectDirectory,
            ServicesMax = 64,
            ConntrackMax = 8192,
            BackendsMax = dp.Options.BackendsMax,
            RevNatMax = dp.Options.RevNatMax,
        };
        using var second = DatapathLoader.Load(next, NullLogger.Instance);
        Assert.Equal(16u, second.Maps.Lb4Services.Map.MaxEntries);
        Assert.Equal(dp.Options.ConntrackMax, second.Maps.Ct4.Map.MaxEntries);
        Assert.True(second.Maps.Ct4.TryLookup(flow, out var kept));
        Assert.Equal(1u, kept.BackendId);
        Assert.Equal(9, second.Maps.Lb4Services.Map.CountEntries());
        // The planner fits services into the 16 entries the map really has, not the 64 asked for.
        Assert.Equal(16u, second.DatapathMaps.ServiceLimits!.MaxServiceEntries);
    }
}
