using k8s;
using k8s.Models;

namespace EbpfProxy.Kubernetes.Api;

/// <summary>
/// Drops, at ingest, the parts of API objects that nothing in the proxy reads (as client-go's
/// informer transform functions do), so the cache costs what the datapath needs rather than what
/// the API server sends. Kept: everything translation uses, and what NetworkPolicy will need
/// (labels, pod IPs, container ports by name and protocol, node name, host networking, phase and
/// readiness, deletion). Pods and Nodes are by far the largest objects a node caches.
/// </summary>
public static class ObjectTrimmer
{
    /// <summary>EndpointSlice annotation the network programming latency SLI reads.</summary>
    private const string TriggerTime = "endpoints.kubernetes.io/last-change-trigger-time";

    public static T Trim<T>(T obj) where T : IKubernetesObject<V1ObjectMeta>
    {
        obj.Metadata.ManagedFields = null;
        switch (obj)
        {
            case V1EndpointSlice slice:
                KeepAnnotation(slice.Metadata, TriggerTime);
                foreach (var ep in slice.Endpoints ?? [])
                {
                    ep.TargetRef = null;
                    ep.Hostname = null;
                    ep.DeprecatedTopology = null;
                }
                break;
            case V1Pod pod:
                pod.Metadata.Annotations = null;
                pod.Metadata.OwnerReferences = null;
                if (pod.Spec is { } spec)
                {
                    pod.Spec = new V1PodSpec
                    {
                        NodeName = spec.NodeName,
                        HostNetwork = spec.HostNetwork,
                        Containers = spec.Containers?.Select(c => new V1Container { Name = c.Name, Ports = c.Ports }).ToList() ?? [],
                    };
                }
                if (pod.Status is { } status)
                {
                    pod.Status = new V1PodStatus
                    {
                        Phase = status.Phase,
                        PodIP = status.PodIP,
                        PodIPs = status.PodIPs,
                        Conditions = status.Conditions?.Where(c => c.Type == "Ready").ToList(),
                    };
                }
                break;
            case V1Namespace ns:
                ns.Metadata.Annotations = null;
                ns.Spec = null;
                ns.Status = null;
                break;
            case V1Node node:
                node.Metadata.Annotations = null;
                node.Spec = node.Spec is null ? null : new V1NodeSpec { PodCIDR = node.Spec.PodCIDR, PodCIDRs = node.Spec.PodCIDRs };
                node.Status = node.Status is null ? null : new V1NodeStatus { Addresses = node.Status.Addresses };
                break;
        }
        return obj;
    }

    private static void KeepAnnotation(V1ObjectMeta meta, string key)
    {
        if (meta.Annotations is null || meta.Annotations.Count == 0)
            return;
        meta.Annotations = meta.Annotations.TryGetValue(key, out var v) ? new Dictionary<string, string> { [key] = v } : null;
    }
}
