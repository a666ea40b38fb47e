using k8s;
using k8s.Autorest;
using k8s.Models;

namespace EbpfProxy.Kubernetes.Api;

/// <summary>One page of a LIST: selectors, page size and the continue token of the previous page.</summary>
/// <param name="LabelSelector">Label selector, or null for every object.</param>
/// <param name="FieldSelector">Field selector, or null for every object.</param>
/// <param name="Limit">Page size (the API's <c>limit</c>).</param>
/// <param name="Continue">The previous page's continue token; null for the first page.</param>
public sealed record ListRequest(string? LabelSelector, string? FieldSelector, int Limit, string? Continue);

/// <summary>
/// A WATCH from a resource version. The watch function must pass <c>watch: true</c> and
/// <c>allowWatchBookmarks: true</c> (see <see cref="KubernetesResources"/>).
/// </summary>
/// <param name="LabelSelector">Label selector, or null for every object.</param>
/// <param name="FieldSelector">Field selector, or null for every object.</param>
/// <param name="ResourceVersion">Where to resume: the list's resource version or the last event's.</param>
/// <param name="TimeoutSeconds">Server-side timeout of this watch (the API's <c>timeoutSeconds</c>).</param>
public sealed record WatchRequest(string? LabelSelector, string? FieldSelector, string? ResourceVersion, int TimeoutSeconds);

/// <summary>Issues one LIST page through KubernetesClient.</summary>
public delegate Task<HttpOperationResponse<TList>> ListFunction<TList>(IKubernetes client, ListRequest request, CancellationToken cancellationToken);

/// <summary>Opens one WATCH through KubernetesClient (a list call with <c>watch: true</c>).</summary>
public delegate Task<HttpOperationResponse<TList>> WatchFunction<TList>(IKubernetes client, WatchRequest request, CancellationToken cancellationToken);

/// <summary>
/// How to list and watch one resource: its name (used for the store's source name, logs and
/// metric tags) and the two KubernetesClient calls.
/// </summary>
/// <param name="Resource">The API's plural resource name, e.g. "services".</param>
/// <param name="List">Lists one page.</param>
/// <param name="Watch">Opens a watch.</param>
public sealed record ResourceKind<T, TList>(string Resource, ListFunction<TList> List, WatchFunction<TList> Watch)
    where T : IKubernetesObject<V1ObjectMeta>
    where TList : IKubernetesObject<V1ListMeta>, IItems<T>;

/// <summary>The resources the proxy follows, as KubernetesClient calls. All namespaced ones across all namespaces.</summary>
public static class KubernetesResources
{
    /// <summary>v1 Services, all namespaces.</summary>
    public static ResourceKind<V1Service, V1ServiceList> Services { get; } = new(
        "services",
        (client, r, ct) => client.CoreV1.ListServiceForAllNamespacesWithHttpMessagesAsync(
            continueParameter: r.Continue, fieldSelector: r.FieldSelector, labelSelector: r.LabelSelector, limit: r.Limit,
            cancellationToken: ct),
        (client, r, ct) => client.CoreV1.ListServiceForAllNamespacesWithHttpMessagesAsync(
            allowWatchBookmarks: true, fieldSelector: r.FieldSelector, labelSelector: r.LabelSelector,
            resourceVersion: r.ResourceVersion, timeoutSeconds: r.TimeoutSeconds, watch: true, cancellationToken: ct));

    /// <summary>discovery.k8s.io/v1 EndpointSlices, all namespaces.</summary>
    public static ResourceKind<V1EndpointSlice, V1EndpointSliceList> EndpointSlices { get; } = new(
        "endpointslices",
        (client, r, ct) => client.DiscoveryV1.ListEndpointSliceForAllNamespacesWithHttpMessagesAsync(
            continueParameter: r.Continue, fieldSelector: r.FieldSelector, labelSelector: r.LabelSelector, limit: r.Limit,
            cancellationToken: ct),
        (client, r, ct) => client.DiscoveryV1.ListEndpointSliceForAllNamespacesWithHttpMessagesAsync(
            allowWatchBookmarks: true, fieldSelector: r.FieldSelector, labelSelector: r.LabelSelector,
            resourceVersion: r.ResourceVersion, timeoutSeconds: r.TimeoutSeconds, watch: true, cancellationToken: ct));

    /// <summary>networking.k8s.io/v1 NetworkPolicies, all namespaces.</summary>
    public static ResourceKind<V1NetworkPolicy, V1NetworkPolicyList> NetworkPolicies { get; } = new(
        "networkpolicies",
        (client, r, ct) => client.NetworkingV1.ListNetworkPolicyForAllNamespacesWithHttpMessagesAsync(
            continueParameter: r.Continue, fieldSelector: r.FieldSelector, labelSelector: r.LabelSelector, limit: r.Limit,
            cancellationToken: ct),
        (client, r, ct) => client.NetworkingV1.ListNetworkPolicyForAllNamespacesWithHttpMessagesAsync(
            allowWatchBookmarks: true, fieldSelector: r.FieldSelector, labelSelector: r.LabelSelector,
            resourceVersion: r.ResourceVersion, timeoutSeconds: r.TimeoutSeconds, watch: true, cancellationToken: ct));

    /// <summary>v1 Pods, all namespaces.</summary>
    public static ResourceKind<V1Pod, V1PodList> Pods { get; } = new(
        "pods",
        (client, r, ct) => client.CoreV1.ListPodForAllNamespacesWithHttpMessagesAsync(
            continueParameter: r.Continue, fieldSelector: r.FieldSelector, labelSelector: r.LabelSelector, limit: r.Limit,
            cancellationToken: ct),
        (client, r, ct) => client.CoreV1.ListPodForAllNamespacesWithHttpMessagesAsync(
            allowWatchBookmarks: true, fieldSelector: r.FieldSelector, labelSelector: r.LabelSelector,
            resourceVersion: r.ResourceVersion, timeoutSeconds: r.TimeoutSeconds, watch: true, cancellationToken: ct));

    /// <summary>v1 Namespaces (cluster-scoped).</summary>
    public static ResourceKind<V1Namespace, V1NamespaceList> Namespaces { get; } = new(
        "namespaces",
        (client, r, ct) => client.CoreV1.ListNamespaceWithHttpMessagesAsync(
            continueParameter: r.Continue, fieldSelector: r.FieldSelector, labelSelector: r.LabelSelector, limit: r.Limit,
            cancellationToken: ct),
        (client, r, ct) => client.CoreV1.ListNamespaceWithHttpMessagesAsync(
            allowWatchBookmarks: true, fieldSelector: r.FieldSelector, labelSelector: r.LabelSelector,
            resourceVersion: r.ResourceVersion, timeoutSeconds: r.TimeoutSeconds, watch: true, cancellationToken: ct));

    /// <summary>v1 Nodes (cluster-scoped); the source narrows it to this node with a field selector.</summary>
    public static ResourceKind<V1Node, V1NodeList> Nodes { get; } = new(
        "nodes",
        (client, r, ct) => client.CoreV1.ListNodeWithHttpMessagesAsync(
            continueParameter: r.Continue, fieldSelector: r.FieldSelector, labelSelector: r.LabelSelector, limit: r.Limit,
            cancellationToken: ct),
        (client, r, ct) => client.CoreV1.ListNodeWithHttpMessagesAsync(
            allowWatchBookmarks: true, fieldSelector: r.FieldSelector, labelSelector: r.LabelSelector,
            resourceVersion: r.ResourceVersion, timeoutSeconds: r.TimeoutSeconds, watch: true, cancellationToken: ct));
}
