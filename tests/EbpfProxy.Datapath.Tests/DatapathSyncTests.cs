using System.Net;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Health;
using EbpfProxy.Core.Metrics;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Planning;
using EbpfProxy.Core.Policy;
using EbpfProxy.Core.Sync;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Sync;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace EbpfProxy.Datapath.Tests;

/// <summary>
/// The daemon's whole sync cycle (<see cref="DatapathSync"/>: runner, config, service and policy
/// stages) against <see cref="InMemoryDatapathMaps"/> holding a predecessor's pinned state, with a
/// fake clock: start-up, first sync, incremental and full passes, failures.
/// </summary>
public sealed class DatapathSyncTests
{
    private static readonly DateTimeOffset Start = DateTimeOffset.Parse("2026-01-01T00:00:00Z");
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private const string Cluster = """
        apiVersion: v1
        kind: Node
        metadata: {name: node-1}
        status: {addresses: [{type: InternalIP, address: 192.168.1.10}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: default}
        spec: {type: NodePort, clusterIP: 10.96.0.10, ports: [{port: 80, nodePort: 30080, protocol: TCP}]}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
        addressType: IPv4
        endpoints: [{addresses: [10.244.1.5], conditions: {ready: true}, nodeName: node-2}]
        ports: [{port: 8080, protocol: TCP}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: db, namespace: default, labels: {app: db}}
        spec: {nodeName: node-1, containers: [{name: c}]}
        status: {podIP: 10.244.0.7, podIPs: [{ip: 10.244.0.7}]}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: db-isolated, namespace: default}
        spec: {podSelector: {matchLabels: {app: db}}, policyTypes: [Ingress]}
        """;

    private sealed class Harness
    {
        public FakeTimeProvider Time { get; } = new(Start);
        public ClusterStore Store { get; } = new();
        public InMemoryDatapathMaps Maps { get; }
        public FakeAddresses Addresses { get; } = new();
        public DatapathSync Sync { get; }
        public ProxyStatus Status { get; } = new();
        public ProxyHealth Health { get; }

        public Harness(InMemoryDatapathMaps? maps = null, TimeSpan? syncPeriod = null)
        {
            Maps = maps ?? new InMemoryDatapathMaps();
            var options = new DatapathSyncOptions
            {
                NodeName = "node-1",
                SyncPeriod = syncPeriod ?? TimeSpan.FromSeconds(30),
                MinSyncInterval = TimeSpan.FromSeconds(1),
                ServiceCidr = IPNetwork.Parse("10.96.0.0/12"),
                ClusterCidr = IPNetwork.Parse("10.244.0.0/16"),
                NetnsCookie = 4242,
            };
            Health = new ProxyHealth(Time, TimeSpan.FromSeconds(60), options.SyncPeriod);
            Sync = new DatapathSync(Maps, Store, options, Addresses, new ProxyMetrics(), Status, Health, Time, NullLoggerFactory.Instance);
        }

        public void Load(string yaml = Cluster)
        {
            foreach (var o in KubernetesYaml.LoadAllFromString(yaml))
                Store.Upsert((IKubernetesObject<V1ObjectMeta>)o);
        }
    }

    public sealed class FakeAddresses : ILocalAddresses
    {
        private volatile IReadOnlyList<IPAddress> _current = [IPAddress.Parse("192.168.1.10")];
        public IReadOnlyList<IPAddress> Read() => _current;
        public event Action? Changed;

        public void Set(params string[] addresses)
        {
            _current = [.. addresses.Select(IPAddress.Parse)];
            Changed?.Invoke();
        }
    }

    /// <summary>A node's pinned maps after a daemon ran <see cref="Cluster"/> (and its predecessor's config).</summary>
    private static InMemoryDatapathMaps Pinned()
    {
        var h = new Harness();
        h.Load();
        h.Sync.Sync(SyncTrigger.Requested);
        h.Maps.ClearWrites();
        return h.Maps;
    }

