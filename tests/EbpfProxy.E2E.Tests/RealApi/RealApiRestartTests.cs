using System.Net;
using EbpfProxy.Testing.RealApi;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests.RealApi;

/// <summary>Daemon restarts (SIGTERM and SIGKILL) under NodePort and ClusterIP traffic with long-lived connections.</summary>
[Collection(RealApiCollection.Name)]
public sealed class RealApiRestartTests(RealApiFixture fixture, ITestOutputHelper output)
{
    private async Task<(Traffic Traffic, RealApiScenario S)> StartAsync()
    {
        var s = await RealApiScenario.CreateAsync(output, fixture, 3);
        var svc = await s.CreateServiceAsync(type: "NodePort");
        foreach (var pod in s.Echo.Keys)
            await s.CreatePodAsync(pod);
        await RealApiTests.WaitForSliceAsync(s, 3);
        await s.StartDaemonAsync();
        await s.WaitForAttachmentsAsync();
        var vip = IPAddress.Parse(svc.Spec.ClusterIP);
        var nodePort = svc.Spec.Ports.First(p => p.Protocol == "TCP").NodePort!.Value;
        await s.WaitForMapBackendsAsync(vip, s.Echo.Keys, TimeSpan.FromSeconds(15));
        var traffic = new Traffic();
        traffic.AddFreshConnections(s.Client.Ns, vip, 80);
        traffic.AddFreshConnections(s.Outside, RealApiScenario.NodeAddress, nodePort);
        await traffic.AddLongLivedAsync(s.Client.Ns, vip, 80, 3);
        await traffic.AddLongLivedAsync(s.Outside, RealApiScenario.NodeAddress, nodePort, 3);
        return (traffic, s);
    }

    /// <summary>
    /// Stops the daemon with <paramref name="signal"/> (15 or 9), starts a new one and waits for its first sync;
    /// returns the gap: from the signal to the new daemon's first sync (the datapath runs on from the pins throughout).
    /// </summary>
    private async Task<TimeSpan> RestartAsync(RealApiScenario s, int signal)
    {
        var gap = System.Diagnostics.Stopwatch.StartNew();
        if (signal == 9)
            s.Daemon.SendSignal(9);
        await s.Daemon.StopAsync(TimeSpan.FromSeconds(10));
        await s.Daemon.DisposeAsync();
        await s.StartDaemonAsync();
        var elapsed = gap.Elapsed;
        await Task.Delay(1000); // traffic through the new daemon's first second
        return elapsed;
    }

    private async Task RunAsync(int terms, int kills)
    {
        var (traffic, s) = await StartAsync();
        await using var _s = s;
        await using var _t = traffic;
        var gaps = new List<(int Signal, TimeSpan Gap)>();
        for (int i = 0; i < terms; i++)
            gaps.Add((15, await RestartAsync(s, 15)));
        for (int i = 0; i < kills; i++)
            gaps.Add((9, await RestartAsync(s, 9)));
        await Task.Delay(1000);
        string Gaps(int signal) => gaps.Count(g => g.Signal == signal) == 0 ? "-"
            : $"{gaps.Where(g => g.Signal == signal).Average(g => g.Gap.TotalSeconds):F1} s mean, {gaps.Where(g => g.Signal == signal).Max(g => g.Gap.TotalSeconds):F1} s max";
        output.WriteLine($"{terms} TERM + {kills} KILL restarts: {traffic}\n{traffic.Errors}");
        output.WriteLine($"restarts: signal to the new daemon's first sync: TERM {Gaps(15)}, KILL {Gaps(9)}");
        Console.WriteLine($"soak: {terms} TERM + {kills} KILL restarts under NodePort+ClusterIP load: {traffic}");
        Console.WriteLine($"restarts: signal to the new daemon's first sync: TERM {Gaps(15)}, KILL {Gaps(9)}");
        Assert.True(traffic.Requests > 50 * (terms + kills), traffic.ToString());
        Assert.Equal(0, traffic.Failures);
        Assert.Equal(0, traffic.Resets);
    }

    /// <summary>Part of `make test` (issue 9): one SIGTERM and one SIGKILL restart under load, long-lived connections unbroken, nothing failed.</summary>
    [RealApiFact]
    public Task OneTermAndOneKillRestartUnderLoadLoseNothing() => RunAsync(terms: 1, kills: 1);

    /// <summary>`make soak-restarts`: not part of `make test` (run-tests.sh leaves Category=Soak out).</summary>
    [RealApiFact]
    [Trait("Category", "Soak")]
    public Task SoakTenTermAndTenKillRestarts() => RunAsync(terms: 10, kills: 10);
}
