using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using EbpfProxy.Testing;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests.Policy;

/// <summary>
/// NetworkPolicy end to end on the upstream 9-pod model (see <see cref="PolicyModel"/>): each test
/// writes policies (and labels) into the manifest folder the real daemon follows, then compares
/// the probe matrix cell by cell with what networking.k8s.io/v1 says.
/// </summary>
public sealed class NetworkPolicyTests(ITestOutputHelper output)
{
    private static bool All(ModelPod from, ModelPod to) => true;

    private static string Policy(string ns, string name, string spec) => $"""
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {"{"}name: {name}, namespace: {ns}{"}"}
        spec:
        {string.Join("\n", spec.Split('\n').Select(l => "  " + l))}
        """;

    [PrivilegedFact]
    public async Task WithoutPoliciesEveryPodReachesEveryPodByAddressAndService()
    {
        await using var m = await PolicyModel.StartAsync(output);
        foreach (var probe in new[] { Probe.Tcp80, Probe.Udp81 })
        {
            await m.ExpectAsync(All, probe);
            await m.ExpectAsync(All, probe, viaService: true);
        }
    }

    [PrivilegedFact]
    public async Task DefaultDenyIngressIsolatesOneNamespaceAndDeletingItRestoresEverything()
    {
        await using var m = await PolicyModel.StartAsync(output);
        m.WritePolicies(Policy("x", "deny-ingress", """
            podSelector: {}
            policyTypes: [Ingress]
            """));
        var took = await m.ExpectAsync((f, t) => t.Namespace != "x", Probe.Tcp80);
        output.WriteLine($"default deny took effect within {took.TotalMilliseconds:F0} ms");
        await m.ExpectAsync((f, t) => t.Namespace != "x", Probe.Udp80);
        await m.ExpectAsync((f, t) => t.Namespace != "x", Probe.Tcp81, viaService: true);
        // An isolated pod reaching itself through its Service: masqueraded to the node (admitted),
        // and the reply, restored before it reaches the pod, is recognised as the pod's own.
        Assert.True(await PolicyModel.ProbeAsync(m["x/a"], m["x/a"], Probe.Tcp80, viaService: true), "hairpin of an ingress-isolated pod");
        Assert.True(await PolicyModel.ProbeAsync(m["x/b"], m["x/b"], Probe.Udp81, viaService: true), "hairpin of an ingress-isolated pod (UDP)");

        // `ebpf-proxy observe` shows the drop as it happens, with the peer and the reason.
        var observe = Cmd.TryRunAsync(Binaries.EbpfProxy, ["observe", "--bpffs", m.BpfFsPath, "--duration", "4", "-o", "json"], TimeSpan.FromSeconds(20));
        await Task.Delay(1500); // the reader is attached
        var probeStart = DateTimeOffset.UtcNow;
        Assert.False(await PolicyModel.ProbeAsync(m["y/c"], m["x/c"], Probe.Udp80, viaService: false));
        var probeEnd = DateTimeOffset.UtcNow;
        var seen = await observe;
        Assert.Equal(0, seen.ExitCode);
        var mine = seen.Stdout.Split('\n').Where(l => l.Contains($"\"source\":\"{m["y/c"].Ip}:", StringComparison.Ordinal)
            && l.Contains($"\"destination\":\"{m["x/c"].Ip}:80\"", StringComparison.Ordinal) && l.Contains("\"protocol\":17", StringComparison.Ordinal)).ToList();
        output.WriteLine($"observe: {string.Join(" | ", mine)}");
        // The time is the kernel's, when the packet was dropped: the ring buffer also still holds
        // the drops of the matrix probes above, from before observe started, and they show their
        // own earlier time, not the time observe read them.
        static DateTimeOffset At(string line) => System.Text.Json.JsonDocument.Parse(line).RootElement.GetProperty("time").GetDateTimeOffset();
        var duringProbe = mine.Where(l => At(l) >= probeStart.AddMilliseconds(-5) && At(l) <= probeEnd.AddMilliseconds(5)).ToList();
        Assert.NotEmpty(duringProbe);
        Assert.Contains("\"reason\":\"policy_ingress_denied\"", duringProbe[0], StringComparison.Ordinal);
        Assert.All(mine.Except(duringProbe), l => Assert.True(At(l) < probeStart, $"a drop stamped after the probe: {l}"));

        m.WritePolicies();
        await m.ExpectAsync(All, Probe.Tcp80);
        await m.ExpectAsync(All, Probe.Udp80);
    }

