using System.Diagnostics;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Policy;
using k8s.Models;

namespace EbpfProxy.Bench;

/// <summary>
/// NetworkPolicy computation at scale, in process (no kernel): issue 5's target of 1,000
/// policies over 10,000 pods. Reports the first computation (cold, a fresh translator: a daemon
/// start), a recomputation with nothing changed, one pod relabel, one policy change, and the map
/// entries this node gets. Medians over the runs; the machine is shared, so read ratios.
/// </summary>
public static class PolicyScaleProbe
{
    public static int Run(int pods, int policies, int nodes, int runs, bool broad, string? bpfDir = null)
    {
        var sw = Stopwatch.StartNew();
        var store = PolicyScaleModel.Populate(pods, policies, nodes, broad);
        var snapshot = store.Snapshot();
        Console.WriteLine($"populate {pods} pods in {PolicyScaleModel.Namespaces(pods)} namespaces on {nodes} nodes, {policies} policies{(broad ? " (broad metrics ingress)" : "")}: {sw.ElapsedMilliseconds} ms");

        var cold = new List<double>();
        DesiredPolicyState state = DesiredPolicyState.Empty;
        for (int i = 0; i < runs; i++)
        {
            sw.Restart();
            state = new PolicyTranslator("node-0").Compute(snapshot);
            cold.Add(sw.Elapsed.TotalMilliseconds);
        }
        int local = state.Endpoints.Count;
        Console.WriteLine($"first computation (fresh translator): median {Median(cold):F0} ms, min {cold.Min():F0} ms over {runs} runs");
        Console.WriteLine($"  identities {state.Identities.Count}, ipcache {state.IpCache.Count}, local endpoints {local}, rules {state.RuleCount} ({(double)state.RuleCount / Math.Max(1, local):F1} per local pod, max {MaxRulesPerEndpoint(state)}), errors {state.Errors.Length}");
        Console.WriteLine($"  map entries per local pod (rules + its endpoint entry): {(double)(state.RuleCount + local) / Math.Max(1, local):F1}; ipcache entries per pod in the cluster: {(double)state.IpCache.Count / pods:F2}");

        // A daemon computes again and again: measure steady state, after the JIT has tiered up.
        var translator = new PolicyTranslator("node-0");
        for (int i = 0; i < 20; i++)
            translator.Compute(store.Snapshot());
        var unchanged = Time(runs * 4, _ => translator.Compute(store.Snapshot()));
        Console.WriteLine($"recompute, nothing changed: median {Median(unchanged):F1} ms");

        var relabel = Time(runs * 4, round =>
        {
            store.Upsert(PolicyScaleModel.Pod(round * 37 % pods, nodes, canary: round % 2 == 0));
            return translator.Compute(store.Snapshot());
        });
        Console.WriteLine($"one pod relabel: median {Median(relabel):F1} ms, p90 {Percentile(relabel, 0.9):F1} ms");

        var policyChange = Time(runs * 4, round =>
        {
            store.Upsert(PolicyScaleModel.Policy(round * 13 % policies, pods, broad, generation: round + 1));
            return translator.Compute(store.Snapshot());
        });
        Console.WriteLine($"one policy change: median {Median(policyChange):F1} ms, p90 {Percentile(policyChange, 0.9):F1} ms");
        Console.WriteLine($"retained heap with store + translator: {GC.GetTotalMemory(true) / 1048576} MiB");
        if (Environment.UserName == "root" && bpfDir is not null)
            MeasureWithMaps(store, pods, nodes, runs, bpfDir);
        GC.KeepAlive(translator);
        return 0;
    }