    [Fact]
    public async Task AStartingDaemonWritesNothingBeforeItsFirstSyncAndKeepsWhatIsPinned()
    {
        var pinned = Pinned();
        var nat = pinned.ReadNatConfig();
        Assert.Equal(IPAddress.Parse("192.168.1.10"), nat.SnatAddrBe.ToAddress());
        var services = pinned.ReadServices();
        var policy = pinned.ReadPolicy();
        Assert.NotEmpty(services.Frontends);
        Assert.NotEmpty(policy.Endpoints);

        // A restart with the API server down (or slow): the source never lists.
        var h = new Harness(pinned);
        h.Store.RegisterSource("api");
        using var cts = new CancellationTokenSource();
        var run = h.Sync.RunAsync(cts.Token);
        for (int i = 0; i < 600; i++)
        {
            h.Time.Advance(TimeSpan.FromSeconds(1));
            if (i % 50 == 0)
                await Task.Delay(10);
        }
        h.Addresses.Set("192.168.1.10", "10.0.0.1"); // an address event before the first sync writes nothing either
        await Task.Delay(200);
        Assert.Empty(h.Maps.Writes);
        Assert.Equal(0, h.Sync.Passes);
        Assert.False(h.Sync.FirstSync.IsCompleted);
        Assert.Equal(nat, h.Maps.ReadNatConfig());
        h.Addresses.Set("192.168.1.10");

        // The API comes back with the same cluster: the first (full) pass finds everything in place.
        h.Load();
        h.Store.MarkSynced("api");
        await h.Sync.FirstSync.WaitAsync(Wait);
        Assert.Equal(1, h.Sync.FullPasses);
        Assert.Empty(h.Maps.Writes);
        Assert.Equal(nat, h.Maps.ReadNatConfig());
        cts.Cancel();
        await run.WaitAsync(Wait);
    }

    [Fact]
    public void TheFirstSyncWritesConfigServicesAndPolicyAndTheSameClusterAgainWritesNothing()
    {
        var h = new Harness();
        h.Load();
        h.Sync.Sync(SyncTrigger.Requested);
        Assert.Equal(IPAddress.Parse("192.168.1.10"), h.Maps.ReadNatConfig().SnatAddrBe.ToAddress());
        Assert.Equal(IPAddress.Parse("10.244.0.0"), h.Maps.ReadNatConfig().ClusterCidrBe.ToAddress());
        Assert.Equal(IPAddress.Parse("10.96.0.0"), h.Maps.ReadConfig().ServiceCidrBe.ToAddress());
        Assert.Equal(4242ul, h.Maps.ReadHostConfig().NetnsCookie);
        Assert.Contains(h.Maps.ReadServices().Frontends.Keys, k => k.Frontend.Port == 30080);
        Assert.Equal(PolicyIsolation.Ingress, Assert.Single(h.Maps.ReadPolicy().Endpoints).Value.Isolation);
        // The config maps go first: services never see a half-configured node.
        Assert.Equal([LbMaps.ConfigMap, LbMaps.NatConfigMap, LbMaps.HostConfigMap], h.Maps.Writes.Take(3));

        h.Maps.ClearWrites();
        h.Time.Advance(TimeSpan.FromSeconds(31));
        h.Sync.Sync(SyncTrigger.Periodic);
        Assert.Equal(2, h.Sync.FullPasses);
        Assert.Empty(h.Maps.Writes);
    }

    [Fact]
    public async Task UnderSteadyRequestsAFullPassRunsWhenTheLastIsOlderThanTheSyncPeriod()
    {
        var h = new Harness();
        h.Load();
        h.Store.RegisterSource("api");
        using var cts = new CancellationTokenSource();
        var run = h.Sync.RunAsync(cts.Token);
        h.Store.MarkSynced("api");
        await h.Sync.FirstSync.WaitAsync(Wait);
        Assert.Equal(1, h.Sync.FullPasses);

        // A pod status change every 5 s, for 2 minutes: the periodic timer never fires (there is always a recent pass).
        for (int second = 1; second <= 120; second++)
        {
            if (second % 5 == 0)
            {
                var passes = h.Sync.Passes;
                h.Store.Upsert(new V1Pod { Metadata = new V1ObjectMeta { Name = "churn", NamespaceProperty = "default", Labels = new Dictionary<string, string> { ["round"] = second.ToString() } } });
                await Until(() => h.Sync.Passes > passes, () => h.Time.Advance(TimeSpan.FromMilliseconds(100)));
            }
            h.Time.Advance(TimeSpan.FromSeconds(1));
        }
        // Every pass was requested; one in six (at least) was full: the last full pass was 30 s old.
        Assert.True(h.Sync.Passes >= 24, $"{h.Sync.Passes} passes");
        Assert.InRange(h.Sync.FullPasses, 4, 6);
        cts.Cancel();
        await run.WaitAsync(Wait);
    }