    [PrivilegedFact]
    public async Task APodInterfaceCreatedWhileTheDaemonRunsIsJudgedFromItsFirstPacket()
    {
        // Issue 10 item 5: interfaces were found by a scan every second, so a new pod's first
        // packets passed unjudged. The daemon now attaches on the kernel's RTM_NEWLINK, before
        // the CNI has addressed the veth or brought it up.
        await using var m = await PolicyModel.StartAsync(output);
        var ip = IPAddress.Parse("10.244.0.50");
        m.WritePolicies(Policy("x", "deny-ingress", """
            podSelector: {}
            policyTypes: [Ingress]
            """));
        m.DeclarePendingPod("x", "d", ip);
        await m.Daemon.WaitForOutputAsync(new Regex(@"Policy sync: .* 4 isolated local pods"), TimeSpan.FromSeconds(30));

        var pod = m.CreatePodInterface("xd", ip, "x/d");
        // The first datagram from a peer the policy does not admit, sent as soon as the pod is up.
        await Assert.ThrowsAsync<ProbeFailedException>(() => UdpProbe.RequestAsync(m["y/c"].Ns, ip, 80, "first", TimeSpan.FromSeconds(1)));

        // It was the policy that dropped it (not a veth still coming up): the kernel reported the drop.
        var seen = await Cmd.TryRunAsync(Binaries.EbpfProxy, ["observe", "--bpffs", m.BpfFsPath, "--duration", "1", "-o", "json"], TimeSpan.FromSeconds(20));
        var drops = seen.Stdout.Split('\n').Where(l => l.Contains($"\"destination\":\"{ip}:80\"", StringComparison.Ordinal)).ToList();
        output.WriteLine($"observe: {string.Join(" | ", drops)}");
        Assert.Contains(drops, l => l.Contains($"\"source\":\"{m["y/c"].Ip}:", StringComparison.Ordinal) && l.Contains("\"reason\":\"policy_ingress_denied\"", StringComparison.Ordinal));
        Assert.Contains($"Attached the pod programs to {pod.HostInterface}", m.Daemon.FormatOutput(), StringComparison.Ordinal);

        // Without the policy the same peer reaches the pod: the path itself works.
        m.WritePolicies();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (true)
        {
            try
            {
                Assert.Equal("x/d again", (await UdpProbe.RequestAsync(m["y/c"].Ns, ip, 80, "again", TimeSpan.FromSeconds(1))).Reply);
                break;
            }
            catch (ProbeFailedException) when (DateTime.UtcNow < deadline)
            {
            }
        }
    }

    [PrivilegedFact]
    public async Task FragmentsToAnIsolatedPodFromAPeerItDoesNotAdmitAreDroppedAndCounted()
    {
        // Issue 10 item 1: a 4 KB UDP datagram leaves y/c in three fragments (1500-byte MTU); the
        // later fragments carry no ports and used to reach an isolated pod unjudged.
        await using var m = await PolicyModel.StartAsync(output);
        var payload = new string('f', 4000);
        var (reply, _) = await UdpProbe.RequestAsync(m["y/c"].Ns, m["x/c"].Ip, 80, payload, TimeSpan.FromSeconds(3));
        Assert.Equal($"x/c {payload}", reply); // not isolated: the fragments are reassembled and answered

        m.WritePolicies(Policy("x", "deny-ingress", """
            podSelector: {}
            policyTypes: [Ingress]
            """));
        await m.ExpectAsync((f, t) => t.Namespace != "x", Probe.Udp80);
        long before = Dropped(m);
        await Assert.ThrowsAsync<ProbeFailedException>(() => UdpProbe.RequestAsync(m["y/c"].Ns, m["x/c"].Ip, 80, payload, TimeSpan.FromSeconds(1)));
        long dropped = Dropped(m) - before;
        output.WriteLine($"policy drops counted for one fragmented datagram: {dropped}");
        Assert.True(dropped >= 3, $"only {dropped} of the datagram's 3 fragments were dropped by policy");
    }

    /// <summary>Packets the policy dropped at a pod's ingress, fragments included, from the kernel's counters.</summary>
    private static long Dropped(PolicyModel m)
    {
        var json = Cmd.Run(Binaries.EbpfProxy, "metrics", "--bpffs", m.BpfFsPath, "-o", "json", "--all").Stdout;
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.EnumerateArray()
            .Where(r => r.GetProperty("reason").GetString() is "policy_ingress_denied" or "fragment_without_first")
            .Sum(r => r.GetProperty("packets").GetInt64());
    }

