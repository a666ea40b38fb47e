using EbpfProxy.Core.Policy;
using System.Net;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Translation;
using EbpfProxy.Datapath;
using EbpfProxy.Datapath.Loading;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Sync;
using EbpfProxy.Testing;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging.Abstractions;

namespace EbpfProxy.Datapath.Tests;

/// <summary>
/// The real pod.bpf.o loaded into a private bpffs, with its maps seeded by the real translation
/// and syncer from manifests, and its programs run on crafted packets with BPF_PROG_TEST_RUN.
/// </summary>
public sealed class PodDatapath : IDisposable
{
    public const uint TcActOk = 0;
    public const uint TcActShot = 2;
    public const uint TcActRedirect = 7;

    private readonly BpfFsMount _bpffs;
    private readonly ClusterStore _store = new();

    public PodDatapath(string? serviceCidr = null, string? clusterCidr = null, bool masqueradeAll = false, Action<DatapathOptions>? configure = null)
    {
        Privileged.EnsureRoot();
        _bpffs = BpfFsMount.CreateTemp();
        try
        {
            Options = new DatapathOptions
            {
                BpfFsRoot = _bpffs.Path,
                ObjectDirectory = AppContext.BaseDirectory,
                ConntrackMax = 4096,
                ServicesMax = 4096,
                BackendsMax = 4096,
                RevNatMax = 1024,
                ServiceCidr = serviceCidr is null ? null : System.Net.IPNetwork.Parse(serviceCidr),
                ClusterCidr = clusterCidr is null ? null : System.Net.IPNetwork.Parse(clusterCidr),
                MasqueradeAll = masqueradeAll,
            };
            configure?.Invoke(Options);
            Loaded = DatapathLoader.Load(Options, NullLogger.Instance);
            SyncOptions = DatapathSyncOptions.From(Options) with { Limits = new Core.Planning.LbLimits(Options.BackendsMax, 1023) };
            Syncer = new ServiceStage(Loaded.DatapathMaps, SyncOptions.Limits, NullLogger.Instance);
            // The config maps, as the sync's config stage writes them on its first pass (masquerade off until ConfigureMasquerade).
            new ConfigStage(Loaded.DatapathMaps, SyncOptions).Sync(new NodeContext("node-1"), [], full: true);
        }
        catch
        {
            _bpffs.Dispose();
            throw;
        }
    }

    public DatapathOptions Options { get; }
    public LoadedDatapath Loaded { get; }
    public DatapathSyncOptions SyncOptions { get; }
    public ServiceStage Syncer { get; }
    public LbMaps Maps => Loaded.Maps;

    /// <summary>Replaces the cluster with these manifests and syncs the maps, as the daemon does.</summary>
    public LbSyncResult Apply(string yaml, string nodeName = "node-1", params string[] nodeAddresses) => Apply(yaml, nodeName, null, nodeAddresses);

    public LbSyncResult Apply(string yaml, bool expectErrors) => Apply(yaml, "node-1", null, [], expectErrors);

    /// <summary>As <see cref="Apply(string, string, string[])"/>, as a full pass (re-read the maps, check all of conntrack).</summary>
    public LbSyncResult ApplyFull(string yaml) => Apply(yaml, "node-1", null, [], full: true);

    public LbSyncResult Apply(string yaml, string nodeName, string? zone, string[] nodeAddresses, bool expectErrors = false, bool full = false)
    {
        var objects = KubernetesYaml.LoadAllFromString(yaml);
        _store.ReplaceAll(objects.OfType<V1Service>(), objects.OfType<V1EndpointSlice>(), objects.OfType<V1Pod>());
        var translation = ServiceTranslator.Translate(_store.Snapshot(), new NodeContext(nodeName, zone, [.. nodeAddresses.Select(IPAddress.Parse)]));
        if (!expectErrors)
            Assert.Empty(translation.Errors);
        var result = Syncer.Sync(translation.State, reread: full);
        // As the daemon does right after a pass (there off the sync path).
        return result with { ConntrackPurged = result.ConntrackPurged + Syncer.Purger.PurgeNow() };
    }

    /// <summary>Turns masquerade on with this node address, as the daemon does once it knows the node's primary address.</summary>
    public void ConfigureMasquerade(string address) => Loaded.DatapathMaps.WriteNatConfig(ConfigStage.NatConfig(SyncOptions, IPAddress.Parse(address)));

    public (uint Verdict, byte[] Packet) FromPod(byte[] packet) => Run(Loaded.FromPod, packet);

    public (uint Verdict, byte[] Packet) FromNetdev(byte[] packet) => Run(Loaded.FromNetdev, packet);

    public (uint Verdict, byte[] Packet) ToNetdev(byte[] packet) => Run(Loaded.ToNetdev, packet);

    public (uint Verdict, byte[] Packet) ToPod(byte[] packet) => Run(Loaded.ToPod, packet);

    /// <summary>Runs a program on a packet: (tc verdict, output packet).</summary>
    public static (uint Verdict, byte[] Packet) Run(LibBpf.Net.BpfProgram program, byte[] packet)
    {
        var output = new byte[packet.Length + 256];
        var result = program.TestRun(packet, output);
        return (result.ReturnValue, output[..result.DataSizeOut]);
    }

    public ulong Counter(Reason reason, MetricsDirection dir) =>
        (Maps.Metrics.Lookup(ReasonInfo.MetricsIndex(reason, dir)) ?? []).Aggregate(0UL, (sum, v) => sum + v.Packets);

    public void Dispose()
    {
        Loaded.Dispose();
        _bpffs.Dispose();
    }

    /// <summary>A Service with one TCP and one UDP port 80 -> 8080 and a slice listing these backends.</summary>
    public static string EchoService(params string[] backends) => EchoService("10.96.0.42", backends);

    public static string EchoService(string vip, string[] backends, string[]? terminating = null, int affinitySeconds = 0)
    {
        var affinity = affinitySeconds > 0
            ? $"\n  sessionAffinity: ClientIP\n  sessionAffinityConfig: {{clientIP: {{timeoutSeconds: {affinitySeconds}}}}}"
            : "";
        var endpoints = string.Concat(backends.Select(b => $"\n- {{addresses: [{b}], conditions: {{ready: true}}, nodeName: node-1}}"));
        endpoints += string.Concat((terminating ?? []).Select(b => $"\n- {{addresses: [{b}], conditions: {{ready: false, serving: true, terminating: true}}}}"));
        var endpointsYaml = endpoints.Length == 0 ? " []" : endpoints;
        return $"""
            apiVersion: v1
            kind: Service
            metadata: {"{"}name: echo, namespace: default{"}"}
            spec:
              clusterIP: {vip}{affinity}
              ports:
              - {"{"}name: http, port: 80, protocol: TCP{"}"}
              - {"{"}name: udp, port: 80, protocol: UDP{"}"}
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: echo-1
              namespace: default
              labels: {"{"}kubernetes.io/service-name: echo{"}"}
            addressType: IPv4
            ports:
            - {"{"}name: http, port: 8080, protocol: TCP{"}"}
            - {"{"}name: udp, port: 8080, protocol: UDP{"}"}
            endpoints:{endpointsYaml}
            """;
    }

    public static readonly IPAddress Vip = IPAddress.Parse("10.96.0.42");
    public static readonly IPAddress Client = IPAddress.Parse("10.244.0.2");
}
