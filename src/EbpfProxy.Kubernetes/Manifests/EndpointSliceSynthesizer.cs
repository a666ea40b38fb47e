using System.Net.Sockets;
using k8s.Models;

namespace EbpfProxy.Kubernetes.Manifests;

/// <summary>
/// Derives the EndpointSlices the Kubernetes EndpointSlice controller would publish for a Service
/// with a selector, from the Pods of the manifest directory. Pure: no I/O, no clock; identical
/// input gives identical output (pods are taken in name order).
/// </summary>
/// <remarks>
/// Follows <c>k8s.io/endpointslice</c> (reconciler.go, utils.go, util/controller_utils.go):
/// <list type="bullet">
/// <item>Pods of the service's namespace whose labels contain every selector pair; pods in phase
/// Succeeded or Failed and pods without an IP are left out; terminating pods (deletionTimestamp
/// set) stay in.</item>
/// <item>Conditions: serving = Ready condition True; terminating = deletionTimestamp set;
/// ready = publishNotReadyAddresses, or serving and not terminating.</item>
/// <item>Ports: one per service port, named as the service port (empty when unnamed), with its
/// protocol (TCP when unset) and appProtocol; the number is the targetPort, a named targetPort
/// resolved against the pod's container ports (and sidecar init containers) by name and
/// protocol. A port that does not resolve is left out of that pod's port set; pods are grouped by
/// port set, one slice (per 100 endpoints) per group.</item>
/// <item>Address types from spec.ipFamilies. One placeholder slice with no ports and no endpoints
/// when a family has no endpoint at all.</item>
/// <item>Labels: the service's own labels, <c>kubernetes.io/service-name</c>,
/// <c>endpointslice.kubernetes.io/managed-by: ebpf-proxy-manifests</c>, and
/// <c>service.kubernetes.io/headless</c> for clusterIP None.</item>
/// </list>
/// Differences, because a manifest directory is not an API server: pods list addresses in
/// status.podIPs or, when that is empty, status.podIP (the API server fills both); without
/// spec.ipFamilies the family comes from the clusterIP(s), and is IPv4 when there is none (the
/// controller would assume dual-stack for headless services); pods on nodes the directory has no
/// Node object for are not dropped; ExternalName services get nothing. Zones: an endpoint gets
/// the <c>topology.kubernetes.io/zone</c> label of its pod's Node when the directory has that
/// Node, and for a service with trafficDistribution PreferClose (or PreferSameZone) each endpoint
/// is hinted for its own zone, as the controller does for trafficDistribution, when every
/// endpoint has a zone. The proportional hints of <c>topology-mode: Auto</c> are not derived.
/// </remarks>
public static class EndpointSliceSynthesizer
{
    private const string ZoneLabel = "topology.kubernetes.io/zone";
    public const string ServiceNameLabel = "kubernetes.io/service-name";
    public const string ManagedByLabel = "endpointslice.kubernetes.io/managed-by";
    public const string ManagedByValue = "ebpf-proxy-manifests";
    public const string HeadlessLabel = "service.kubernetes.io/headless";

    /// <summary>The controller's default --max-endpoints-per-slice.</summary>
    public const int MaxEndpointsPerSlice = 100;

    private const string IPv4 = "IPv4";
    private const string IPv6 = "IPv6";

    /// <summary>
    /// Slices for every service that has a selector and no explicit EndpointSlice labelled
    /// <c>kubernetes.io/service-name</c> with its name in its namespace. Returns only the derived
    /// slices, ordered by service key.
    /// </summary>
    public static IReadOnlyList<V1EndpointSlice> Synthesize(
        IEnumerable<V1Service> services,
        IEnumerable<V1EndpointSlice> explicitSlices,
        IEnumerable<V1Pod> pods) => Synthesize(services, explicitSlices, pods, nodes: []);

