using EbpfProxy.Kubernetes.Api;
using k8s.Models;

namespace EbpfProxy.Kubernetes.Tests.Api;

public class ObjectTrimmerTests
{
    [Fact]
    public void PodKeepsWhatPolicyAndTranslationNeed()
    {
        var pod = new V1Pod
        {
            Metadata = new V1ObjectMeta
            {
                Name = "a", NamespaceProperty = "x", Labels = new Dictionary<string, string> { ["pod"] = "a" },
                Annotations = new Dictionary<string, string> { ["big"] = new string('x', 1000) },
                DeletionTimestamp = DateTime.UtcNow, ResourceVersion = "7",
                ManagedFields = [new V1ManagedFieldsEntry { Manager = "kubelet" }],
            },
            Spec = new V1PodSpec
            {
                NodeName = "node-1", HostNetwork = false,
                Volumes = [new V1Volume { Name = "v" }],
                Containers = [new V1Container { Name = "c", Image = "img", Env = [new V1EnvVar { Name = "E" }], Ports = [new V1ContainerPort { Name = "http", ContainerPort = 80, Protocol = "TCP" }] }],
            },
            Status = new V1PodStatus
            {
                Phase = "Running", PodIP = "10.244.0.5", PodIPs = [new V1PodIP { Ip = "10.244.0.5" }],
                Conditions = [new V1PodCondition { Type = "Ready", Status = "True" }, new V1PodCondition { Type = "Initialized", Status = "True" }],
                ContainerStatuses = [new V1ContainerStatus { Name = "c" }],
            },
        };

        var t = ObjectTrimmer.Trim(pod);

        Assert.Equal("a", t.Metadata.Name);
        Assert.Equal("a", t.Metadata.Labels["pod"]);
        Assert.NotNull(t.Metadata.DeletionTimestamp);
        Assert.Equal("7", t.Metadata.ResourceVersion);
        Assert.Null(t.Metadata.Annotations);
        Assert.Null(t.Metadata.ManagedFields);
        Assert.Equal("node-1", t.Spec.NodeName);
        Assert.Null(t.Spec.Volumes);
        var c = Assert.Single(t.Spec.Containers);
        Assert.Null(c.Image);
        Assert.Null(c.Env);
        Assert.Equal(("http", 80, "TCP"), (c.Ports[0].Name, c.Ports[0].ContainerPort, c.Ports[0].Protocol));
        Assert.Equal("10.244.0.5", t.Status.PodIP);
        Assert.Equal("Ready", Assert.Single(t.Status.Conditions).Type);
        Assert.Null(t.Status.ContainerStatuses);
    }

    [Fact]
    public void EndpointSliceKeepsEndpointsAndTheTriggerTime()
    {
        var slice = new V1EndpointSlice
        {
            Metadata = new V1ObjectMeta
            {
                Name = "s",
                Annotations = new Dictionary<string, string> { ["endpoints.kubernetes.io/last-change-trigger-time"] = "2026-01-01T00:00:00Z", ["other"] = "x" },
                Labels = new Dictionary<string, string> { ["kubernetes.io/service-name"] = "svc" },
            },
            AddressType = "IPv4",
            Endpoints = [new V1Endpoint { Addresses = ["10.0.0.1"], NodeName = "n", Zone = "z", Conditions = new V1EndpointConditions { Ready = true }, TargetRef = new V1ObjectReference { Kind = "Pod", Name = "p" }, Hints = new V1EndpointHints { ForZones = [new V1ForZone { Name = "z" }] } }],
        };

        var t = ObjectTrimmer.Trim(slice);

        Assert.Equal("svc", t.Metadata.Labels["kubernetes.io/service-name"]);
        Assert.Equal(["endpoints.kubernetes.io/last-change-trigger-time"], t.Metadata.Annotations.Keys);
        var ep = Assert.Single(t.Endpoints);
        Assert.Null(ep.TargetRef);
        Assert.Equal(("10.0.0.1", "n", "z", true), (ep.Addresses[0], ep.NodeName, ep.Zone, ep.Conditions.Ready));
        Assert.Equal("z", ep.Hints.ForZones[0].Name);
    }

    [Fact]
    public void NodeKeepsLabelsAndAddressesOnly()
    {
        var node = new V1Node
        {
            Metadata = new V1ObjectMeta { Name = "n", Labels = new Dictionary<string, string> { ["topology.kubernetes.io/zone"] = "z" } },
            Status = new V1NodeStatus
            {
                Addresses = [new V1NodeAddress { Type = "InternalIP", Address = "192.0.2.1" }],
                Images = [new V1ContainerImage { Names = ["a", "b"] }],
            },
        };
        var t = ObjectTrimmer.Trim(node);
        Assert.Equal("z", t.Metadata.Labels["topology.kubernetes.io/zone"]);
        Assert.Equal("192.0.2.1", Assert.Single(t.Status.Addresses).Address);
        Assert.Null(t.Status.Images);
    }
}
