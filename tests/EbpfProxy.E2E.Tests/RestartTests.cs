using System.Diagnostics;
using System.Text.RegularExpressions;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Testing;
using k8s.Models;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests;

/// <summary>
/// Restarts of the real daemon over pinned maps (issue 9 item 1): until its first full sync a
/// starting daemon writes nothing that changes a packet's fate, config maps included.
/// </summary>
public class RestartTests(ITestOutputHelper output)
{
    /// <summary>The pinned config maps and the service map's size: what decides a packet's fate besides the entries.</summary>
    private static Pinned ReadPinned(ProxyScenario s)
    {
        using var maps = LbMaps.OpenPinned(s.PinPath);
        maps.Config.TryLookup(0u, out var config);
        maps.NatConfig.TryLookup(0u, out var nat);
        maps.HostConfig.TryLookup(0u, out var host);
        return new Pinned(config, nat, host, maps.Lb4Services.Keys().Count());
    }

    private sealed record Pinned(LbConfig Config, LbNatConfig Nat, LbHostConfig Host, int Services)
    {
        public override string ToString() =>
            $"service CIDR {Config.ServiceCidrBe.ToAddress()}/{Config.ServiceMaskBe.ToAddress()}, masquerade address {Nat.SnatAddrBe.ToAddress()}, " +
            $"cluster CIDR {Nat.ClusterCidrBe.ToAddress()}/{Nat.ClusterMaskBe.ToAddress()}, flags {Nat.Flags}, netns cookie {Host.NetnsCookie}, {Services} lb4_services entries";
    }

    [PrivilegedFact]
    public async Task ARestartWhileTheApiServerIsDownKeepsThePinnedMasqueradeAddressUntilTheFirstSync()
    {
        await using var s = await ProxyScenario.StartWithApiAsync(output, 1, ["echo-1"]);
        // The node's InternalIP becomes the masquerade address (no --masquerade-address). Only a value
        // written to a map: nothing is sent to it.
        s.Api!.Upsert(new V1Node
        {
            Metadata = new V1ObjectMeta { Name = "node" },
            Status = new V1NodeStatus { Addresses = [new V1NodeAddress { Type = "InternalIP", Address = "192.168.50.1" }] },
        });
        await s.Daemon.WaitForOutputAsync(new Regex("Masquerade address: 192.168.50.1"), TimeSpan.FromSeconds(10));
        var before = ReadPinned(s);
        Assert.NotEqual(default, before.Nat.SnatAddrBe);
        Assert.NotEqual(0ul, before.Host.NetnsCookie);
        Assert.True(before.Services > 0);

        // Restart while the API server is down: the daemon loads (re-adopting the pins) and waits.
        await s.Daemon.StopAsync(TimeSpan.FromSeconds(10));
        s.Api.SetDown(true);
        await s.StartDaemonAsync(waitForFirstSync: false);
        await s.Daemon.WaitForOutputAsync(new Regex("Waiting for every source"), TimeSpan.FromSeconds(30));
        var waiting = Stopwatch.StartNew();
        while (waiting.Elapsed < TimeSpan.FromSeconds(4))
        {
            Assert.Equal(before, ReadPinned(s));
            await Task.Delay(200);
        }
        Assert.DoesNotContain(s.Daemon.Output, l => l.Contains("Sync #", StringComparison.Ordinal));

        // The API server comes back: the first sync computes the same node and writes nothing.
        s.Api.SetDown(false);
        var firstSync = await s.Daemon.WaitForOutputAsync(new Regex(@"Sync #1 .*"), TimeSpan.FromSeconds(30));
        Assert.Contains(": 0 writes, 0 deletes", firstSync.Value);
        Assert.Equal(before, ReadPinned(s));
    }
}