    /// <summary>As <see cref="Synthesize(IEnumerable{V1Service}, IEnumerable{V1EndpointSlice}, IEnumerable{V1Pod})"/>, with the directory's Nodes for zones.</summary>
    public static IReadOnlyList<V1EndpointSlice> Synthesize(
        IEnumerable<V1Service> services,
        IEnumerable<V1EndpointSlice> explicitSlices,
        IEnumerable<V1Pod> pods,
        IEnumerable<V1Node> nodes)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        var zones = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var node in nodes)
        {
            if (node?.Metadata?.Name is { } name && node.Metadata.Labels?.TryGetValue(ZoneLabel, out var zone) == true && !string.IsNullOrEmpty(zone))
                zones[name] = zone;
        }
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(explicitSlices);
        ArgumentNullException.ThrowIfNull(pods);

        var covered = new HashSet<(string, string)>();
        foreach (var slice in explicitSlices)
        {
            if (slice.Metadata?.Labels?.TryGetValue(ServiceNameLabel, out var serviceName) == true)
                covered.Add((NamespaceOf(slice.Metadata), serviceName));
        }

        var podsByNamespace = pods
            .Where(pod => pod?.Metadata is not null)
            .GroupBy(pod => NamespaceOf(pod.Metadata), StringComparer.Ordinal)
            .ToDictionary(group => group.Key, group => group.ToList(), StringComparer.Ordinal);

        var result = new List<V1EndpointSlice>();
        foreach (var service in services
                     .Where(service => service?.Metadata?.Name is not null)
                     .OrderBy(service => NamespaceOf(service.Metadata), StringComparer.Ordinal)
                     .ThenBy(service => service.Metadata.Name, StringComparer.Ordinal))
        {
            var key = (NamespaceOf(service.Metadata), service.Metadata.Name);
            if (covered.Contains(key))
                continue;
            result.AddRange(ForService(service, podsByNamespace.GetValueOrDefault(key.Item1) ?? [], zones));
        }
        return result;
    }

    /// <summary>
    /// The slices for one service, whatever explicit slices exist. Empty for services without a
    /// selector and for ExternalName services.
    /// </summary>
    public static IReadOnlyList<V1EndpointSlice> ForService(V1Service service, IEnumerable<V1Pod> pods) =>
        ForService(service, pods, new Dictionary<string, string>());

    private static IReadOnlyList<V1EndpointSlice> ForService(V1Service service, IEnumerable<V1Pod> pods, IReadOnlyDictionary<string, string> zones)
    {
        ArgumentNullException.ThrowIfNull(service);
        ArgumentNullException.ThrowIfNull(pods);

        var spec = service.Spec;
        if (spec?.Selector is not { Count: > 0 } selector || spec.Type == "ExternalName" || service.Metadata?.Name is null)
            return [];

        var serviceNamespace = NamespaceOf(service.Metadata);
        var selected = pods
            .Where(pod => pod?.Metadata?.Name is not null
                && NamespaceOf(pod.Metadata) == serviceNamespace
                && Matches(selector, pod.Metadata.Labels)
                && ShouldBeInEndpoints(pod))
            .OrderBy(pod => pod.Metadata.Name, StringComparer.Ordinal)
            .ToList();

        var slices = new List<V1EndpointSlice>();
        foreach (var addressType in AddressTypes(spec))
        {
            // Groups in order of their first pod, so the usual single group is always "-1".
            var groups = new List<PortGroup>();
            foreach (var pod in selected)
            {
                var addresses = Addresses(pod.Status, addressType);
                if (addresses.Count == 0)
                    continue;
                var ports = EndpointPorts(service, pod);
                var portKey = PortKey(ports);
                var group = groups.Find(g => g.Key == portKey);
                if (group is null)
                {
                    group = new PortGroup(portKey, ports, []);
                    groups.Add(group);
                }
                group.Endpoints.Add(ToEndpoint(pod, service, addresses, zones));
            }
            HintOwnZones(service, groups.SelectMany(g => g.Endpoints).ToList());

            if (groups.Count == 0)
            {
                slices.Add(NewSlice(service, slices.Count + 1, addressType, [], []));
                continue;
            }
            foreach (var group in groups)
            {
                foreach (var chunk in group.Endpoints.Chunk(MaxEndpointsPerSlice))
                    slices.Add(NewSlice(service, slices.Count + 1, addressType, ClonePorts(group.Ports), [.. chunk]));
            }
        }
        return slices;
    }

    /// <summary>
    /// The container port a service port reaches on a pod, or null when a named targetPort does
    /// not resolve on that pod. A missing, zero or empty targetPort means the service port.
    /// </summary>
    public static int? ResolveTargetPort(V1ServicePort servicePort, V1Pod pod)
    {
        ArgumentNullException.ThrowIfNull(servicePort);
        ArgumentNullException.ThrowIfNull(pod);

        var target = servicePort.TargetPort?.Value;
        if (string.IsNullOrEmpty(target))
            return servicePort.Port;
        if (int.TryParse(target, out var number))
            return number == 0 ? servicePort.Port : number;

        var protocol = servicePort.Protocol ?? "TCP";
        var containers = (pod.Spec?.Containers ?? [])
            .Concat((pod.Spec?.InitContainers ?? []).Where(c => c?.RestartPolicy == "Always")); // sidecars
        foreach (var container in containers)
        {
            foreach (var containerPort in container?.Ports ?? [])
            {
                if (containerPort?.Name == target && (containerPort.Protocol ?? "TCP") == protocol)
                    return containerPort.ContainerPort;
            }
        }
        return null;
    }

    private static bool ShouldBeInEndpoints(V1Pod pod)
    {
        if (pod.Status?.Phase is "Succeeded" or "Failed")
            return false;
        return !string.IsNullOrEmpty(pod.Status?.PodIP) || pod.Status?.PodIPs is { Count: > 0 };
    }

    private static bool Matches(IDictionary<string, string> selector, IDictionary<string, string>? labels)
    {
        if (labels is null)
            return false;
        foreach (var (key, value) in selector)
        {
            if (!labels.TryGetValue(key, out var actual) || actual != value)
                return false;
        }
        return true;
    }

    private static IEnumerable<string> AddressTypes(V1ServiceSpec spec)
    {
        var families = new HashSet<string>(StringComparer.Ordinal);
        if (spec.IpFamilies is { Count: > 0 } ipFamilies)
        {
            families.UnionWith(ipFamilies.Where(f => f is IPv4 or IPv6));
        }
        else
        {
            var clusterIPs = (spec.ClusterIPs ?? []).Append(spec.ClusterIP);
            foreach (var clusterIP in clusterIPs)
            {
                if (IPText.TryParse(clusterIP, out var ip))
                    families.Add(ip.AddressFamily == AddressFamily.InterNetworkV6 ? IPv6 : IPv4);
            }
            if (families.Count == 0)
                families.Add(IPv4);
        }
        if (families.Contains(IPv4))
            yield return IPv4;
        if (families.Contains(IPv6))
            yield return IPv6;
    }

    private static List<string> Addresses(V1PodStatus status, string addressType)
    {
        IEnumerable<string?> candidates = status.PodIPs is { Count: > 0 } podIPs
            ? podIPs.Select(p => p?.Ip)
            : [status.PodIP];
        var wanted = addressType == IPv6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork;
        var addresses = new List<string>();
        foreach (var candidate in candidates)
        {
            // Re-format, as the controller does, so irregular spellings compare equal.
            if (IPText.TryParse(candidate, out var ip) && ip.AddressFamily == wanted && !addresses.Contains(ip.ToString()))
                addresses.Add(ip.ToString());
        }
        return addresses;
    }

    private static List<Discoveryv1EndpointPort> EndpointPorts(V1Service service, V1Pod pod)
    {
        var ports = new List<Discoveryv1EndpointPort>();
        foreach (var servicePort in service.Spec.Ports ?? [])
        {
            if (servicePort is null || ResolveTargetPort(servicePort, pod) is not { } number)
                continue;
            ports.Add(new Discoveryv1EndpointPort
            {
                Name = servicePort.Name ?? "",
                Port = number,
                Protocol = servicePort.Protocol ?? "TCP",
                AppProtocol = servicePort.AppProtocol,
            });
        }
        return ports;
    }

    private static string PortKey(List<Discoveryv1EndpointPort> ports) =>
        string.Join(';', ports
            .Select(p => $"{p.Name}/{p.Protocol}/{p.Port}/{p.AppProtocol}")
            .Order(StringComparer.Ordinal));

    private static List<Discoveryv1EndpointPort> ClonePorts(List<Discoveryv1EndpointPort> ports) =>
        ports.Select(p => new Discoveryv1EndpointPort
        {
            Name = p.Name,
            Port = p.Port,
            Protocol = p.Protocol,
            AppProtocol = p.AppProtocol,
        }).ToList();

    /// <summary>
    /// trafficDistribution PreferClose: each endpoint hinted for its own zone, and only when every
    /// endpoint has one (the controller's rule, k8s.io/endpointslice trafficdist).
    /// </summary>
    private static void HintOwnZones(V1Service service, List<V1Endpoint> endpoints)
    {
        if (service.Spec?.TrafficDistribution is not ("PreferClose" or "PreferSameZone") || endpoints.Count == 0
            || endpoints.Any(e => string.IsNullOrEmpty(e.Zone)))
            return;
        foreach (var endpoint in endpoints)
            endpoint.Hints = new V1EndpointHints { ForZones = [new V1ForZone { Name = endpoint.Zone }] };
    }

    private static V1Endpoint ToEndpoint(V1Pod pod, V1Service service, List<string> addresses, IReadOnlyDictionary<string, string> zones)
    {
        var serving = pod.Status?.Conditions?.Any(c => c?.Type == "Ready" && c.Status == "True") == true;
        var terminating = pod.Metadata.DeletionTimestamp is not null;
        var ready = service.Spec.PublishNotReadyAddresses == true || (serving && !terminating);
        var endpoint = new V1Endpoint
        {
            Addresses = addresses,
            Conditions = new V1EndpointConditions { Ready = ready, Serving = serving, Terminating = terminating },
            TargetRef = new V1ObjectReference
            {
                Kind = "Pod",
                NamespaceProperty = NamespaceOf(pod.Metadata),
                Name = pod.Metadata.Name,
                Uid = pod.Metadata.Uid,
            },
        };
        if (!string.IsNullOrEmpty(pod.Spec?.NodeName))
        {
            endpoint.NodeName = pod.Spec.NodeName;
            if (zones.TryGetValue(pod.Spec.NodeName, out var zone))
                endpoint.Zone = zone;
        }
        if (!string.IsNullOrEmpty(pod.Spec?.Hostname) && pod.Spec.Subdomain == service.Metadata.Name)
            endpoint.Hostname = pod.Spec.Hostname;
        return endpoint;
    }

    private static V1EndpointSlice NewSlice(
        V1Service service, int number, string addressType, List<Discoveryv1EndpointPort> ports, List<V1Endpoint> endpoints)
    {
        var labels = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in service.Metadata.Labels ?? new Dictionary<string, string>())
        {
            if (key is not (ServiceNameLabel or ManagedByLabel or HeadlessLabel))
                labels[key] = value;
        }
        if (service.Spec.ClusterIP == "None")
            labels[HeadlessLabel] = "";
        labels[ServiceNameLabel] = service.Metadata.Name;
        labels[ManagedByLabel] = ManagedByValue;

        return new V1EndpointSlice
        {
            ApiVersion = "discovery.k8s.io/v1",
            Kind = "EndpointSlice",
            Metadata = new V1ObjectMeta
            {
                Name = $"{service.Metadata.Name}-derived-{number}",
                NamespaceProperty = NamespaceOf(service.Metadata),
                Labels = new Dictionary<string, string>(labels, StringComparer.Ordinal),
            },
            AddressType = addressType,
            Ports = ports,
            Endpoints = endpoints,
        };
    }

    private static string NamespaceOf(V1ObjectMeta metadata) =>
        string.IsNullOrEmpty(metadata.NamespaceProperty) ? ManifestParser.DefaultNamespace : metadata.NamespaceProperty;

    private sealed record PortGroup(string Key, List<Discoveryv1EndpointPort> Ports, List<V1Endpoint> Endpoints);
}