    /// <summary>
    /// The same cluster written into a real loaded datapath (private bpffs): the first full write,
    /// and one pod relabel from change to map write (compute + the policy stage), as the daemon does it.
    /// </summary>
    private static void MeasureWithMaps(ClusterStore store, int pods, int nodes, int runs, string bpfDir)
    {
        var bpffs = Directory.CreateTempSubdirectory("ebpfproxy-bench-bpffs-").FullName;
        LibBpf.Net.BpfFs.Mount(bpffs);
        try
        {
            var options = new EbpfProxy.Datapath.DatapathOptions { BpfFsRoot = bpffs, ObjectDirectory = bpfDir };
            using var datapath = EbpfProxy.Datapath.Loading.DatapathLoader.Load(options, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
            var syncer = new EbpfProxy.Datapath.Sync.PolicyStage(datapath.DatapathMaps);
            var translator = new PolicyTranslator("node-0");
            var sw = Stopwatch.StartNew();
            var first = syncer.Sync(translator.Compute(store.Snapshot()), reread: true);
            Console.WriteLine($"maps: first full write {sw.ElapsedMilliseconds} ms ({first.Writes} writes, plus {syncer.Names.Writes} names for the CLI)");
            var relabel = new List<double>();
            var writes = new List<int>();
            for (int round = 0; round < runs * 4; round++)
            {
                // Relabel a pod of this node (node-0 hosts every nodes-th pod) so its rules and identity move.
                store.Upsert(PolicyScaleModel.Pod(round / 2 * nodes % pods, nodes, canary: round % 2 == 0));
                sw.Restart();
                var result = syncer.Sync(translator.Compute(store.Snapshot()));
                relabel.Add(sw.Elapsed.TotalMilliseconds);
                writes.Add(result.Writes + result.Deletes + syncer.Names.Writes + syncer.Names.Deletes);
            }
            Console.WriteLine($"maps: one local pod relabel, change to map write: median {Median(relabel):F1} ms, p90 {Percentile(relabel, 0.9):F1} ms, median {writes.Order().ElementAt(writes.Count / 2)} map writes (names for the CLI included)");
        }
        finally
        {
            LibBpf.Net.BpfFs.Unmount(bpffs, detach: true);
            Directory.Delete(bpffs);
        }
    }

    private static List<double> Time(int rounds, Func<int, DesiredPolicyState> step)
    {
        var samples = new List<double>(rounds);
        var sw = new Stopwatch();
        for (int round = 0; round < rounds; round++)
        {
            sw.Restart();
            step(round);
            samples.Add(sw.Elapsed.TotalMilliseconds);
        }
        return samples;
    }

    private static int MaxRulesPerEndpoint(DesiredPolicyState state) =>
        state.RulesByEndpoint.Count == 0 ? 0 : state.RulesByEndpoint.Values.Max(r => r.Count);

    private static double Median(List<double> samples) => Percentile(samples, 0.5);

    private static double Percentile(List<double> samples, double p)
    {
        var sorted = samples.Order().ToList();
        return sorted[Math.Min(sorted.Count - 1, (int)(sorted.Count * p))];
    }
}

/// <summary>
/// A synthetic cluster shaped like a multi-tenant one: 100 pods per namespace in 10 apps, three
/// tiers, namespace labels env/team, kube-dns in kube-system; 10 policies per namespace in the
/// common patterns (default deny, DNS egress, app-to-app ingress with numeric and named ports,
/// cross-namespace ingress by team, ingress from the monitoring namespace with a port range,
/// internet egress via ipBlock with excepts, per-namespace partner CIDRs).
/// </summary>
public static class PolicyScaleModel
{
    public const int PodsPerNamespace = 100;
    public const int AppsPerNamespace = 10;

    public static int Namespaces(int pods) => Math.Max(1, pods / PodsPerNamespace);

    private static string NamespaceOf(int pod) => $"ns-{pod / PodsPerNamespace}";

    public static V1Namespace Namespace(int i) => new()
    {
        ApiVersion = "v1",
        Kind = "Namespace",
        Metadata = new V1ObjectMeta
        {
            Name = $"ns-{i}",
            ResourceVersion = "1",
            Labels = new Dictionary<string, string> { ["env"] = (i % 3) switch { 0 => "prod", 1 => "staging", _ => "dev" }, ["team"] = $"team-{i % 10}" },
        },
    };

