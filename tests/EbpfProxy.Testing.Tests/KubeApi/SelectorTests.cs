using System.Text.Json.Nodes;
using EbpfProxy.Testing.KubeApi;

namespace EbpfProxy.Testing.Tests.KubeApi;

public class SelectorTests
{
    private static readonly Dictionary<string, string> WebFront = new() { ["app"] = "web", ["tier"] = "front", ["empty"] = "" };

    [Theory]
    [InlineData("app=web", true)]
    [InlineData("app = web", true)]
    [InlineData("app=db", false)]
    [InlineData("app!=db", true)]
    [InlineData("missing!=x", true)]
    [InlineData("app", true)]
    [InlineData("missing", false)]
    [InlineData("!missing", true)]
    [InlineData("!app", false)]
    [InlineData("app in (db, web)", true)]
    [InlineData("app in (db)", false)]
    [InlineData("missing notin (x)", true)]
    [InlineData("app notin (web)", false)]
    [InlineData("empty=", true)]
    [InlineData("app=web,tier=front,!missing", true)]
    [InlineData("app=web,tier=back", false)]
    [InlineData("example.com/key", false)]
    public void Label_selector_semantics(string selector, bool matches) =>
        Assert.Equal(matches, LabelSelector.Parse(selector).Matches(WebFront));

    [Theory]
    [InlineData("a in (b")]
    [InlineData("a,,b")]
    [InlineData("a foo (b)")]
    [InlineData("=x")]
    [InlineData("!")]
    public void Malformed_label_selectors_are_rejected(string selector) =>
        Assert.Throws<SelectorException>(() => LabelSelector.Parse(selector));

    [Fact]
    public void Field_selectors_use_the_resource_fields()
    {
        var pod = new StoredObject(KubeResource.Pods, JsonNode.Parse("""
            {"metadata":{"name":"p","namespace":"ns","resourceVersion":"7"},"spec":{"nodeName":"n1","hostNetwork":true},"status":{"phase":"Running"}}
            """)!.AsObject());
        Assert.True(FieldSelector.Parse("spec.nodeName=n1,metadata.namespace=ns", KubeResource.Pods).Matches(pod));
        Assert.True(FieldSelector.Parse("status.phase!=Pending", KubeResource.Pods).Matches(pod));
        Assert.True(FieldSelector.Parse("spec.hostNetwork=true", KubeResource.Pods).Matches(pod));
        Assert.True(FieldSelector.Parse("status.podIP=", KubeResource.Pods).Matches(pod));
        Assert.False(FieldSelector.Parse("metadata.name==q", KubeResource.Pods).Matches(pod));
        Assert.Equal(7, pod.ResourceVersion);
        Assert.Equal("ns/p", pod.Key);
        Assert.Throws<SelectorException>(() => FieldSelector.Parse("spec.nodeName=n1", KubeResource.Services));
        Assert.Throws<SelectorException>(() => FieldSelector.Parse("nonsense", KubeResource.Pods));
    }

    [Fact]
    public void Resources_resolve_by_plural_kind_and_model()
    {
        Assert.Same(KubeResource.EndpointSlices, KubeResource.ForName("endpointslices"));
        Assert.Same(KubeResource.EndpointSlices, KubeResource.ForName("EndpointSlice"));
        Assert.Same(KubeResource.Nodes, KubeResource.ForModel(typeof(k8s.Models.V1Node)));
        Assert.Equal("/apis/networking.k8s.io/v1", KubeResource.NetworkPolicies.PathPrefix);
        Assert.Equal("NetworkPolicyList", KubeResource.NetworkPolicies.ListKind);
        Assert.Equal("/api/v1", KubeResource.Pods.PathPrefix);
        Assert.False(KubeResource.Namespaces.Namespaced);
        Assert.Throws<ArgumentException>(() => KubeResource.ForName("configmaps"));
    }
}
