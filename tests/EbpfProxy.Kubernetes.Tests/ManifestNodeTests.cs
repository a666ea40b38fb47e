using System.Net;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Translation;
using EbpfProxy.Kubernetes.Manifests;

namespace EbpfProxy.Kubernetes.Tests;

/// <summary>
/// Issue 9 item 7: in standalone mode a Node in the folder is read like the API's: its addresses
/// and zone reach the store (and so NodePorts and topology hints), and derived slices get zones.
/// </summary>
public sealed class ManifestNodeTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly ClusterStore _store = new();
    private readonly ListLogger _logger = new();

    public void Dispose() => _dir.Dispose();

    private static string Node(string name, string zone, string address) => $"""
        apiVersion: v1
        kind: Node
        metadata:
          name: {name}
          labels:
            topology.kubernetes.io/zone: {zone}
        status:
          addresses:
          - type: InternalIP
            address: {address}
          - type: Hostname
            address: {name}
        ---

        """;

    private static string Pod(string name, string node, string ip) => $"""
        apiVersion: v1
        kind: Pod
        metadata:
          name: {name}
          labels:
            app: echo
        spec:
          nodeName: {node}
          containers:
          - name: echo
            image: echo
        status:
          phase: Running
          podIP: {ip}
          conditions:
          - type: Ready
            status: "True"
        ---

        """;

    private ManifestSource NewSource() => new(_dir.Path, _store, _logger, TimeProvider.System, new ManifestSourceOptions { UseFileSystemWatcher = false });

    [Fact]
    public void A_node_reaches_the_store_and_gives_this_node_its_addresses_and_zone()
    {
        File.WriteAllText(_dir.File("nodes.yaml"), Node("node-1", "zone-a", "192.0.2.10") + Node("node-2", "zone-b", "192.0.2.11"));
        using var source = NewSource();

        source.ReadNow();

        Assert.Empty(source.Errors);
        Assert.Equal(["node-1", "node-2"], _store.Snapshot().Nodes.Keys);
        var context = NodeContext.From("node-1", _store.Snapshot().Nodes.GetValueOrDefault("node-1"));
        Assert.Equal("zone-a", context.Zone);
        Assert.Equal(["192.0.2.10"], context.Addresses.Select(a => a.ToString()));
    }

    [Fact]
    public void A_node_with_an_address_that_is_not_one_is_skipped_by_name()
    {
        File.WriteAllText(_dir.File("nodes.yaml"), Node("node-1", "zone-a", "not-an-ip"));
        using var source = NewSource();

        source.ReadNow();

        Assert.Empty(_store.Snapshot().Nodes);
        var error = Assert.Single(source.Errors);
        Assert.Equal("Node node-1", error.Object);
        Assert.Contains("not-an-ip", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Derived_slices_take_zones_from_nodes_and_hints_for_prefer_close()
    {
        File.WriteAllText(_dir.File("all.yaml"), Node("node-1", "zone-a", "192.0.2.10") + Node("node-2", "zone-b", "192.0.2.11")
            + Pod("echo-1", "node-1", "10.244.0.11") + Pod("echo-2", "node-2", "10.244.1.12") + """
            apiVersion: v1
            kind: Service
            metadata: {name: echo}
            spec:
              clusterIP: 10.96.0.42
              selector: {app: echo}
              trafficDistribution: PreferClose
              ports: [{port: 80, targetPort: 8080}]
            """);
        using var source = NewSource();

        source.ReadNow();

        var endpoints = _store.Snapshot().EndpointSlices.Values.SelectMany(s => s.Endpoints).OrderBy(e => e.Addresses[0], StringComparer.Ordinal).ToList();
        Assert.Equal(["zone-a", "zone-b"], endpoints.Select(e => e.Zone));
        Assert.Equal(["zone-a", "zone-b"], endpoints.Select(e => Assert.Single(e.Hints.ForZones).Name));
    }
}
