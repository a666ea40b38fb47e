using k8s.Models;

namespace EbpfProxy.Testing.KubeApi;

/// <summary>
/// One resource type served by <see cref="FakeKubeApiServer"/>: its API group/version, plural (the path
/// segment), kind, scope and KubernetesClient model type.
/// </summary>
public sealed class KubeResource
{
    private KubeResource(string group, string version, string plural, string kind, bool namespaced, Type modelType, string[] fields)
    {
        Group = group;
        Version = version;
        Plural = plural;
        Kind = kind;
        Namespaced = namespaced;
        ModelType = modelType;
        SupportedFields = ["metadata.name", "metadata.namespace", .. fields];
    }

    /// <summary><c>v1</c> services.</summary>
    public static KubeResource Services { get; } = new("", "v1", "services", "Service", true, typeof(V1Service),
        ["spec.clusterIP", "spec.type"]);

    /// <summary><c>discovery.k8s.io/v1</c> endpointslices.</summary>
    public static KubeResource EndpointSlices { get; } = new("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true, typeof(V1EndpointSlice),
        ["addressType"]);

    /// <summary><c>networking.k8s.io/v1</c> networkpolicies.</summary>
    public static KubeResource NetworkPolicies { get; } = new("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, typeof(V1NetworkPolicy),
        []);

    /// <summary><c>v1</c> pods.</summary>
    public static KubeResource Pods { get; } = new("", "v1", "pods", "Pod", true, typeof(V1Pod),
        ["spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork",
         "status.phase", "status.podIP", "status.nominatedNodeName"]);

    /// <summary><c>v1</c> namespaces (cluster-scoped).</summary>
    public static KubeResource Namespaces { get; } = new("", "v1", "namespaces", "Namespace", false, typeof(V1Namespace),
        ["status.phase"]);

    /// <summary><c>v1</c> nodes (cluster-scoped).</summary>
    public static KubeResource Nodes { get; } = new("", "v1", "nodes", "Node", false, typeof(V1Node),
        ["spec.unschedulable"]);

    /// <summary>Every served resource.</summary>
    public static IReadOnlyList<KubeResource> All { get; } = [Services, EndpointSlices, NetworkPolicies, Pods, Namespaces, Nodes];

    /// <summary>API group; empty for the core group.</summary>
    public string Group { get; }

    /// <summary>API version within the group (<c>v1</c>).</summary>
    public string Version { get; }

    /// <summary>Plural resource name, the path segment (<c>services</c>).</summary>
    public string Plural { get; }

    /// <summary>Kind (<c>Service</c>); lists are <c>{Kind}List</c>.</summary>
    public string Kind { get; }

    /// <summary>True for namespaced resources, false for cluster-scoped ones (namespaces, nodes).</summary>
    public bool Namespaced { get; }

    /// <summary>The KubernetesClient model type (<see cref="V1Service"/>…).</summary>
    public Type ModelType { get; }

    /// <summary>Field selector keys accepted for this resource (others get 400, like the real server).</summary>
    public IReadOnlyList<string> SupportedFields { get; }

    /// <summary><c>v1</c> or <c>group/v1</c>.</summary>
    public string ApiVersion => Group.Length == 0 ? Version : $"{Group}/{Version}";

    /// <summary><c>{Kind}List</c>.</summary>
    public string ListKind => Kind + "List";

    /// <summary><c>/api/v1</c> or <c>/apis/group/v1</c>.</summary>
    public string PathPrefix => Group.Length == 0 ? $"/api/{Version}" : $"/apis/{Group}/{Version}";

    /// <summary>The resource for a model type, or null.</summary>
    public static KubeResource? ForModel(Type modelType) => All.FirstOrDefault(r => r.ModelType == modelType);

    /// <summary>The resource for a plural name (<c>services</c>) or kind (<c>Service</c>), case-insensitive; throws when unknown.</summary>
    public static KubeResource ForName(string name) =>
        All.FirstOrDefault(r => string.Equals(r.Plural, name, StringComparison.OrdinalIgnoreCase)
                                || string.Equals(r.Kind, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown resource '{name}'. Known: {string.Join(", ", All.Select(r => r.Plural))}.", nameof(name));

    internal static KubeResource? Find(string group, string version, string plural) =>
        All.FirstOrDefault(r => r.Group == group && r.Version == version && r.Plural == plural);

    /// <inheritdoc/>
    public override string ToString() => Group.Length == 0 ? Plural : $"{Plural}.{Group}";
}