    public static V1Pod Pod(int i, int nodes, bool canary = false)
    {
        int app = i % PodsPerNamespace / (PodsPerNamespace / AppsPerNamespace);
        var labels = new Dictionary<string, string>
        {
            ["app"] = $"app-{app}",
            ["tier"] = (app % 3) switch { 0 => "front", 1 => "back", _ => "db" },
            ["pod-template-hash"] = $"h{app}x7",
        };
        if (canary)
            labels["canary"] = "true";
        return new V1Pod
        {
            ApiVersion = "v1",
            Kind = "Pod",
            Metadata = new V1ObjectMeta { Name = $"pod-{i}", NamespaceProperty = NamespaceOf(i), ResourceVersion = canary ? "2" : "1", Labels = labels },
            Spec = new V1PodSpec
            {
                NodeName = $"node-{i % nodes}",
                Containers = [new V1Container
                {
                    Name = "app",
                    Image = "registry.example/app:1",
                    Ports = [new V1ContainerPort { Name = "http", ContainerPort = 8080 }, new V1ContainerPort { Name = "metrics", ContainerPort = 9090 }],
                }],
            },
            Status = new V1PodStatus { Phase = "Running", PodIP = $"10.{100 + i / 62500}.{i / 250 % 250}.{i % 250 + 1}" },
        };
    }

    private static V1Pod Dns(int i) => new()
    {
        ApiVersion = "v1",
        Kind = "Pod",
        Metadata = new V1ObjectMeta { Name = $"coredns-{i}", NamespaceProperty = "kube-system", ResourceVersion = "1", Labels = new Dictionary<string, string> { ["k8s-app"] = "kube-dns" } },
        Spec = new V1PodSpec
        {
            NodeName = $"node-{i}",
            Containers = [new V1Container { Name = "coredns", Image = "coredns", Ports = [new V1ContainerPort { Name = "dns", ContainerPort = 53, Protocol = "UDP" }, new V1ContainerPort { Name = "dns-tcp", ContainerPort = 53 }] }],
        },
        Status = new V1PodStatus { Phase = "Running", PodIP = $"10.99.0.{i + 1}" },
    };

    private static V1Pod Monitor(int i) => new()
    {
        ApiVersion = "v1",
        Kind = "Pod",
        Metadata = new V1ObjectMeta { Name = $"scraper-{i}", NamespaceProperty = "monitoring", ResourceVersion = "1", Labels = new Dictionary<string, string> { ["app"] = i < 2 ? "prometheus" : "log-shipper" } },
        Spec = new V1PodSpec { NodeName = $"node-{i}", Containers = [new V1Container { Name = "c", Image = "scraper" }] },
        Status = new V1PodStatus { Phase = "Running", PodIP = $"10.98.0.{i + 1}" },
    };

    private static V1LabelSelector Match(string key, string value) => new() { MatchLabels = new Dictionary<string, string> { [key] = value } };

    private static V1NetworkPolicyPort Port(object port, string protocol = "TCP", int? end = null) =>
        new() { Port = port is int n ? (IntOrString)n : (IntOrString)(string)port, Protocol = protocol, EndPort = end };

