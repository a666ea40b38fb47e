using System.Text.Json.Nodes;
using EbpfProxy.Kubernetes.Manifests;
using k8s;
using k8s.Models;
using static EbpfProxy.Kubernetes.Tests.K8s;

namespace EbpfProxy.Kubernetes.Tests;

public class EndpointSliceSynthesizerTests
{
    private static readonly Dictionary<string, string> EchoSelector = Labels("app=echo");

    private static V1Service Echo() => Service("echo", EchoSelector,
        Port("http", 80, 8080, "TCP"),
        Port("udp", 80, 8081, "UDP"));

    private static IReadOnlyList<V1EndpointSlice> Synthesize(V1Service service, params V1Pod[] pods) =>
        EndpointSliceSynthesizer.Synthesize([service], [], pods);

    private static List<string> PodNames(V1EndpointSlice slice) =>
        slice.Endpoints.Select(e => e.TargetRef.Name).ToList();

    [Fact]
    public void Selected_pods_become_one_slice_exactly_as_the_controller_writes_it()
    {
        var slices = Synthesize(Echo(),
            Pod("echo-1", "10.244.0.11"),
            Pod("echo-2", "10.244.0.12"),
            Pod("echo-3", "10.244.0.13", node: "node-2"));

        var slice = Assert.Single(slices);
        const string expected = """
        {
          "apiVersion": "discovery.k8s.io/v1",
          "kind": "EndpointSlice",
          "metadata": {
            "name": "echo-derived-1",
            "namespace": "default",
            "labels": {
              "endpointslice.kubernetes.io/managed-by": "ebpf-proxy-manifests",
              "kubernetes.io/service-name": "echo"
            }
          },
          "addressType": "IPv4",
          "ports": [
            { "name": "http", "port": 8080, "protocol": "TCP" },
            { "name": "udp", "port": 8081, "protocol": "UDP" }
          ],
          "endpoints": [
            {
              "addresses": ["10.244.0.11"],
              "conditions": { "ready": true, "serving": true, "terminating": false },
              "nodeName": "node-1",
              "targetRef": { "kind": "Pod", "namespace": "default", "name": "echo-1", "uid": "uid-echo-1" }
            },
            {
              "addresses": ["10.244.0.12"],
              "conditions": { "ready": true, "serving": true, "terminating": false },
              "nodeName": "node-1",
              "targetRef": { "kind": "Pod", "namespace": "default", "name": "echo-2", "uid": "uid-echo-2" }
            },
            {
              "addresses": ["10.244.0.13"],
              "conditions": { "ready": true, "serving": true, "terminating": false },
              "nodeName": "node-2",
              "targetRef": { "kind": "Pod", "namespace": "default", "name": "echo-3", "uid": "uid-echo-3" }
            }
          ]
        }
        """;
        var actual = KubernetesJson.Serialize(slice);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expected), JsonNode.Parse(actual)), $"got {actual}");
    }

    [Fact]
    public void Pods_that_do_not_carry_every_selector_label_are_left_out()
    {
        var service = Service("echo", Labels("app=echo", "tier=web"), Port("http", 80));
        var slices = Synthesize(service,
            Pod("both", "10.244.0.1", labels: "app=echo,tier=web,extra=1"),
            Pod("app-only", "10.244.0.2", labels: "app=echo"),
            Pod("wrong-value", "10.244.0.3", labels: "app=echo,tier=db"),
            Pod("unlabelled", "10.244.0.4", labels: "x=y"));

        Assert.Equal(["both"], PodNames(Assert.Single(slices)));
    }

    [Fact]
    public void No_matching_pod_gives_the_controller_s_empty_placeholder_slice()
    {
        var slice = Assert.Single(Synthesize(Echo(), Pod("other", "10.244.0.1", labels: "app=other")));

        Assert.Equal("echo-derived-1", slice.Metadata.Name);
        Assert.Equal("IPv4", slice.AddressType);
        Assert.Empty(slice.Endpoints);
        Assert.Empty(slice.Ports);
    }

    [Fact]
    public void Pods_of_other_namespaces_are_ignored()
    {
        var elsewhere = Pod("echo-x", "10.244.9.9");
        elsewhere.Metadata.NamespaceProperty = "other";

        var slices = Synthesize(Echo(), Pod("echo-1", "10.244.0.11"), elsewhere);

        Assert.Equal(["echo-1"], PodNames(Assert.Single(slices)));
    }

    [Fact]
    public void Pods_without_an_ip_or_finished_are_skipped()
    {
        var succeeded = Pod("done", "10.244.0.3");
        succeeded.Status.Phase = "Succeeded";
        var failed = Pod("failed", "10.244.0.4");
        failed.Status.Phase = "Failed";
        var pending = Pod("pending", null);
        pending.Status.Phase = "Pending";

        var slices = Synthesize(Echo(), Pod("running", "10.244.0.1"), succeeded, failed, pending);

        Assert.Equal(["running"], PodNames(Assert.Single(slices)));
    }

    [Fact]
    public void Pod_ips_list_is_preferred_and_pod_ip_alone_is_enough()
    {
        var listed = Pod("listed", null);
        listed.Status.PodIPs = [new V1PodIP { Ip = "10.244.0.7" }];

        var endpoints = Assert.Single(Synthesize(Echo(), listed, Pod("single", "10.244.0.8"))).Endpoints;

        Assert.Equal(["10.244.0.7"], endpoints[0].Addresses);
        Assert.Equal(["10.244.0.8"], endpoints[1].Addresses);
    }

    [Fact]
    public void Not_ready_pod_is_neither_ready_nor_serving()
    {
        var endpoint = Assert.Single(Assert.Single(Synthesize(Echo(), Pod("slow", "10.244.0.1", ready: false))).Endpoints);

        Assert.Equal(new V1EndpointConditions { Ready = false, Serving = false, Terminating = false }, endpoint.Conditions);
    }

    [Fact]
    public void Pod_without_conditions_is_not_ready()
    {
        var pod = Pod("new", "10.244.0.1");
        pod.Status.Conditions = null;

        var endpoint = Assert.Single(Assert.Single(Synthesize(Echo(), pod)).Endpoints);

        Assert.False(endpoint.Conditions.Ready);
        Assert.False(endpoint.Conditions.Serving);
    }

    [Fact]
    public void Terminating_pods_stay_with_serving_from_readiness_and_ready_false()
    {
        var stillReady = Pod("a-draining", "10.244.0.1");
        stillReady.Metadata.DeletionTimestamp = new DateTime(2025, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        var notReady = Pod("b-dying", "10.244.0.2", ready: false);
        notReady.Metadata.DeletionTimestamp = new DateTime(2025, 1, 1, 0, 0, 0, DateTimeKind.Utc);

        var endpoints = Assert.Single(Synthesize(Echo(), stillReady, notReady)).Endpoints;

        Assert.Equal(new V1EndpointConditions { Ready = false, Serving = true, Terminating = true }, endpoints[0].Conditions);
        Assert.Equal(new V1EndpointConditions { Ready = false, Serving = false, Terminating = true }, endpoints[1].Conditions);
    }

    [Fact]
    public void Publish_not_ready_addresses_makes_every_endpoint_ready()
    {
        var service = Echo();
        service.Spec.PublishNotReadyAddresses = true;
        var terminating = Pod("b", "10.244.0.2", ready: false);
        terminating.Metadata.DeletionTimestamp = DateTime.UtcNow;

        var endpoints = Assert.Single(Synthesize(service, Pod("a", "10.244.0.1", ready: false), terminating)).Endpoints;

        Assert.All(endpoints, e => Assert.True(e.Conditions.Ready));
        Assert.All(endpoints, e => Assert.False(e.Conditions.Serving));
    }

    [Fact]
    public void Named_target_port_resolves_by_name_and_protocol()
    {
        var service = Service("dns", Labels("app=dns"),
            Port("dns", 53, "dns", "UDP"),
            Port("dns-tcp", 53, "dns", "TCP"));
        var pod = Pod("dns-1", "10.244.0.53", labels: "app=dns").WithPorts(
            ContainerPort("dns", 5353),            // protocol unset means TCP
            ContainerPort("dns", 1053, "UDP"));

        var ports = Assert.Single(EndpointSliceSynthesizer.Synthesize([service], [], [pod])).Ports;

        Assert.Equal(
            [("dns", 1053, "UDP"), ("dns-tcp", 5353, "TCP")],
            ports.Select(p => (p.Name, p.Port!.Value, p.Protocol)).ToList());
    }

    [Fact]
    public void Named_target_port_also_resolves_on_sidecar_init_containers_only()
    {
        var service = Service("proxy", Labels("app=p"), Port("admin", 9000, "admin"));
        var sidecar = Pod("with-sidecar", "10.244.0.1", labels: "app=p");
        sidecar.Spec.InitContainers = [new V1Container { Name = "s", RestartPolicy = "Always", Ports = [ContainerPort("admin", 9901)] }];
        var plainInit = Pod("with-init", "10.244.0.2", labels: "app=p");
        plainInit.Spec.InitContainers = [new V1Container { Name = "i", Ports = [ContainerPort("admin", 9902)] }];

        var slices = EndpointSliceSynthesizer.Synthesize([service], [], [sidecar, plainInit]);

        // Groups come in the order of their first pod: "with-init" sorts first.
        Assert.Equal(2, slices.Count);
        Assert.Equal(["with-init"], PodNames(slices[0]));
        Assert.Empty(slices[0].Ports);
        Assert.Equal(["with-sidecar"], PodNames(slices[1]));
        Assert.Equal(9901, Assert.Single(slices[1].Ports).Port);
    }

    [Fact]
    public void Unresolvable_named_port_is_left_out_of_that_pods_port_set()
    {
        var service = Service("web", Labels("app=web"),
            Port("http", 80, "web"),
            Port("metrics", 9090, 9090));
        var named = Pod("a-named", "10.244.0.1", labels: "app=web").WithPorts(ContainerPort("web", 8080));
        var unnamed = Pod("b-unnamed", "10.244.0.2", labels: "app=web");

        var slices = EndpointSliceSynthesizer.Synthesize([service], [], [unnamed, named]);

        Assert.Equal(2, slices.Count);
        Assert.Equal(["a-named"], PodNames(slices[0]));
        Assert.Equal([("http", 8080), ("metrics", 9090)], slices[0].Ports.Select(p => (p.Name, p.Port!.Value)).ToList());
        Assert.Equal(["b-unnamed"], PodNames(slices[1]));
        Assert.Equal([("metrics", 9090)], slices[1].Ports.Select(p => (p.Name, p.Port!.Value)).ToList());
    }

    [Fact]
    public void Pods_with_different_named_port_numbers_get_one_slice_each_port_set()
    {
        var service = Service("web", Labels("app=web"), Port("http", 80, "web"));
        var slices = EndpointSliceSynthesizer.Synthesize([service], [],
        [
            Pod("web-b", "10.244.0.2", labels: "app=web").WithPorts(ContainerPort("web", 9090)),
            Pod("web-a", "10.244.0.1", labels: "app=web").WithPorts(ContainerPort("web", 8080)),
            Pod("web-c", "10.244.0.3", labels: "app=web").WithPorts(ContainerPort("web", 8080)),
        ]);

        Assert.Equal(["web-derived-1", "web-derived-2"], slices.Select(s => s.Metadata.Name).ToList());
        Assert.Equal(8080, Assert.Single(slices[0].Ports).Port);
        Assert.Equal(["web-a", "web-c"], PodNames(slices[0]));
        Assert.Equal(9090, Assert.Single(slices[1].Ports).Port);
        Assert.Equal(["web-b"], PodNames(slices[1]));
    }

    [Fact]
    public void Missing_or_zero_target_port_means_the_service_port_and_protocol_defaults_to_tcp()
    {
        var service = Service("plain", Labels("app=echo"), Port("a", 80, protocol: null), Port("b", 81, 0));

        var ports = Assert.Single(Synthesize(service, Pod("p", "10.244.0.1"))).Ports;

        Assert.Equal([("a", 80, "TCP"), ("b", 81, "TCP")], ports.Select(p => (p.Name, p.Port!.Value, p.Protocol)).ToList());
    }

    [Fact]
    public void Unnamed_single_port_gets_an_empty_name_and_app_protocol_is_copied()
    {
        var service = Service("one", Labels("app=echo"), Port(null, 80, 8080));
        service.Spec.Ports[0].AppProtocol = "http";

        var port = Assert.Single(Assert.Single(Synthesize(service, Pod("p", "10.244.0.1"))).Ports);

        Assert.Equal("", port.Name);
        Assert.Equal("http", port.AppProtocol);
    }

    [Fact]
    public void An_explicit_slice_for_the_service_stops_synthesis_for_that_service_only()
    {
        var explicitSlice = new V1EndpointSlice
        {
            Metadata = new V1ObjectMeta
            {
                Name = "echo-manual",
                NamespaceProperty = "default",
                Labels = Labels("kubernetes.io/service-name=echo"),
            },
            AddressType = "IPv4",
            Endpoints = [],
        };
        var other = Service("other", Labels("app=echo"), Port("http", 80));

        var slices = EndpointSliceSynthesizer.Synthesize([Echo(), other], [explicitSlice], [Pod("echo-1", "10.244.0.11")]);

        Assert.Equal("other", Assert.Single(slices).Metadata.Labels["kubernetes.io/service-name"]);
    }

    [Fact]
    public void An_explicit_slice_in_another_namespace_does_not_count()
    {
        var elsewhere = new V1EndpointSlice
        {
            Metadata = new V1ObjectMeta { Name = "echo-x", NamespaceProperty = "other", Labels = Labels("kubernetes.io/service-name=echo") },
            AddressType = "IPv4",
            Endpoints = [],
        };

        var slices = EndpointSliceSynthesizer.Synthesize([Echo()], [elsewhere], [Pod("echo-1", "10.244.0.11")]);

        Assert.Equal(["echo-1"], PodNames(Assert.Single(slices)));
    }

    [Fact]
    public void Services_without_selector_and_external_name_services_get_nothing()
    {
        var selectorless = Service("manual", null, Port("http", 80));
        var emptySelector = Service("empty", new Dictionary<string, string>(), Port("http", 80));
        var externalName = Service("ext", Labels("app=echo"));
        externalName.Spec.Type = "ExternalName";
        externalName.Spec.ExternalName = "example.com";

        var slices = EndpointSliceSynthesizer.Synthesize([selectorless, emptySelector, externalName], [], [Pod("echo-1", "10.244.0.11")]);

        Assert.Empty(slices);
    }

    [Fact]
    public void Output_is_identical_whatever_the_input_order()
    {
        V1Pod[] Pods() =>
        [
            Pod("echo-10", "10.244.0.20"),
            Pod("echo-2", "10.244.0.12"),
            Pod("echo-1", "10.244.0.11", ready: false),
            Pod("echo-3", "10.244.0.13"),
        ];
        var forward = Synthesize(Echo(), Pods());
        var backward = Synthesize(Echo(), Pods().Reverse().ToArray());

        Assert.Equal(KubernetesJson.Serialize(forward), KubernetesJson.Serialize(backward));
        Assert.Equal(["echo-1", "echo-10", "echo-2", "echo-3"], PodNames(Assert.Single(forward)));
    }

    [Fact]
    public void Dual_stack_service_gets_an_ipv6_slice_single_stack_does_not()
    {
        V1Pod DualPod()
        {
            var pod = Pod("echo-1", "10.244.0.11");
            pod.Status.PodIPs = [new V1PodIP { Ip = "10.244.0.11" }, new V1PodIP { Ip = "fd00:10:244::b" }];
            return pod;
        }
        var dual = Echo();
        dual.Spec.IpFamilies = ["IPv6", "IPv4"];

        var dualSlices = Synthesize(dual, DualPod());
        var singleSlices = Synthesize(Echo(), DualPod());

        Assert.Equal([("IPv4", "10.244.0.11"), ("IPv6", "fd00:10:244::b")],
            dualSlices.Select(s => (s.AddressType, Assert.Single(Assert.Single(s.Endpoints).Addresses))).ToList());
        Assert.Equal(["echo-derived-1", "echo-derived-2"], dualSlices.Select(s => s.Metadata.Name).ToList());
        Assert.Equal("IPv4", Assert.Single(singleSlices).AddressType);
    }

    [Fact]
    public void Ipv6_cluster_ip_without_ip_families_means_ipv6()
    {
        var service = Echo();
        service.Spec.ClusterIP = "fd00:96::2a";
        var pod = Pod("echo-1", "fd00:10:244::b");

        var slice = Assert.Single(Synthesize(service, pod));

        Assert.Equal("IPv6", slice.AddressType);
        Assert.Equal(["fd00:10:244::b"], Assert.Single(slice.Endpoints).Addresses);
    }

    [Fact]
    public void More_than_a_hundred_endpoints_are_split_across_slices()
    {
        var pods = Enumerable.Range(0, 150).Select(i => Pod($"echo-{i:D3}", $"10.244.{i / 200}.{i % 200 + 1}")).ToArray();

        var slices = Synthesize(Echo(), pods);

        Assert.Equal([100, 50], slices.Select(s => s.Endpoints.Count).ToList());
        Assert.Equal("echo-000", slices[0].Endpoints[0].TargetRef.Name);
        Assert.Equal("echo-100", slices[1].Endpoints[0].TargetRef.Name);
    }

    [Fact]
    public void Service_labels_are_copied_and_headless_services_are_labelled()
    {
        var service = Service("db", Labels("app=db"), Port("pg", 5432));
        service.Spec.ClusterIP = "None";
        service.Metadata.Labels = Labels("team=data", "kubernetes.io/service-name=spoofed", "service.kubernetes.io/service-proxy-name=other");
        var pod = Pod("db-0", "10.244.0.5", labels: "app=db");
        pod.Spec.Hostname = "db-0";
        pod.Spec.Subdomain = "db";

        var slice = Assert.Single(EndpointSliceSynthesizer.Synthesize([service], [], [pod]));

        Assert.Equal(
            Labels("endpointslice.kubernetes.io/managed-by=ebpf-proxy-manifests", "kubernetes.io/service-name=db",
                "service.kubernetes.io/headless=", "service.kubernetes.io/service-proxy-name=other", "team=data"),
            slice.Metadata.Labels);
        Assert.Equal("db-0", Assert.Single(slice.Endpoints).Hostname);
    }
}