    [Fact]
    public void AFailedPassIsFollowedByAFullOneThatHealsTheMaps()
    {
        var h = new Harness();
        h.Load();
        h.Sync.Sync(SyncTrigger.Requested);
        Assert.Equal(1, h.Sync.FullPasses);

        // A second backend; the services map refuses writes (full).
        h.Load("""
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
            addressType: IPv4
            endpoints: [{addresses: [10.244.1.5], conditions: {ready: true}, nodeName: node-2}, {addresses: [10.244.2.5], conditions: {ready: true}, nodeName: node-3}]
            ports: [{port: 8080, protocol: TCP}]
            """);
        h.Maps.FailWrites = map => map == LbMaps.Services;
        h.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Throws<LibBpf.Net.BpfException>(() => h.Sync.Sync(SyncTrigger.Requested));

        // The retry, well within the sync period, is full: it re-reads the maps and completes the change.
        h.Maps.FailWrites = null;
        h.Time.Advance(TimeSpan.FromSeconds(1));
        h.Sync.Sync(SyncTrigger.Retry);
        Assert.Equal(2, h.Sync.FullPasses);
        var nodePort = h.Maps.ReadServices().Frontends.Single(kv => kv.Key.Frontend.Port == 30080 && kv.Key.Scope == FrontendScope.External).Value;
        Assert.Equal(2, nodePort.Service!.Value.Count);

        // Drift (someone deleted the NodePort's slot 0) is healed by the next full pass, not by incremental ones.
        var key = h.Maps.ReadServices().Frontends.Keys.First(k => k.Frontend.Port == 30080);
        h.Maps.Apply(new LbOp.DeleteService(key));
        h.Time.Advance(TimeSpan.FromSeconds(5));
        h.Sync.Sync(SyncTrigger.Requested);
        Assert.Null(h.Maps.ReadServices().Frontends.GetValueOrDefault(key)?.Service);
        h.Time.Advance(TimeSpan.FromSeconds(30));
        h.Sync.Sync(SyncTrigger.Requested);
        Assert.NotNull(h.Maps.ReadServices().Frontends[key].Service);
    }

    [Fact]
    public void AServiceLeftOutForLackOfRoomIsInStatusAndProgrammedByTheIncrementalPassAfterADeletionMakesRoom()
    {
        // Room for 8 lb4_services entries; web (a NodePort with one backend) takes 5 of them, and
        // big (1 + 2 ports x 2 = 5) does not fit beside it.
        var h = new Harness(new InMemoryDatapathMaps { Capacity = new LbLimits(MaxServiceEntries: 8) });
        h.Load();
        h.Load("""
            apiVersion: v1
            kind: Service
            metadata: {name: big, namespace: default}
            spec: {clusterIP: 10.96.0.20, ports: [{name: a, port: 80, protocol: TCP}, {name: b, port: 81, protocol: TCP}]}
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: big-1, namespace: default, labels: {kubernetes.io/service-name: big}}
            addressType: IPv4
            endpoints: [{addresses: [10.244.3.5], conditions: {ready: true}, nodeName: node-2}]
            ports: [{name: a, port: 8080, protocol: TCP}, {name: b, port: 8081, protocol: TCP}]
            """);
        h.Sync.Sync(SyncTrigger.Requested);
        Assert.True(h.Health.Evaluate().Healthy); // a service left out is not a failed pass
        var leftOut = Assert.Single(h.Status.Current.ProgramErrors);
        Assert.Contains("default/big", leftOut, StringComparison.Ordinal);
        Assert.Equal(1, h.Status.Current.Skipped);
        var services = h.Maps.ReadServices();
        Assert.DoesNotContain(services.Frontends.Keys, k => k.Frontend.Address.Equals(IPAddress.Parse("10.96.0.20")));
        Assert.Contains(services.Frontends.Keys, k => k.Frontend.Port == 30080);

        // web goes: the next (incremental) pass deletes it and programs big, which did not change itself.
        h.Store.DeleteService("default/web");
        h.Time.Advance(TimeSpan.FromSeconds(1));
        h.Sync.Sync(SyncTrigger.Requested);
        Assert.Equal(1, h.Sync.FullPasses);
        Assert.Empty(h.Status.Current.ProgramErrors);
        services = h.Maps.ReadServices();
        Assert.Equal(2, services.Frontends.Count(kv => kv.Key.Frontend.Address.Equals(IPAddress.Parse("10.96.0.20")) && kv.Key.Frontend.Port != 0 && kv.Value.Service?.Count == 1));
        Assert.DoesNotContain(services.Frontends.Keys, k => k.Frontend.Port == 30080);
    }

