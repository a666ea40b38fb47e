using k8s.Models;

namespace EbpfProxy.Testing.Tests.KubeApi;

/// <summary>Small builders for the objects the tests store.</summary>
internal static class KubeApiTestObjects
{
    public static V1Service Service(string name, string ns = "default", IDictionary<string, string>? labels = null, string clusterIp = "10.96.0.10") => new()
    {
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns, Labels = labels },
        Spec = new V1ServiceSpec
        {
            ClusterIP = clusterIp,
            Type = "ClusterIP",
            Ports = [new V1ServicePort { Name = "http", Port = 80, Protocol = "TCP", TargetPort = 8080 }],
        },
    };

    public static V1EndpointSlice EndpointSlice(string name, string service, string ns = "default", params string[] addresses) => new()
    {
        Metadata = new V1ObjectMeta
        {
            Name = name,
            NamespaceProperty = ns,
            Labels = new Dictionary<string, string> { ["kubernetes.io/service-name"] = service },
        },
        AddressType = "IPv4",
        Endpoints = addresses.Select(a => new V1Endpoint { Addresses = [a], Conditions = new V1EndpointConditions { Ready = true } }).ToList(),
        Ports = [new Discoveryv1EndpointPort { Name = "http", Port = 8080, Protocol = "TCP" }],
    };

    public static V1NetworkPolicy NetworkPolicy(string name, string ns = "default") => new()
    {
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns },
        Spec = new V1NetworkPolicySpec
        {
            PodSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = "web" } },
            PolicyTypes = ["Ingress"],
            Ingress = [new V1NetworkPolicyIngressRule { Ports = [new V1NetworkPolicyPort { Port = 8080, Protocol = "TCP" }] }],
        },
    };

    public static V1Pod Pod(string name, string? node, string ns = "default", string? ip = null, IDictionary<string, string>? labels = null) => new()
    {
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns, Labels = labels },
        Spec = new V1PodSpec { NodeName = node, Containers = [new V1Container { Name = "c", Image = "busybox" }] },
        Status = new V1PodStatus { Phase = "Running", PodIP = ip },
    };

    public static V1Namespace Namespace(string name, IDictionary<string, string>? labels = null) => new()
    {
        Metadata = new V1ObjectMeta { Name = name, Labels = labels },
    };

    public static V1Node Node(string name, string internalIp) => new()
    {
        Metadata = new V1ObjectMeta { Name = name },
        Spec = new V1NodeSpec { PodCIDR = "10.244.0.0/24" },
        Status = new V1NodeStatus { Addresses = [new V1NodeAddress { Type = "InternalIP", Address = internalIp }] },
    };

    public static Dictionary<string, string> Labels(params string[] pairs) =>
        pairs.Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "");
}
