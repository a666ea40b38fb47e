using EbpfProxy.Datapath.Sync;
using System.Net;
using System.Text;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Policy;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Policy;
using EbpfProxy.Testing;
using k8s;
using k8s.Models;

namespace EbpfProxy.Datapath.Tests;

/// <summary>
/// Core's computed policy written by <see cref="PolicyStage"/> into a real loaded datapath, and
/// read back from the pins with the code `policy get` and `ipcache list` run
/// (<see cref="PolicyMapsView"/>, <see cref="PolicyInspector"/>): the names maps, their
/// idempotence across a restart, and their clean-up.
/// </summary>
public class PolicyCliKernelTests
{
    // x/client sorts before x/web, so it takes endpoint id 1: a restart that did not re-adopt the
    // ids of pods no policy isolates (they have no pol_endpoints entry) would renumber it.
    private static readonly string Cluster = $$$"""
        apiVersion: v1
        kind: Namespace
        metadata: {name: x, labels: {ns: x}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: y, labels: {ns: y}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata:
          name: z
          labels: { {{{string.Join(", ", Enumerable.Range(0, 12).Select(i => $"team.example.com/label-{i}: {new string((char)('a' + i), 60)}"))}}} }
        ---
        {{{Pod("x", "client", "10.244.1.10", "node-1")}}}
        ---
        {{{Pod("x", "web", "10.244.1.11", "node-1")}}}
        ---
        {{{Pod("y", "c", "10.244.2.13", "node-2")}}}
        ---
        {{{Pod("z", "long", "10.244.1.30", "node-1")}}}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: web, namespace: x}
        spec:
          podSelector: {matchLabels: {pod: web}}
          policyTypes: [Ingress, Egress]
          ingress:
          - from: [{namespaceSelector: {matchLabels: {ns: y} } }]
            ports: [{protocol: TCP, port: 80}]
          - from: [{ipBlock: {cidr: 192.0.2.0/24, except: [192.0.2.128/25]}}]
            ports: [{protocol: TCP, port: 8000, endPort: 8010}]
          egress:
          - ports: [{protocol: UDP, port: 53}]
        """;

    private static string Pod(string ns, string name, string ip, string node) => $$$"""
        apiVersion: v1
        kind: Pod
        metadata: {name: {{{name}}}, namespace: {{{ns}}}, labels: {pod: {{{name}}}}}
        spec: {nodeName: {{{node}}}, containers: [{name: c, image: i}]}
        status: {phase: Running, podIP: {{{ip}}}}
        """;

    private static ClusterStore Store()
    {
        var store = new ClusterStore();
        foreach (var o in KubernetesYaml.LoadAllFromString(Cluster))
            store.Upsert((IKubernetesObject<V1ObjectMeta>)o);
        return store;
    }

    private static PolicyMapsView ReadPins(PodDatapath dp)
    {
        using var pinned = PolicyMaps.OpenPinned(dp.Options.PinPath);
        return PolicyMapsView.Read(pinned);
    }

    [PrivilegedFact]
    public void WhatTheSyncerWritesIsWhatPolicyGetAndIpcacheListShow()
    {
        using var dp = new PodDatapath();
        var store = Store();
        var desired = new PolicyTranslator("node-1").Compute(store.Snapshot());
        Assert.Empty(desired.Errors);
        var syncer = new PolicyStage(dp.Loaded.DatapathMaps);
        syncer.Sync(desired);
        Assert.Null(syncer.Names.Error);
        Assert.Equal(desired.Endpoints.Count + desired.Identities.Count, syncer.Names.Writes);

        var view = ReadPins(dp);
        uint IdOf(string address) => desired.IpCache[new IPNetwork(IPAddress.Parse(address), 32)];
        var web = PolicyInspector.DescribePod(view, "x/web");
        Assert.Equal(["10.244.1.11"], web.Addresses);
        Assert.Equal(desired.Endpoints[IPAddress.Parse("10.244.1.11")].Id, web.EndpointId);
        Assert.Equal(IdOf("10.244.1.11"), web.Identity.Id);
        Assert.Equal("pod ns=x labels=[pod=web] ns-labels=[kubernetes.io/metadata.name=x,ns=x]", web.Identity.Description);
        Assert.True(web.Selected);
        Assert.True(web.Ingress.Isolated);
        uint cidr = desired.IpCache[IPNetwork.Parse("192.0.2.0/24")];
        // Sorted by identity: the host (1), then the allocated ones in their numbers' order.
        var expected = new[]
        {
            (1u, "1 any any this node"),
            (IdOf("10.244.2.13"), $"{IdOf("10.244.2.13")} TCP 80 pod ns=y labels=[pod=c] ns-labels=[kubernetes.io/metadata.name=y,ns=y]"),
            (cidr, $"{cidr} TCP 8000-8010 cidr [192.0.2.0/24]"),
        };
        Assert.Equal(expected.OrderBy(e => e.Item1).Select(e => e.Item2), web.Ingress.Allow.Select(a => $"{a.Identity} {a.Protocol} {a.Ports} {a.Peer}"));
        Assert.Equal(3, web.Ingress.Allow.Single(a => a.Identity == cidr).MapEntries);
        Assert.True(web.Egress.Isolated);
        Assert.Equal(["0 UDP 53 any peer"], web.Egress.Allow.Select(a => $"{a.Identity} {a.Protocol} {a.Ports} {a.Peer}"));
        Assert.Empty(web.Problems);
        Assert.Equal(PolicyInspector.Format(web), PolicyInspector.Format(PolicyInspector.DescribePod(view, "10.244.1.11")));

        var client = PolicyInspector.DescribePod(view, "x/client");
        Assert.False(client.Selected);
        Assert.Equal(IdOf("10.244.1.10"), client.Identity.Id);
        Assert.Contains("no policy selects it: all traffic admitted", PolicyInspector.Format(client));

        Assert.Contains("no pod x/nope on this node", Assert.Throws<PolicyLookupException>(() => PolicyInspector.DescribePod(view, "x/nope")).Message);
        Assert.Contains("pod ns=y labels=[pod=c]", Assert.Throws<PolicyLookupException>(() => PolicyInspector.DescribePod(view, "10.244.2.13")).Message);

        var rows = PolicyInspector.Ipcache(view);
        Assert.Equal(desired.IpCache.Count, rows.Count);
        Assert.Contains(new IpcacheRow("192.0.2.128/25", desired.IpCache[IPNetwork.Parse("192.0.2.128/25")], "cidr [192.0.2.0/24,192.0.2.128/25]"), rows);
        Assert.Contains(new IpcacheRow("10.244.2.13/32", IdOf("10.244.2.13"), "pod ns=y labels=[pod=c] ns-labels=[kubernetes.io/metadata.name=y,ns=y]"), rows);

        // A text longer than the field is stored cut, at a character boundary, marked.
        var longText = PolicyInspector.DescribePod(view, "z/long").Identity.Description;
        Assert.StartsWith("pod ns=z labels=[pod=long] ns-labels=[kubernetes.io/metadata.name=z,team.example.com/label-0=", longText, StringComparison.Ordinal);
        Assert.EndsWith("...", longText, StringComparison.Ordinal);
        Assert.Equal(PolIdName.TextLength - 1, Encoding.UTF8.GetByteCount(longText));
    }