    [Fact]
    public void AFailedPassTurnsHealthzUnhealthyAtOnceAndASuccessfulOneHealsIt()
    {
        var h = new Harness();
        h.Load();
        h.Sync.Sync(SyncTrigger.Requested);
        Assert.True(h.Health.Evaluate().Healthy);
        h.Store.DeleteService("default/web");
        h.Maps.FailWrites = map => map == LbMaps.Services;
        h.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Throws<LibBpf.Net.BpfException>(() => h.Sync.Sync(SyncTrigger.Requested));
        // Not after the 60 s timeout: now.
        var report = h.Health.Evaluate();
        Assert.False(report.Healthy);
        Assert.Contains("lb4_services", report.Problem, StringComparison.Ordinal);
        h.Maps.FailWrites = null;
        h.Time.Advance(TimeSpan.FromSeconds(1));
        h.Sync.Sync(SyncTrigger.Retry);
        Assert.True(h.Health.Evaluate().Healthy);
    }

    [Fact]
    public void APolicyWriteFailureFailsClosedAndTheRetryCompletes()
    {
        var h = new Harness();
        h.Load();
        h.Sync.Sync(SyncTrigger.Requested);
        var rules = h.Maps.ReadPolicy().Rules.ToHashSet();
        // db now admits every pod of its namespace and is isolated for egress too: the new rule cannot be written.
        h.Load("""
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: db-isolated, namespace: default}
            spec: {podSelector: {matchLabels: {app: db}}, policyTypes: [Ingress, Egress], ingress: [{from: [{podSelector: {}}]}]}
            """);
        h.Maps.FailWrites = map => map == PolicyMaps.RulesMap;
        h.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Throws<LibBpf.Net.BpfException>(() => h.Sync.Sync(SyncTrigger.Requested));
        Assert.Equal(PolicyIsolation.Ingress | PolicyIsolation.Egress, h.Maps.ReadPolicy().Endpoints[IPAddress.Parse("10.244.0.7")].Isolation);
        Assert.True(h.Maps.ReadPolicy().Rules.SetEquals(rules));

        h.Maps.FailWrites = null;
        h.Time.Advance(TimeSpan.FromSeconds(1));
        h.Sync.Sync(SyncTrigger.Retry);
        Assert.True(h.Maps.ReadPolicy().Rules.IsProperSupersetOf(rules));
    }

    [Fact]
    public void ANewNodeAddressBecomesHostIdentityAndTheMasqueradeFallback()
    {
        var h = new Harness();
        // No Node object: the masquerade address falls back to the interfaces'.
        h.Load(Cluster.Replace("kind: Node\nmetadata: {name: node-1}", "kind: Node\nmetadata: {name: node-9}", StringComparison.Ordinal));
        h.Addresses.Set("192.168.1.10");
        h.Sync.Sync(SyncTrigger.Requested);
        Assert.Equal(IPAddress.Parse("192.168.1.10"), h.Maps.ReadNatConfig().SnatAddrBe.ToAddress());
        Assert.DoesNotContain(IPNetwork.Parse("10.244.0.1/32"), h.Maps.ReadPolicy().Ipcache.Keys);

        // A bridge CNI gives the node 10.244.0.1 (cni0) after start-up; the first address goes away.
        h.Addresses.Set("10.244.0.1");
        h.Time.Advance(TimeSpan.FromSeconds(1));
        h.Sync.Sync(SyncTrigger.Requested);
        Assert.Equal(ReservedIdentity.Host, h.Maps.ReadPolicy().Ipcache[IPNetwork.Parse("10.244.0.1/32")]);
        Assert.Equal(IPAddress.Parse("10.244.0.1"), h.Maps.ReadNatConfig().SnatAddrBe.ToAddress());
    }

    /// <summary>Polls <paramref name="condition"/>, stepping the fake clock between looks (generous real-time limit).</summary>
    private static async Task Until(Func<bool> condition, Action step)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("condition not reached");
            step();
            await Task.Delay(5);
        }
    }
}