    [PrivilegedFact]
    public async Task DefaultDenyEgressBlocksClientsButTheyStillAnswerInbound()
    {
        await using var m = await PolicyModel.StartAsync(output);
        m.WritePolicies(Policy("x", "deny-egress", """
            podSelector: {}
            policyTypes: [Egress]
            """));
        // x's pods cannot open connections, but still answer others (replies pass through conntrack).
        await m.ExpectAsync((f, t) => f.Namespace != "x", Probe.Tcp80);
        await m.ExpectAsync((f, t) => f.Namespace != "x", Probe.Udp81);
        await m.ExpectAsync((f, t) => f.Namespace != "x", Probe.Tcp80, viaService: true);
    }

    [PrivilegedFact]
    public async Task AllowFromANamespaceBySelector()
    {
        await using var m = await PolicyModel.StartAsync(output);
        m.WritePolicies(Policy("x", "allow-from-y", """
            podSelector: {matchLabels: {pod: a}}
            ingress:
            - from: [{namespaceSelector: {matchLabels: {ns: y}}}]
            """));
        await m.ExpectAsync((f, t) => t.Key != "x/a" || f.Namespace == "y", Probe.Tcp80);
        await m.ExpectAsync((f, t) => t.Key != "x/a" || f.Namespace == "y", Probe.Udp81, viaService: true);
    }

    [PrivilegedFact]
    public async Task PodAndNamespaceSelectorsInOnePeerAndVersusSeparatePeersOr()
    {
        await using var m = await PolicyModel.StartAsync(output);
        // One peer: pods b in namespace y only.
        m.WritePolicies(Policy("x", "and", """
            podSelector: {matchLabels: {pod: a}}
            ingress:
            - from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]
            """));
        await m.ExpectAsync((f, t) => t.Key != "x/a" || f.Key == "y/b", Probe.Tcp80);

        // Two peers: any pod of y, or pods b of x (the policy's namespace).
        m.WritePolicies(Policy("x", "or", """
            podSelector: {matchLabels: {pod: a}}
            ingress:
            - from: [{namespaceSelector: {matchLabels: {ns: y}}}, {podSelector: {matchLabels: {pod: b}}}]
            """));
        await m.ExpectAsync((f, t) => t.Key != "x/a" || f.Namespace == "y" || f.Key == "x/b", Probe.Tcp80);
    }

    [PrivilegedFact]
    public async Task MatchExpressionsSelectPeers()
    {
        await using var m = await PolicyModel.StartAsync(output);
        m.WritePolicies(Policy("x", "expr", """
            podSelector: {matchLabels: {pod: a}}
            ingress:
            - from:
              - namespaceSelector: {matchExpressions: [{key: ns, operator: NotIn, values: [y]}]}
                podSelector: {matchExpressions: [{key: pod, operator: In, values: [b, c]}]}
            """));
        await m.ExpectAsync((f, t) => t.Key != "x/a" || (f.Namespace != "y" && f.Name is "b" or "c"), Probe.Tcp80);
    }

    [PrivilegedFact]
    public async Task IpBlockWithExceptMatchesPodAddresses()
    {
        await using var m = await PolicyModel.StartAsync(output);
        // 10.244.0.20/30 holds y's pods (.21-.23), without y/b (.22).
        m.WritePolicies(Policy("x", "ipblock", """
            podSelector: {matchLabels: {pod: a}}
            ingress:
            - from: [{ipBlock: {cidr: 10.244.0.20/30, except: [10.244.0.22/32]}}]
            """));
        await m.ExpectAsync((f, t) => t.Key != "x/a" || (f.Namespace == "y" && f.Name != "b"), Probe.Tcp80);
        await m.ExpectAsync((f, t) => t.Key != "x/a" || (f.Namespace == "y" && f.Name != "b"), Probe.Udp80);
    }

