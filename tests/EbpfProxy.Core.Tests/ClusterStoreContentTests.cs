using EbpfProxy.Core.Cluster;
using k8s.Models;

namespace EbpfProxy.Core.Tests;

/// <summary>
/// Issue 14 item 9: the store decides "changed" by content, never by a resourceVersion. A file
/// exported with `kubectl get -o yaml` keeps its resourceVersion when edited; an API status update
/// bumps it without changing anything the proxy keeps.
/// </summary>
public class ClusterStoreContentTests
{
    private static V1NetworkPolicy Policy(string app, string? resourceVersion) => new()
    {
        ApiVersion = "networking.k8s.io/v1",
        Kind = "NetworkPolicy",
        Metadata = new V1ObjectMeta { Name = "allow", NamespaceProperty = "default", ResourceVersion = resourceVersion },
        Spec = new V1NetworkPolicySpec
        {
            PodSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = app } },
            PolicyTypes = ["Ingress"],
        },
    };

    [Fact]
    public void An_edit_that_keeps_the_resourceVersion_is_applied()
    {
        var store = new ClusterStore();
        store.Upsert(Policy("a", "1234"));

        store.Upsert(Policy("b", "1234"));

        Assert.Equal("b", store.Snapshot().NetworkPolicies["default/allow"].Spec.PodSelector.MatchLabels["app"]);
    }

    [Fact]
    public void A_full_listing_with_an_edit_under_the_same_resourceVersion_is_applied()
    {
        var store = new ClusterStore();
        store.ReplaceKind([Policy("a", "7")]);

        store.ReplaceKind([Policy("b", "7")]);

        Assert.Equal("b", store.Snapshot().NetworkPolicies["default/allow"].Spec.PodSelector.MatchLabels["app"]);
    }

    [Fact]
    public void A_new_resourceVersion_with_the_same_content_is_no_change()
    {
        var store = new ClusterStore();
        store.Upsert(Policy("a", "1"));
        var version = store.Snapshot().Version;
        var changes = 0;
        store.Changed += () => changes++;

        store.Upsert(Policy("a", "2"));
        store.ReplaceKind([Policy("a", "3")]);

        Assert.Equal(version, store.Snapshot().Version);
        Assert.Equal(0, changes);
    }
}
