using EbpfProxy.Datapath.Sync;
using EbpfProxy.Core.Policy;
using System.Net;
using EbpfProxy.Core.Model;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Policy;
using EbpfProxy.Datapath.Tracing;
using EbpfProxy.Testing;

namespace EbpfProxy.Datapath.Tests;

/// <summary><see cref="PolicyStage"/> on the real maps: read back, idempotence, and its write order as the program sees it.</summary>
public class PolicyWriterKernelTests
{
    private const PolicyDirection In = PolicyDirection.Ingress, Out = PolicyDirection.Egress;

    private static PolicyState Rich() => PolicyScenarios.State(
        new(PolicyScenarios.Cluster) { ["10.244.0.0/16"] = 320, ["0.0.0.0/0"] = 321, ["10.244.1.0/24"] = 322 },
        new() { [PolicyScenarios.PodA] = new(1, 299, PolicyIsolation.Ingress | PolicyIsolation.Egress), [PolicyScenarios.PodB] = new(2, 302, PolicyIsolation.None) },
        [
            PolicyRule.AllTraffic(1, 300, In), PolicyRule.AllPorts(1, PolicyIdentity.Any, Out, L4Protocol.Udp), PolicyRule.SinglePort(1, 301, Out, L4Protocol.Sctp, 3868),
            .. PolicyRule.PortRange(1, 321, Out, L4Protocol.Tcp, 1, 65535), .. PolicyRule.PortRange(2, 300, In, L4Protocol.Tcp, 8000, 8100),
        ]);

    [PrivilegedFact]
    public void WhatIsWrittenReadsBackAndASecondApplyOrARestartWritesNothing()
    {
        using var dp = new PodDatapath();
        var desired = Rich();
        var writer = new PolicyStage(dp.Loaded.DatapathMaps);

        var first = writer.Apply(desired);
        Assert.Equal(desired.Ipcache.Count + desired.Endpoints.Count + desired.Rules.Count, first.Writes);
        Assert.Equal(0, first.Deletes);
        Assert.Equal(desired, PinnedDatapathMaps.ReadPolicy(dp.Loaded.Policy));

        Assert.Equal((0, 0), (writer.Apply(desired).Writes, writer.Apply(desired).Deletes));
        // A restarted daemon: a new writer over the pinned maps reads them back first.
        using var pinned = PolicyMaps.OpenPinned(dp.Options.PinPath);
        var restarted = new PolicyStage(new PinnedDatapathMaps(dp.Maps, pinned));
        var again = restarted.Apply(Rich());
        Assert.Equal((0, 0), (again.Writes, again.Deletes));

        // A change writes only the difference; reread heals what someone else changed.
        var changed = desired with { Rules = desired.Rules.Where(r => r.EndpointId != 2).ToHashSet() };
        var diff = restarted.Apply(changed);
        Assert.Equal((0, desired.Rules.Count(r => r.EndpointId == 2)), (diff.Writes, diff.Deletes));
        dp.Loaded.Policy.Ipcache.Delete(PinnedDatapathMaps.ToKey(IPNetwork.Parse("0.0.0.0/0")));
        Assert.Equal(0, restarted.Apply(changed).Writes);
        Assert.Equal(1, restarted.Apply(changed, reread: true).Writes);
        Assert.Equal(changed, PinnedDatapathMaps.ReadPolicy(dp.Loaded.Policy));
    }

    [PrivilegedFact]
    public void AnInvalidStateWritesNothing()
    {
        using var dp = new PodDatapath();
        var writer = new PolicyStage(dp.Loaded.DatapathMaps);
        var bad = Rich() with { Rules = Rich().Rules.Append(new PolicyRule(1, 300, In, L4Protocol.Tcp, 81, 8)).ToHashSet() };
        var ex = Assert.Throws<ArgumentException>(() => writer.Apply(bad));
        Assert.Contains("bits beyond", ex.Message, StringComparison.Ordinal);
        Assert.Equal(PolicyState.Empty, PinnedDatapathMaps.ReadPolicy(dp.Loaded.Policy));
    }

    /// <summary>Whether the program (traced: no state is created) admits a new flow.</summary>
    private static bool Admits(PodDatapath dp, Probe p)
    {
        var request = p.Direction == In
            ? new TraceRequest(p.Peer, 40000, p.Local, p.Port, p.Protocol, TraceHook.ToPod)
            : new TraceRequest(p.Local, 40000, p.Peer, p.Port, p.Protocol, TraceHook.FromPod);
        var r = PacketTracer.Run(dp.Options.PinPath, request);
        Assert.True(r.Verdict is "forward" or "DROP", $"{p}: {r.Verdict} ({r.Reason})");
        Assert.True(r.Verdict == "forward" || r.Reason is "policy_ingress_denied" or "policy_egress_denied", $"{p}: dropped for {r.Reason}");
        return r.Verdict == "forward";
    }

    [PrivilegedTheory]
    [MemberData(nameof(PolicyScenarios.Names), MemberType = typeof(PolicyScenarios))]
    public void BetweenAnyTwoWritesTheProgramAdmitsOnlyWhatTheOldOrTheNewStateAdmits(string name)
    {
        var s = PolicyScenarios.Named(name);
        using var dp = new PodDatapath();
        var failures = new List<string>();
        var writer = new PolicyStage(dp.Loaded.DatapathMaps)
        {
            Written = op => failures.AddRange(PolicyScenarios.Violations(s, p => Admits(dp, p), $"after {op}")),
        };
        writer.Apply(s.Old);
        // The model the check compares with agrees with the program at both ends.
        Assert.All(PolicyScenarios.Probes(), p => Assert.True(PolicyModel.Admits(s.Old, p) == Admits(dp, p), $"old state, {p}"));
        failures.Clear();

        var result = writer.Apply(s.New);

        Assert.True(result.Writes + result.Deletes > 0);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.All(PolicyScenarios.Probes(), p => Assert.True(PolicyModel.Admits(s.New, p) == Admits(dp, p), $"new state, {p}"));
    }
}