    [PrivilegedFact]
    public async Task NamedPortsResolveOnTheDestinationPodAndEndPortRangesAreInclusive()
    {
        await using var m = await PolicyModel.StartAsync(output);
        m.WritePolicies(Policy("x", "named", """
            podSelector: {matchLabels: {pod: a}}
            ingress:
            - ports: [{port: serve-81-tcp, protocol: TCP}]
            """));
        await m.ExpectAsync((f, t) => t.Key != "x/a", Probe.Tcp80);
        await m.ExpectAsync(All, Probe.Tcp81);
        await m.ExpectAsync((f, t) => t.Key != "x/a", Probe.Udp81); // the name is TCP's

        // Egress by named port: x/b may reach serve-80-udp (port 80 UDP) of every pod, nothing else.
        m.WritePolicies(Policy("x", "egress-named", """
            podSelector: {matchLabels: {pod: b}}
            policyTypes: [Egress]
            egress:
            - ports: [{port: serve-80-udp, protocol: UDP}]
            """));
        await m.ExpectAsync((f, t) => f.Key != "x/b", Probe.Tcp80);
        await m.ExpectAsync(All, Probe.Udp80);

        m.WritePolicies(Policy("x", "range", """
            podSelector: {matchLabels: {pod: a}}
            ingress:
            - ports: [{port: 79, endPort: 80, protocol: TCP}]
            """));
        await m.ExpectAsync(All, Probe.Tcp80);
        await m.ExpectAsync((f, t) => t.Key != "x/a", Probe.Tcp81);
    }

    [PrivilegedFact]
    public async Task AProtocolOnlyRuleIsolatesAndNeverAdmitsAnotherProtocol()
    {
        await using var m = await PolicyModel.StartAsync(output);
        m.WritePolicies(Policy("x", "udp-only", """
            podSelector: {matchLabels: {pod: a}}
            ingress:
            - ports: [{protocol: UDP}]
            """));
        await m.ExpectAsync(All, Probe.Udp80);
        await m.ExpectAsync(All, Probe.Udp81);
        await m.ExpectAsync((f, t) => t.Key != "x/a", Probe.Tcp80);
        await m.ExpectAsync((f, t) => t.Key != "x/a", Probe.Tcp81, viaService: true);
    }

    [PrivilegedFact]
    public async Task PolicyUpdatesAndRelabellingTakeEffectLive()
    {
        await using var m = await PolicyModel.StartAsync(output);
        m.WritePolicies(Policy("x", "allow-team", """
            podSelector: {matchLabels: {pod: a}}
            ingress:
            - from: [{namespaceSelector: {matchLabels: {team: blue}}}]
            """));
        await m.ExpectAsync((f, t) => t.Key != "x/a", Probe.Tcp80);

        // Namespace relabel: z joins team blue.
        m.SetNamespaceLabels("z", new Dictionary<string, string> { ["ns"] = "z", ["team"] = "blue" });
        await m.ExpectAsync((f, t) => t.Key != "x/a" || f.Namespace == "z", Probe.Tcp80);

        // Policy update (same name): pods labelled role=client in any namespace instead.
        m.WritePolicies(Policy("x", "allow-team", """
            podSelector: {matchLabels: {pod: a}}
            ingress:
            - from: [{namespaceSelector: {}, podSelector: {matchLabels: {role: client}}}]
            """));
        await m.ExpectAsync((f, t) => t.Key != "x/a", Probe.Tcp80);

        // Pod relabel: y/c becomes a client.
        m.SetPodLabels("y/c", new Dictionary<string, string> { ["pod"] = "c", ["role"] = "client" });
        var took = await m.ExpectAsync((f, t) => t.Key != "x/a" || f.Key == "y/c", Probe.Tcp80);
        output.WriteLine($"pod relabel took effect within {took.TotalMilliseconds:F0} ms");

        // Selected pod relabel: x/a leaves the policy's podSelector and is open again.
        m.SetPodLabels("x/a", new Dictionary<string, string> { ["pod"] = "a-renamed" });
        await m.ExpectAsync(All, Probe.Tcp80);
    }

    [PrivilegedFact]
    public async Task AnEstablishedAllowedConnectionSurvivesAPolicyReplacementThatStillAllowsIt()
    {
        await using var m = await PolicyModel.StartAsync(output);
        var allowY = Policy("x", "p1", """
            podSelector: {matchLabels: {pod: a}}
            ingress:
            - from: [{namespaceSelector: {matchLabels: {ns: y}}}]
            """);
        m.WritePolicies(allowY);
        await m.ExpectAsync((f, t) => t.Key != "x/a" || f.Namespace == "y", Probe.Tcp80);
        using var held = await TcpProbe.ConnectAsync(m["y/b"].Ns, m["x/a"].Ip, 80, TimeSpan.FromSeconds(2));
        Assert.Equal("x/a one", await held.RequestAsync("one", TimeSpan.FromSeconds(2)));

        // Replace p1 by p2 allowing y and z: the held connection never stops working.
        m.WritePolicies(Policy("x", "p2", """
            podSelector: {matchLabels: {pod: a}}
            ingress:
            - from: [{namespaceSelector: {matchExpressions: [{key: ns, operator: In, values: [y, z]}]}}]
            """));
        for (int i = 0; i < 15; i++)
        {
            Assert.Equal($"x/a r{i}", await held.RequestAsync($"r{i}", TimeSpan.FromSeconds(2)));
            await Task.Delay(100);
        }
        await m.ExpectAsync((f, t) => t.Key != "x/a" || f.Namespace is "y" or "z", Probe.Tcp80);
    }

