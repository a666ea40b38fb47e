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
                    // 100,000 endpoints repeat a few node and zone names and condition triples:
                    // share them instead of keeping a copy per endpoint.
                    ep.NodeName = Intern(ep.NodeName);
                    ep.Zone = Intern(ep.Zone);
                    ep.Conditions = SharedConditions(ep.Conditions);
                    if (ep.Addresses is List<string> { Count: > 0 } list)
                        ep.Addresses = list.ToArray();
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

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> Names = new(StringComparer.Ordinal);
    private static readonly V1EndpointConditions?[] Conditions = new V1EndpointConditions?[27];

    /// <summary>One instance per distinct node or zone name (bounded: names beyond 100,000 are kept as they are).</summary>
    private static string? Intern(string? s)
    {
        if (s is null)
            return null;
        if (Names.TryGetValue(s, out var shared))
            return shared;
        return Names.Count < 100_000 ? Names.GetOrAdd(s, s) : s;
    }

    /// <summary>
    /// One instance per (ready, serving, terminating) combination, each unset, true or false. Shared
    /// instances are never modified: nothing in the proxy writes to cached objects.
    /// </summary>
    private static V1EndpointConditions? SharedConditions(V1EndpointConditions? c)
    {
        if (c is null)
            return null;
        int index = Tri(c.Ready) * 9 + Tri(c.Serving) * 3 + Tri(c.Terminating);
        return Conditions[index] ??= new V1EndpointConditions { Ready = c.Ready, Serving = c.Serving, Terminating = c.Terminating };

        static int Tri(bool? b) => b is null ? 0 : b.Value ? 1 : 2;
    }

    private static void KeepAnnotation(V1ObjectMeta meta, string key)
    {
        if (meta.Annotations is null || meta.Annotations.Count == 0)
            return;
        meta.Annotations = meta.Annotations.TryGetValue(key, out var v) ? new Dictionary<string, string> { [key] = v } : null;
    }
}
