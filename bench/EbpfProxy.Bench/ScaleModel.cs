using EbpfProxy.Core.Cluster;
using k8s.Models;

namespace EbpfProxy.Bench;

/// <summary>Synthetic clusters of a given size: N services, each with one TCP port and M endpoints in one slice.</summary>
public static class ScaleModel
{
    public static V1Service Service(int i) => new()
    {
        ApiVersion = "v1",
        Kind = "Service",
        Metadata = new V1ObjectMeta { Name = $"svc-{i}", NamespaceProperty = $"ns-{i % 100}", ResourceVersion = "1" },
        Spec = new V1ServiceSpec
        {
            ClusterIP = $"10.{96 + i / 65536}.{i / 256 % 256}.{i % 256}",
            Ports = [new V1ServicePort { Name = "http", Port = 80, Protocol = "TCP" }],
        },
    };

    public static V1EndpointSlice Slice(int i, int endpoints, int generation = 1)
    {
        var eps = new List<V1Endpoint>(endpoints);
        for (int e = 0; e < endpoints; e++)
        {
            int n = (i * endpoints + e + generation * 7) % (250 * 250 * 250);
            eps.Add(new V1Endpoint
            {
                Addresses = [$"10.{100 + n / 62500}.{n / 250 % 250}.{n % 250 + 1}"],
                Conditions = new V1EndpointConditions { Ready = true },
                NodeName = $"node-{e % 50}",
            });
        }
        return new V1EndpointSlice
        {
            ApiVersion = "discovery.k8s.io/v1",
            Kind = "EndpointSlice",
            Metadata = new V1ObjectMeta
            {
                Name = $"svc-{i}-abc",
                NamespaceProperty = $"ns-{i % 100}",
                ResourceVersion = generation.ToString(),
                Labels = new Dictionary<string, string> { ["kubernetes.io/service-name"] = $"svc-{i}" },
            },
            AddressType = "IPv4",
            Ports = [new Discoveryv1EndpointPort { Name = "http", Port = 8080, Protocol = "TCP" }],
            Endpoints = eps,
        };
    }

    /// <summary>A pod the size of a typical one (labels, one container with a port, status with IPs and conditions).</summary>
    public static V1Pod Pod(int i, int endpointsPerService) => new()
    {
        ApiVersion = "v1",
        Kind = "Pod",
        Metadata = new V1ObjectMeta
        {
            Name = $"pod-{i}",
            NamespaceProperty = $"ns-{i / endpointsPerService % 100}",
            Labels = new Dictionary<string, string> { ["app"] = $"svc-{i / endpointsPerService}", ["pod-template-hash"] = "5d8f7c9b4" },
        },
        Spec = new V1PodSpec
        {
            NodeName = $"node-{i % 50}",
            Containers = [new V1Container { Name = "app", Image = "registry.example/app:1.2.3", Ports = [new V1ContainerPort { Name = "http", ContainerPort = 8080 }] }],
        },
        Status = new V1PodStatus
        {
            Phase = "Running",
            PodIP = $"10.{100 + i / 62500}.{i / 250 % 250}.{i % 250 + 1}",
            Conditions = [new V1PodCondition { Type = "Ready", Status = "True" }],
        },
    };

    public static ClusterStore Populate(int services, int endpointsPerService)
    {
        var store = new ClusterStore();
        store.ReplaceAll(
            Enumerable.Range(0, services).Select(Service),
            Enumerable.Range(0, services).Select(i => Slice(i, endpointsPerService)),
            []);
        return store;
    }
}