    [PrivilegedFact]
    public async Task PolicyGetAndIpcacheListNameIdentitiesAndAllowEntriesAlsoWithTheDaemonStopped()
    {
        await using var m = await PolicyModel.StartAsync(output);
        m.WritePolicies(Policy("x", "web", """
            podSelector: {matchLabels: {pod: a}}
            policyTypes: [Ingress, Egress]
            ingress:
            - from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]
              ports: [{protocol: TCP, port: 80}]
            - from: [{ipBlock: {cidr: 192.0.2.0/24, except: [192.0.2.128/25]}}]
              ports: [{protocol: TCP, port: 8000, endPort: 8010}]
            egress:
            - ports: [{protocol: UDP, port: 53}]
            """));
        // Enforced (so written): only y/b opens TCP 80 to x/a, and x/a opens nothing on TCP 80.
        await m.ExpectAsync((f, t) => (t.Key != "x/a" || f.Key == "y/b") && f.Key != "x/a", Probe.Tcp80);

        async Task<CommandResult> Cli(params string[] args) =>
            await Cmd.TryRunAsync(Binaries.EbpfProxy, [.. args, "--bpffs", m.BpfFsPath]);

        var get = (await Cli("policy", "get", "x/a")).EnsureSuccess().Stdout;
        output.WriteLine(get);
        Assert.Contains("pod        x/a\n", get);
        Assert.Contains("addresses  10.244.0.11\n", get);
        var identity = Regex.Match(get, @"\nidentity   (\d+)  pod ns=x labels=\[pod=a\] ns-labels=\[kubernetes\.io/metadata\.name=x,ns=x\]\n");
        Assert.True(identity.Success, "the identity line names x/a's namespace, labels and namespace labels");
        Assert.Contains("ingress    isolated: admits\n", get);
        Assert.Matches(@"\n  1 +any +any +this node\n", get);
        Assert.Matches(@"\n  \d+ +TCP +80 +pod ns=y labels=\[pod=b\] ns-labels=\[kubernetes\.io/metadata\.name=y,ns=y\]\n", get);
        Assert.Matches(@"\n  \d+ +TCP +8000-8010 +cidr \[192\.0\.2\.0/24\]\n", get);
        Assert.Contains("egress     isolated: admits\n", get);
        Assert.Matches(@"\n  0 +UDP +53 +any peer\n", get);
        Assert.Equal(get, (await Cli("policy", "get", "10.244.0.11")).EnsureSuccess().Stdout);

        using (var json = JsonDocument.Parse((await Cli("policy", "get", "x/a", "-o", "json")).EnsureSuccess().Stdout))
        {
            var root = json.RootElement;
            Assert.Equal(uint.Parse(identity.Groups[1].Value), root.GetProperty("identity").GetProperty("id").GetUInt32());
            Assert.True(root.GetProperty("ingress").GetProperty("isolated").GetBoolean());
            Assert.Equal(3, root.GetProperty("ingress").GetProperty("allow").GetArrayLength());
            var egress = Assert.Single(root.GetProperty("egress").GetProperty("allow").EnumerateArray());
            Assert.Equal(("UDP", 53, 53, "any peer"), (egress.GetProperty("protocol").GetString(), egress.GetProperty("firstPort").GetInt32(),
                egress.GetProperty("lastPort").GetInt32(), egress.GetProperty("peer").GetString()));
        }

        Assert.Contains("policy     no policy selects it: all traffic admitted\n", (await Cli("policy", "get", "x/b")).EnsureSuccess().Stdout);
        var unknown = await Cli("policy", "get", "x/nope");
        Assert.NotEqual(0, unknown.ExitCode);
        Assert.Contains("no pod x/nope on this node", unknown.Stderr);

        var ipcache = (await Cli("ipcache", "list")).EnsureSuccess().Stdout;
        output.WriteLine(ipcache);
        Assert.Matches($@"\n10\.244\.0\.11/32 +{identity.Groups[1].Value} +pod ns=x labels=\[pod=a\] ", ipcache);
        Assert.Matches(@"\n192\.0\.2\.128/25 +\d+ +cidr \[192\.0\.2\.0/24,192\.0\.2\.128/25\]\n", ipcache);
        var order = new[] { "10.244.0.11/32", "10.244.0.21/32", "10.244.0.33/32", "192.0.2.0/24", "192.0.2.128/25" }.Select(p => ipcache.IndexOf("\n" + p + " ", StringComparison.Ordinal)).ToList();
        Assert.True(order.All(i => i > 0) && order.SequenceEqual(order.Order()), $"ipcache list sorted by address: {string.Join(", ", order)}");

        // The maps stay pinned when the daemon stops: the commands read them all the same.
        await m.Daemon.StopAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(get, (await Cli("policy", "get", "x/a")).EnsureSuccess().Stdout);
        Assert.Equal(ipcache, (await Cli("ipcache", "list")).EnsureSuccess().Stdout);
    }