    [PrivilegedFact]
    public void ARestartedDaemonWritesNoNameAndRemovedPodsLoseTheirs()
    {
        using var dp = new PodDatapath();
        var store = Store();
        new PolicyStage(dp.Loaded.DatapathMaps).Sync(new PolicyTranslator("node-1").Compute(store.Snapshot()));
        var before = ReadPins(dp);

        // A restarted daemon: hints from the pins, the same cluster.
        using var pinned = PolicyMaps.OpenPinned(dp.Options.PinPath);
        var restarted = new PolicyStage(new PinnedDatapathMaps(dp.Maps, pinned));
        var translator = new PolicyTranslator("node-1", hints: restarted.ReadHints());
        var again = restarted.Sync(translator.Compute(store.Snapshot()));
        Assert.Equal((0, 0), (again.Writes, again.Deletes));
        Assert.Equal(new PolicyNamesResult(0, 0), restarted.Names);
        // Unchanged input: nothing to write, and the identity texts are not even compared.
        restarted.Sync(translator.Compute(store.Snapshot()));
        Assert.Equal(new PolicyNamesResult(0, 0), restarted.Names);

        // x/client goes: its address's name and its identity's (no other pod has its labels) go too.
        var clientIdentity = PolicyInspector.DescribePod(before, "x/client").Identity.Id;
        store.DeletePod("x/client");
        restarted.Sync(translator.Compute(store.Snapshot()));
        Assert.Equal(new PolicyNamesResult(0, 2), restarted.Names);
        var after = ReadPins(dp);
        Assert.False(after.EndpointNames.ContainsKey(IPAddress.Parse("10.244.1.10")));
        Assert.False(after.IdentityNames.ContainsKey(clientIdentity));
        Assert.Throws<PolicyLookupException>(() => PolicyInspector.DescribePod(after, "x/client"));
        Assert.Equal(PolicyInspector.Format(PolicyInspector.DescribePod(before, "x/web")), PolicyInspector.Format(PolicyInspector.DescribePod(after, "x/web")));

        // Someone else's damage is healed by the periodic reread.
        pinned.IdentityNames.Delete(PolicyInspector.DescribePod(after, "x/web").Identity.Id);
        restarted.Sync(translator.Compute(store.Snapshot()), reread: true);
        Assert.Equal(new PolicyNamesResult(1, 0), restarted.Names);
    }

    [PrivilegedFact]
    public void ANamesMapTheKernelRefusesLeavesThePassGoodAndSaysWhy()
    {
        // pol_ep_names is sized like pol_endpoints: one entry holds x/web's isolation, not the
        // names of the node's three pods.
        using var dp = new PodDatapath(configure: o => o.PolicyEndpointsMax = 1);
        var syncer = new PolicyStage(dp.Loaded.DatapathMaps);
        var desired = new PolicyTranslator("node-1").Compute(Store().Snapshot());

        var result = syncer.Sync(desired);

        Assert.True(result.Writes > 0);
        Assert.Equal(0, syncer.FailedClosed);
        Assert.NotNull(syncer.Names.Error);
        Assert.Equal(PolicyStage.ToMapState(desired), PinnedDatapathMaps.ReadPolicy(dp.Loaded.Policy));
    }
}
