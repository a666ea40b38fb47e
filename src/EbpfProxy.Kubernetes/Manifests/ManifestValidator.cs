using System.Net.Sockets;
using k8s;
using k8s.Models;

namespace EbpfProxy.Kubernetes.Manifests;

/// <summary>
/// The structural checks the API server would have made, limited to what the proxy relies on:
/// an object that fails them is skipped rather than handed to Core half-formed. Defaulting is
/// limited to what a manifest routinely leaves out (the namespace, an empty endpoint list); the
/// other API defaults (protocol TCP, targetPort = port) are left to readers, as for informers.
/// </summary>
internal static class ManifestValidator
{
    private static readonly HashSet<string> Protocols = new(StringComparer.Ordinal) { "TCP", "UDP", "SCTP" };
    private static readonly HashSet<string> ServiceTypes = new(StringComparer.Ordinal) { "ClusterIP", "NodePort", "LoadBalancer", "ExternalName" };

    public static void Normalize(IKubernetesObject<V1ObjectMeta> obj)
    {
        // Namespaces (and Nodes) are cluster-scoped.
        if (obj is not (V1Namespace or V1Node) && obj.Metadata is { } metadata && string.IsNullOrEmpty(metadata.NamespaceProperty))
            metadata.NamespaceProperty = ManifestParser.DefaultNamespace;
        if (obj is V1EndpointSlice slice)
            slice.Endpoints ??= [];
    }

    /// <summary>Returns why the object cannot be used, or null when it can.</summary>
    public static string? Validate(IKubernetesObject<V1ObjectMeta> obj)
    {
        if (string.IsNullOrEmpty(obj.Metadata?.Name))
            return "metadata.name is required";
        return obj switch
        {
            V1Service service => ValidateService(service),
            V1EndpointSlice slice => ValidateEndpointSlice(slice),
            V1Pod pod => ValidatePod(pod),
            V1NetworkPolicy policy => policy.Spec is null ? "spec is required" : null,
            V1Node node => ValidateNode(node),
            _ => null,
        };
    }

    private static string? ValidateNode(V1Node node)
    {
        foreach (var address in node.Status?.Addresses ?? [])
        {
            if (address.Type is "InternalIP" or "ExternalIP" && !IPText.IsValid(address.Address))
                return $"status.addresses {address.Type} {address.Address} is not an IP address";
        }
        return null;
    }

    private static string? ValidateService(V1Service service)
    {
        var spec = service.Spec;
        if (spec is null)
            return "spec is required";
        if (spec.Type is { } type && !ServiceTypes.Contains(type))
            return $"spec.type {type} is not one of ClusterIP, NodePort, LoadBalancer, ExternalName";
        if (!string.IsNullOrEmpty(spec.ClusterIP) && spec.ClusterIP != "None" && !IPText.IsValid(spec.ClusterIP))
            return $"spec.clusterIP {spec.ClusterIP} is not an IP address or None";
        foreach (var ip in spec.ClusterIPs ?? [])
        {
            if (ip != "None" && !IPText.IsValid(ip))
                return $"spec.clusterIPs entry {ip} is not an IP address or None";
        }
        foreach (var ip in spec.ExternalIPs ?? [])
        {
            if (!IPText.IsValid(ip))
                return $"spec.externalIPs entry {ip} is not an IP address";
        }

        var ports = spec.Ports ?? [];
        var names = new HashSet<string>(StringComparer.Ordinal);
        var claimed = new HashSet<(int, string)>();
        for (var i = 0; i < ports.Count; i++)
        {
            var port = ports[i];
            var at = $"spec.ports[{i}]";
            if (port is null)
                return $"{at} is empty";
            if (port.Port is < 1 or > 65535)
                return $"{at}.port {port.Port} is not between 1 and 65535";
            var protocol = port.Protocol ?? "TCP";
            if (!Protocols.Contains(protocol))
                return $"{at}.protocol {protocol} is not one of TCP, UDP, SCTP";
            if (port.NodePort is < 0 or > 65535)
                return $"{at}.nodePort {port.NodePort} is not between 0 and 65535";
            if (port.TargetPort?.Value is { Length: > 0 } target && int.TryParse(target, out var targetNumber) && targetNumber is < 0 or > 65535)
                return $"{at}.targetPort {targetNumber} is not between 1 and 65535";
            if (ports.Count > 1 && string.IsNullOrEmpty(port.Name))
                return $"{at}.name is required when a service has more than one port";
            if (!string.IsNullOrEmpty(port.Name) && !names.Add(port.Name))
                return $"{at}.name {port.Name} is used twice";
            if (!claimed.Add((port.Port, protocol)))
                return $"{at} repeats port {port.Port}/{protocol}";
        }
        return null;
    }

    private static string? ValidateEndpointSlice(V1EndpointSlice slice)
    {
        var family = slice.AddressType switch
        {
            "IPv4" => AddressFamily.InterNetwork,
            "IPv6" => AddressFamily.InterNetworkV6,
            "FQDN" => AddressFamily.Unspecified,
            null => (AddressFamily?)null,
            _ => null,
        };
        if (family is null)
            return $"addressType {slice.AddressType ?? "(missing)"} is not one of IPv4, IPv6, FQDN";

        for (var i = 0; i < slice.Endpoints.Count; i++)
        {
            var endpoint = slice.Endpoints[i];
            var at = $"endpoints[{i}]";
            if (endpoint?.Addresses is not { Count: > 0 } addresses)
                return $"{at}.addresses needs at least one address";
            foreach (var address in addresses)
            {
                if (family == AddressFamily.Unspecified)
                    continue;
                if (!IPText.TryParse(address, out var ip) || ip.AddressFamily != family)
                    return $"{at}.addresses entry {address} is not an {slice.AddressType} address";
            }
        }

        var ports = slice.Ports ?? [];
        for (var i = 0; i < ports.Count; i++)
        {
            var port = ports[i];
            var at = $"ports[{i}]";
            if (port is null)
                return $"{at} is empty";
            if (port.Port is < 1 or > 65535)
                return $"{at}.port {port.Port} is not between 1 and 65535";
            if (port.Protocol is { } protocol && !Protocols.Contains(protocol))
                return $"{at}.protocol {protocol} is not one of TCP, UDP, SCTP";
        }
        return null;
    }

    private static string? ValidatePod(V1Pod pod)
    {
        var status = pod.Status;
        if (status is null)
            return null;
        if (!string.IsNullOrEmpty(status.PodIP) && !IPText.IsValid(status.PodIP))
            return $"status.podIP {status.PodIP} is not an IP address";
        foreach (var podIP in status.PodIPs ?? [])
        {
            if (podIP?.Ip is not { } ip || !IPText.IsValid(ip))
                return $"status.podIPs entry {podIP?.Ip ?? "(empty)"} is not an IP address";
        }
        return null;
    }
}