    [PrivilegedFact]
    public async Task AnInvalidPolicyFailsClosedAndStatusNamesIt()
    {
        await using var m = await PolicyModel.StartAsync(output);
        var healthy = m.NodeNs.TryExec(Binaries.EbpfProxy, "status");
        Assert.Equal(0, healthy.ExitCode);
        Assert.Contains("0 errors", healthy.Stdout, StringComparison.Ordinal);

        // An unknown operator: the policy cannot be translated. The pod it selects is isolated
        // (fails closed) rather than left open, and the other pods are untouched.
        m.WritePolicies(Policy("x", "broken", """
            podSelector: {matchLabels: {pod: a}}
            ingress:
            - from: [{podSelector: {matchExpressions: [{key: pod, operator: Sometimes, values: [b]}]}}]
            """));
        await m.ExpectAsync((f, t) => t.Key != "x/a", Probe.Tcp80);

        var status = m.NodeNs.TryExec(Binaries.EbpfProxy, "status");
        output.WriteLine(status.Stdout);
        Assert.Equal(1, status.ExitCode);
        Assert.Contains("FAILS CLOSED  NetworkPolicy x/broken", status.Stdout, StringComparison.Ordinal);
        Assert.Contains("1 isolated local pods", status.Stdout, StringComparison.Ordinal);
        Assert.Contains(m.Daemon.Output, l => l.Contains("NetworkPolicy x/broken", StringComparison.Ordinal));
    }

    [PrivilegedFact]
    public async Task PoliciesHoldWhileTheDaemonIsDownAndARestartRewritesNothing()
    {
        await using var m = await PolicyModel.StartAsync(output);
        m.WritePolicies(Policy("x", "allow-y", """
            podSelector: {}
            ingress:
            - from: [{namespaceSelector: {matchLabels: {ns: y}}}]
            """));
        bool Expected(ModelPod f, ModelPod t) => t.Namespace != "x" || f.Namespace == "y";
        await m.ExpectAsync(Expected, Probe.Tcp80);
        using var held = await TcpProbe.ConnectAsync(m["y/a"].Ns, m["x/b"].Ip, 80, TimeSpan.FromSeconds(2));
        Assert.Equal("x/b one", await held.RequestAsync("one", TimeSpan.FromSeconds(2)));

        // Stopped: programs and maps stay, so the policy is still enforced and the connection lives.
        await m.StopDaemonAsync();
        await m.ExpectAsync(Expected, Probe.Tcp80, within: TimeSpan.FromSeconds(2));
        Assert.Equal("x/b two", await held.RequestAsync("two", TimeSpan.FromSeconds(2)));

        // Restarted against the same cluster: it re-adopts identities and ids and writes nothing.
        await m.StartDaemonAsync();
        var policySync = m.Daemon.Output.First(l => l.Contains("Policy sync:", StringComparison.Ordinal));
        output.WriteLine(policySync);
        Assert.Contains("Policy sync: 0 writes, 0 deletes", policySync, StringComparison.Ordinal);
        Assert.Contains(m.Daemon.Output, l => l.Contains("Sync #1 ", StringComparison.Ordinal) && l.Contains(": 0 writes, 0 deletes", StringComparison.Ordinal));
        await m.ExpectAsync(Expected, Probe.Udp81, within: TimeSpan.FromSeconds(2));
        Assert.Equal("x/b three", await held.RequestAsync("three", TimeSpan.FromSeconds(2)));
    }
}
