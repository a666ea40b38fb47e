using System.Diagnostics;
using System.Net;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Sync;
using EbpfProxy.Testing;
using k8s.Models;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests;

/// <summary>
/// Issue 9 item 2 with the real daemon and real connections: established TCP connections keep their
/// backend when it turns not ready, then terminating, then leaves the slice (kube-proxy clears
/// conntrack for UDP only); new connections go elsewhere; a UDP flow to it moves at once; the backend
/// leaves the maps once its last connection has closed.
/// </summary>
public class DrainTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(3);

    [PrivilegedFact]
    public async Task EstablishedTcpConnectionsOutliveTheirBackendLeavingWhileAUdpFlowMovesAtOnce()
    {
        string[] all = ["echo-1", "echo-2", "echo-3"];
        // Full passes every 2 s: each stage below lives through several conntrack checks.
        await using var s = await ProxyScenario.StartWithApiAsync(output, 3, all, extraArgs: ["--sync-period", "2"]);
        var vip = ProxyScenario.Vip;
        var echo1 = s.Echo["echo-1"].Ip;

        // Three connections that landed on echo-1, and a UDP flow (one source port) that did.
        var held = new List<TcpProbeConnection>();
        for (int i = 0; held.Count < 3 && i < 300; i++)
        {
            var c = await TcpProbe.ConnectAsync(s.Client.Ns, vip, 80, Timeout);
            if ((await c.RequestAsync("hello", Timeout)).StartsWith("echo-1 ", StringComparison.Ordinal))
                held.Add(c);
            else
                c.Dispose();
        }
        Assert.Equal(3, held.Count);
        int udpPort = 0;
        for (int port = 47000; udpPort == 0 && port < 47300; port++)
            if ((await UdpProbe.RequestAsync(s.Client.Ns, vip, 80, "u", Timeout, localPort: port)).Reply.StartsWith("echo-1 ", StringComparison.Ordinal))
                udpPort = port;
        Assert.NotEqual(0, udpPort);

        int round = 0;
        async Task HeldConnectionsStillAnswer(string stage)
        {
            for (int n = 0; n < held.Count; n++)
            {
                var line = $"{stage.Replace(' ', '-')}-{n}-{round++}";
                string reply;
                try
                {
                    reply = await held[n].RequestAsync(line, Timeout);
                }
                catch (ProbeFailedException e)
                {
                    throw new Xunit.Sdk.XunitException($"{stage}: held connection {n} to echo-1 failed ({e.Failure}): {e.Message}\n{s.Daemon.FormatOutput()}");
                }
                Assert.Equal($"echo-1 {line}", reply);
            }
        }

        var stages = new (string Name, V1EndpointConditions? Echo1)[]
        {
            ("not ready", new V1EndpointConditions { Ready = false, Serving = false, Terminating = false }),
            ("terminating", new V1EndpointConditions { Ready = false, Serving = true, Terminating = true }),
            ("deleted", null),
        };
        foreach (var (stage, conditions) in stages)
        {
            var endpoints = all.Where(n => n != "echo-1" || conditions is not null)
                .Select(n => (s.Echo[n].Ip, n == "echo-1" ? conditions! : new V1EndpointConditions { Ready = true }));
            s.Api!.Upsert(ProxyScenario.EchoSliceOf(endpoints));
            await s.WaitForMapBackendsAsync(["echo-2", "echo-3"], TimeSpan.FromSeconds(15));
            await HeldConnectionsStillAnswer(stage);

            // New connections go elsewhere.
            Assert.DoesNotContain("echo-1", await s.TcpRoundAsync(15));

            // The UDP flow moved at once (its conntrack entry was purged with the backend).
            if (stage == "not ready")
            {
                var moved = Stopwatch.StartNew();
                string udpTo;
                while ((udpTo = (await UdpProbe.RequestAsync(s.Client.Ns, vip, 80, "u", Timeout, localPort: udpPort)).Reply.Split(' ')[0]) == "echo-1")
                {
                    Assert.True(moved.Elapsed < TimeSpan.FromSeconds(10), "the UDP flow still reaches echo-1 10 s after it turned not ready");
                    await Task.Delay(100);
                }
                output.WriteLine($"UDP flow moved to {udpTo} {moved.Elapsed.TotalMilliseconds:F0} ms after the maps changed");
            }

            // Through a few full passes (each checks all of conntrack), the connections keep going.
            var passes = CountFullPasses(s);
            await s.Daemon.WaitForLinesAsync(", full, snapshot", passes + 2, TimeSpan.FromSeconds(30));
            await HeldConnectionsStillAnswer(stage + " after full passes");
            Assert.True(DrainingBackend(s, echo1), $"{stage}: echo-1 is not in lb4_backends while its connections live");
        }

        // The connections close: the backend leaves the maps once their entries expire (closing lifetime 10 s) and a full pass runs.
        foreach (var c in held)
            c.Dispose();
        var released = Stopwatch.StartNew();
        while (DrainingBackend(s, echo1))
        {
            Assert.True(released.Elapsed < TimeSpan.FromSeconds(60), "echo-1 is still in lb4_backends 60 s after its last connection closed");
            await Task.Delay(500);
        }
        output.WriteLine($"3 connections held through not ready, terminating and deleted; echo-1 released {released.Elapsed.TotalSeconds:F1} s after they closed");
    }

    private static int CountFullPasses(ProxyScenario s) => s.Daemon.Output.Count(l => l.Contains(", full, snapshot", StringComparison.Ordinal));

    /// <summary>Whether lb4_backends holds a TCP backend at this address.</summary>
    private static bool DrainingBackend(ProxyScenario s, IPAddress address)
    {
        using var maps = LbMaps.OpenPinned(s.PinPath);
        return LbMapIo.Read(maps).Backends.Values.Any(b => b.Address.Address.Equals(address) && b.Address.Protocol == Core.Model.L4Protocol.Tcp);
    }
}
