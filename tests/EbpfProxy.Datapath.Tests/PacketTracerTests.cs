using System.Net;
using EbpfProxy.Core.Model;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Tracing;
using EbpfProxy.Testing;
using EbpfProxy.Testing.Packets;

namespace EbpfProxy.Datapath.Tests;

/// <summary>`ebpf-proxy trace` runs the pinned program with a trace mark: decisions without state.</summary>
public class PacketTracerTests
{
    private static readonly string[] Three = ["10.244.0.11", "10.244.0.12", "10.244.0.13"];

    private static TraceResult Trace(PodDatapath dp, string dst, ushort dport, L4Protocol proto = L4Protocol.Tcp, ushort sport = 40000, TraceHook hook = TraceHook.FromPod, string src = "10.244.0.2") =>
        PacketTracer.Run(dp.Options.PinPath, new TraceRequest(IPAddress.Parse(src), sport, IPAddress.Parse(dst), dport, proto, hook));

    [PrivilegedFact]
    public void ANewFlowIsExplainedAndLeavesNoState()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Three));

        var r = Trace(dp, "10.96.0.42", 80);

        Assert.Equal("forward", r.Verdict);
        Assert.Equal("service_new", r.Reason);
        Assert.Equal("10.96.0.42:80/TCP", r.Frontend);
        Assert.Equal("default/echo:http", r.Service);
        Assert.Equal(Three.Select(b => $"{b}:8080").Order(), r.EligibleBackends.Select(b => b.Address).Order());
        Assert.NotNull(r.ChosenBackend);
        Assert.Contains(r.ChosenBackend!.Address, r.EligibleBackends.Select(b => b.Address));
        Assert.Equal($"DNAT 10.96.0.42:80 -> {r.ChosenBackend.Address}", r.Nat);
        Assert.Empty(dp.Maps.Ct4.Entries());
        Assert.Equal(0UL, dp.Counter(Reason.ForwardServiceNew, MetricsDirection.Ingress));
    }

    [PrivilegedFact]
    public void ATracedPacketGoesOnThroughTheLocalBackendsToPodAndNamesTheLayerThatDropsIt()
    {
        // Issue 10 item 7: the chosen backend is a pod on this node whose ingress policy does not
        // admit the client; the trace used to end at from_pod with "forward".
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(["10.244.0.11"]));
        var backend = IPAddress.Parse("10.244.0.11");
        var client = IPAddress.Parse("10.244.0.2");
        var policy = new Sync.PolicyStage(dp.Loaded.DatapathMaps);
        policy.Apply(new Core.Policy.PolicyState
        {
            Ipcache = new Dictionary<IPNetwork, uint> { [new IPNetwork(client, 32)] = 300 },
            Endpoints = new Dictionary<IPAddress, Core.Policy.EndpointEntry> { [backend] = new(5, 301, Core.Policy.PolicyIsolation.Ingress) },
        });

        var r = Trace(dp, "10.96.0.42", 80);
        Assert.Equal(("forward", "service_new"), (r.Verdict, r.Reason)); // from_pod alone
        Assert.NotNull(r.Delivery);
        Assert.Equal((TraceHook.ToPod, backend, (ushort)8080), (r.Delivery!.Request.Hook, r.Delivery.Request.Destination, r.Delivery.Request.DestinationPort));
        Assert.Equal(("DROP", "policy_ingress_denied"), (r.FinalVerdict, r.FinalReason));
        Assert.Equal(["service translation", "egress policy", "ingress policy"], r.Layers.Select(l => l.Name));
        Assert.Equal("ingress policy", r.DecidedBy?.Name);
        Assert.Equal(PolicyVerdict.Deny, r.Delivery.Policy?.Verdict);
        var text = TraceText.Format(r);
        Assert.Contains("verdict   DROP (policy_ingress_denied)", text, StringComparison.Ordinal);
        Assert.Contains("decided   by the ingress policy (to_pod of", text, StringComparison.Ordinal);
        Assert.Empty(dp.Maps.Ct4.Entries()); // both runs left no state

        // Admitted: the same path delivers, and no layer decided against it.
        policy.Apply(new Core.Policy.PolicyState
        {
            Ipcache = new Dictionary<IPNetwork, uint> { [new IPNetwork(client, 32)] = 300 },
            Endpoints = new Dictionary<IPAddress, Core.Policy.EndpointEntry> { [backend] = new(5, 301, Core.Policy.PolicyIsolation.None) },
        });
        var admitted = Trace(dp, "10.96.0.42", 80);
        Assert.NotNull(admitted.Delivery);
        Assert.Equal(("forward", "service_new"), (admitted.FinalVerdict, admitted.FinalReason));
        Assert.Null(admitted.DecidedBy);

        // A destination that is no local pod is not traced further.
        Assert.Null(Trace(dp, "10.244.1.9", 80).Delivery);
    }

    [PrivilegedFact]
    public void RejectsAndDropsAreExplained()
    {
        using var dp = new PodDatapath("10.96.0.0/12");
        dp.Apply(PodDatapath.EchoService([]));

        var none = Trace(dp, "10.96.0.42", 80, L4Protocol.Udp);
        Assert.Equal(("REJECT", "reject_no_endpoint"), (none.Verdict, none.Reason));
        Assert.Equal("default/echo:udp", none.Service);
        Assert.Empty(none.EligibleBackends);

        var port = Trace(dp, "10.96.0.42", 443);
        Assert.Equal(("REJECT", "reject_undefined_port"), (port.Verdict, port.Reason));
        Assert.Contains(port.Notes, n => n.Contains("no service defines port 443/TCP", StringComparison.Ordinal));

        var unallocated = Trace(dp, "10.96.9.9", 80);
        Assert.Equal(("DROP", "unallocated_service_ip"), (unallocated.Verdict, unallocated.Reason));
        Assert.True(unallocated.Drop);

        var podToPod = Trace(dp, "10.244.0.12", 8080);
        Assert.Equal(("forward", "not_service", null), (podToPod.Verdict, podToPod.Reason, podToPod.Nat));
    }

    private const string Policies = """
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: default}
        spec:
          type: LoadBalancer
          clusterIP: 10.96.4.2
          externalTrafficPolicy: Local
          internalTrafficPolicy: Local
          externalIPs: [203.0.113.7]
          ports: [{port: 443, nodePort: 30443, protocol: TCP}]
        status:
          loadBalancer:
            ingress: [{ip: 198.51.100.1}, {ip: 198.51.100.2, ipMode: Proxy}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
        addressType: IPv4
        ports: [{port: 8443, protocol: TCP}]
        endpoints:
        - {addresses: [10.244.5.1], nodeName: node-1}
        - {addresses: [10.244.5.2], nodeName: node-2}
        """;

    [PrivilegedFact]
    public void PodsReachNodePortExternalAndLoadBalancerFrontendsThroughTheClusterWideSet()
    {
        using var dp = new PodDatapath();
        dp.Apply(Policies, "node-1", "192.168.1.10");
        var both = new[] { "10.244.5.1:8443", "10.244.5.2:8443" };

        // eTP Local does not apply to pods: the cluster-wide set (kube-proxy's short-circuit).
        foreach (var (dst, port) in new[] { ("192.168.1.10", (ushort)30443), ("203.0.113.7", (ushort)443), ("198.51.100.1", (ushort)443) })
        {
            var r = Trace(dp, dst, port);
            Assert.Equal(("forward", "service_new"), (r.Verdict, r.Reason));
            Assert.Equal(both, r.EligibleBackends.Select(b => b.Address).Order());
        }
        // The program itself picks from both (not only from the external scope's local set).
        var chosen = new HashSet<IPAddress>();
        for (ushort sport = 20000; sport < 20060; sport++)
            chosen.Add(Packet.Parse(dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, sport, IPAddress.Parse("192.168.1.10"), 30443)).Packet).Destination!);
        Assert.Equal(["10.244.5.1", "10.244.5.2"], chosen.Select(a => a.ToString()).Order());
        // ipMode Proxy: no frontend.
        Assert.Equal("not_service", Trace(dp, "198.51.100.2", 443).Reason);
        // iTP Local narrows the ClusterIP to this node's endpoint, for every source.
        var clusterIp = Trace(dp, "10.96.4.2", 443);
        Assert.Equal(["10.244.5.1:8443"], clusterIp.EligibleBackends.Select(b => b.Address));
    }

    [PrivilegedFact]
    public void ALocalPolicyWithoutLocalEndpointDropsWhileNoEndpointAtAllRejects()
    {
        using var dp = new PodDatapath();
        dp.Apply(Policies.Replace("nodeName: node-1", "nodeName: node-3"), "node-1", "192.168.1.10");
        var drop = Trace(dp, "10.96.4.2", 443);
        Assert.Equal(("DROP", "no_local_endpoint"), (drop.Verdict, drop.Reason));
        var (verdict, _) = dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, 1000, IPAddress.Parse("10.96.4.2"), 443));
        Assert.Equal(PodDatapath.TcActShot, verdict);
        // Pods still reach the NodePort's cluster-wide set.
        Assert.Equal("forward", Trace(dp, "192.168.1.10", 30443).Verdict);

        dp.Apply(Policies[..Policies.IndexOf("---", StringComparison.Ordinal)], "node-1", "192.168.1.10");
        Assert.Equal(("REJECT", "reject_no_endpoint"), (Trace(dp, "10.96.4.2", 443).Verdict, Trace(dp, "10.96.4.2", 443).Reason));
    }

    [PrivilegedFact]
    public void AnEstablishedFlowAndItsReplyAreExplained()
    {
        using var dp = new PodDatapath();
        dp.Apply(PodDatapath.EchoService(Three));
        var real = dp.FromPod(PacketBuilder.Tcp(PodDatapath.Client, 41000, PodDatapath.Vip, 80));
        var backend = Packet.Parse(real.Packet).Destination!;

        var again = Trace(dp, "10.96.0.42", 80, sport: 41000);
        Assert.Equal("service_established", again.Reason);
        Assert.Equal($"{backend}:8080", again.ChosenBackend!.Address);
        Assert.Contains(again.Notes, n => n.Contains("conntrack", StringComparison.Ordinal));

        var reply = Trace(dp, "10.244.0.2", 41000, sport: 8080, hook: TraceHook.ToPod, src: backend.ToString());
        Assert.Equal(("forward", "reverse_nat"), (reply.Verdict, reply.Reason));
        Assert.Equal($"SNAT {backend}:8080 -> 10.96.0.42:80", reply.Nat);
        Assert.Equal("default/echo:http", reply.Service);
    }
}