    /// <summary>Policy number <paramref name="i"/> (10 per namespace); <paramref name="generation"/> changes its content a little.</summary>
    public static V1NetworkPolicy Policy(int i, int pods, bool broad = false, int generation = 0)
    {
        int namespaces = Namespaces(pods);
        int ns = i / 10 % namespaces;
        int kind = i % 10;
        int app = (kind + generation) % AppsPerNamespace;
        var spec = kind switch
        {
            0 => new V1NetworkPolicySpec { PodSelector = new V1LabelSelector(), PolicyTypes = ["Ingress", "Egress"] },
            1 => new V1NetworkPolicySpec
            {
                PodSelector = new V1LabelSelector(),
                PolicyTypes = ["Egress"],
                Egress = [new V1NetworkPolicyEgressRule
                {
                    To = [new V1NetworkPolicyPeer { NamespaceSelector = Match("kubernetes.io/metadata.name", "kube-system"), PodSelector = Match("k8s-app", "kube-dns") }],
                    Ports = [Port(53, "UDP"), Port(53)],
                }],
            },
            8 => new V1NetworkPolicySpec
            {
                PodSelector = Match("tier", "front"),
                PolicyTypes = ["Egress"],
                Egress = [new V1NetworkPolicyEgressRule
                {
                    To = [new V1NetworkPolicyPeer { IpBlock = new V1IPBlock { Cidr = "0.0.0.0/0", Except = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"] } },
                          new V1NetworkPolicyPeer { IpBlock = new V1IPBlock { Cidr = $"203.0.{ns % 256}.0/24", Except = [$"203.0.{ns % 256}.{128 + generation % 64}/26"] } }],
                    Ports = [Port(443)],
                }],
            },
            9 => new V1NetworkPolicySpec
            {
                PodSelector = new V1LabelSelector(),
                Ingress = [new V1NetworkPolicyIngressRule
                {
                    FromProperty = [new V1NetworkPolicyPeer
                    {
                        // broad: every pod of two thirds of the namespaces (about 670 identities) instead of the monitoring namespace.
                        NamespaceSelector = new V1LabelSelector { MatchExpressions = [broad
                            ? new V1LabelSelectorRequirement { Key = "env", OperatorProperty = "In", Values = ["prod", "staging"] }
                            : new V1LabelSelectorRequirement { Key = "purpose", OperatorProperty = "In", Values = ["monitoring", "logging"] }] },
                        PodSelector = new V1LabelSelector { MatchExpressions = [new V1LabelSelectorRequirement { Key = "app", OperatorProperty = "Exists" }] },
                    }],
                    Ports = [Port("metrics"), Port(30000 + generation % 10, end: 30100)],
                }],
            },
            // 2-7: an app admits the next app of its namespace on 8080, front-tier pods of its team's
            // namespaces on "http", and (7) calls the next app's "http" port on egress.
            _ => new V1NetworkPolicySpec
            {
                PodSelector = Match("app", $"app-{app}"),
                PolicyTypes = kind == 7 ? ["Ingress", "Egress"] : ["Ingress"],
                Ingress = [
                    new V1NetworkPolicyIngressRule { FromProperty = [new V1NetworkPolicyPeer { PodSelector = Match("app", $"app-{(app + 1) % AppsPerNamespace}") }], Ports = [Port(8080)] },
                    new V1NetworkPolicyIngressRule
                    {
                        FromProperty = [new V1NetworkPolicyPeer { NamespaceSelector = Match("team", $"team-{ns % 10}"), PodSelector = Match("tier", "front") }],
                        Ports = [Port("http")],
                    },
                ],
                Egress = kind == 7
                    ? [new V1NetworkPolicyEgressRule { To = [new V1NetworkPolicyPeer { PodSelector = Match("app", $"app-{(app + 1) % AppsPerNamespace}") }], Ports = [Port("http")] }]
                    : null,
            },
        };
        return new V1NetworkPolicy
        {
            ApiVersion = "networking.k8s.io/v1",
            Kind = "NetworkPolicy",
            Metadata = new V1ObjectMeta { Name = $"np-{i}", NamespaceProperty = $"ns-{ns}", ResourceVersion = (generation + 1).ToString() },
            Spec = spec,
        };
    }

    public static ClusterStore Populate(int pods, int policies, int nodes, bool broad = false)
    {
        var store = new ClusterStore();
        store.ReplaceKind(Enumerable.Range(0, Namespaces(pods)).Select(Namespace).Concat(
        [
            new V1Namespace { ApiVersion = "v1", Kind = "Namespace", Metadata = new V1ObjectMeta { Name = "kube-system", ResourceVersion = "1" } },
            new V1Namespace
            {
                ApiVersion = "v1",
                Kind = "Namespace",
                Metadata = new V1ObjectMeta { Name = "monitoring", ResourceVersion = "1", Labels = new Dictionary<string, string> { ["purpose"] = "monitoring" } },
            },
        ]));
        store.ReplaceKind(Enumerable.Range(0, pods).Select(i => Pod(i, nodes)).Concat(Enumerable.Range(0, 2).Select(Dns)).Concat(Enumerable.Range(0, 4).Select(Monitor)));
        store.ReplaceKind(Enumerable.Range(0, policies).Select(i => Policy(i, pods, broad)));
        store.Upsert(new V1Node
        {
            ApiVersion = "v1",
            Kind = "Node",
            Metadata = new V1ObjectMeta { Name = "node-0", ResourceVersion = "1" },
            Status = new V1NodeStatus { Addresses = [new V1NodeAddress { Type = "InternalIP", Address = "192.168.0.10" }] },
        });
        return store;
    }
}
