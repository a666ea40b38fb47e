using EbpfProxy.Kubernetes.Manifests;

namespace EbpfProxy.Kubernetes.Tests;

public class ManifestParserTests
{
    private const string Path = "/manifests/test.yaml";

    [Fact]
    public void Multi_document_yaml_yields_each_kind_with_namespace_defaulted()
    {
        const string yaml = """
            # a comment before the first document
            apiVersion: v1
            kind: Service
            metadata:
              name: echo
            spec:
              ports: [{name: http, port: 80}]
            ---
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: echo-abc
              namespace: shop
              labels: {kubernetes.io/service-name: echo}
            addressType: IPv4
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: echo-1, labels: {version: 2}}
            status: {podIP: 10.244.0.11}
            ...
            """;

        var file = ManifestParser.Parse(Path, yaml);

        Assert.Equal("default", Assert.Single(file.Services).Metadata.NamespaceProperty);
        var slice = Assert.Single(file.EndpointSlices);
        Assert.Equal("shop", slice.Metadata.NamespaceProperty);
        Assert.Empty(slice.Endpoints); // defaulted from a missing list
        var pod = Assert.Single(file.Pods);
        Assert.Equal("2", pod.Metadata.Labels["version"]);
        Assert.Empty(file.Errors);
    }

    [Fact]
    public void NetworkPolicies_and_namespaces_are_read_for_policy()
    {
        const string yaml = """
            apiVersion: v1
            kind: Namespace
            metadata: {name: x, labels: {ns: x}}
            ---
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: deny-all}
            spec: {podSelector: {}, policyTypes: [Ingress]}
            ---
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: no-spec, namespace: x}
            ---
            apiVersion: extensions/v1beta1
            kind: NetworkPolicy
            metadata: {name: old}
            spec: {podSelector: {}}
            """;

        var file = ManifestParser.Parse(Path, yaml);

        var ns = Assert.Single(file.Namespaces);
        Assert.Equal("x", ns.Metadata.Name);
        Assert.Null(ns.Metadata.NamespaceProperty); // cluster-scoped: not defaulted
        Assert.Equal("x", ns.Metadata.Labels["ns"]);
        var policy = Assert.Single(file.NetworkPolicies);
        Assert.Equal(("default", "deny-all"), (policy.Metadata.NamespaceProperty, policy.Metadata.Name));
        Assert.Equal(["Ingress"], policy.Spec.PolicyTypes);
        Assert.Equal(2, file.Errors.Length);
        Assert.Contains(file.Errors, e => e.Message.Contains("spec is required", StringComparison.Ordinal));
        Assert.Contains(file.Errors, e => e.Message.Contains("networking.k8s.io/v1", StringComparison.Ordinal));
    }

    [Fact]
    public void Other_kinds_are_ignored_and_listed_with_their_document_index()
    {
        const string yaml = """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: echo}
            ---
            apiVersion: example.com/v1
            kind: Widget
            metadata: {name: w}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: p}
            """;

        var file = ManifestParser.Parse(Path, yaml);

        Assert.Equal(
            [new IgnoredManifest(1, "apps/v1", "Deployment", "echo"), new IgnoredManifest(2, "example.com/v1", "Widget", "w")],
            file.Ignored.ToList());
        Assert.Single(file.Pods);
    }

    [Fact]
    public void A_field_of_the_wrong_type_fails_the_file_naming_document_object_and_line()
    {
        const string yaml = """
            apiVersion: v1
            kind: Pod
            metadata: {name: fine}
            ---
            apiVersion: v1
            kind: Service
            metadata:
              name: broken
            spec:
              ports:
              - port: eighty
            """;

        var ex = Assert.Throws<ManifestFormatException>(() => ManifestParser.Parse(Path, yaml));

        Assert.Equal(Path, ex.File);
        Assert.Equal(2, ex.Document);
        Assert.Equal("Service default/broken", ex.ObjectName);
        Assert.StartsWith("line 11, ", ex.Reason);
        Assert.Contains("eighty", ex.Reason);
        Assert.Contains("test.yaml: document 2 (Service default/broken): line 11", ex.Message);
    }

    [Fact]
    public void A_syntax_error_fails_the_file_with_its_line()
    {
        const string yaml = """
            apiVersion: v1
            kind: Pod
            metadata: {name: a}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: b
            """;

        var ex = Assert.Throws<ManifestFormatException>(() => ManifestParser.Parse(Path, yaml));

        Assert.Equal(2, ex.Document);
        Assert.Matches("^line [78], ", ex.Reason);
    }

    [Fact]
    public void A_document_that_is_not_a_mapping_fails_the_file()
    {
        var ex = Assert.Throws<ManifestFormatException>(() => ManifestParser.Parse(Path, "- just\n- a list\n"));

        Assert.Equal(1, ex.Document);
        Assert.Contains("mapping", ex.Reason);
    }

    [Fact]
    public void Invalid_objects_are_skipped_with_an_error_and_the_rest_applies()
    {
        const string yaml = """
            apiVersion: v1
            kind: Service
            metadata: {}
            spec: {ports: [{port: 80}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: big-port}
            spec: {ports: [{port: 70000}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: two-unnamed}
            spec: {ports: [{port: 80}, {port: 81}]}
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: wrong-family}
            addressType: IPv4
            endpoints: [{addresses: ["fd00::1"]}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: bad-ip}
            status: {podIP: 10.244.0}
            ---
            apiVersion: discovery.k8s.io/v1beta1
            kind: EndpointSlice
            metadata: {name: old}
            ---
            kind: Service
            metadata: {name: no-version}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: good}
            spec: {ports: [{port: 80}]}
            """;

        var file = ManifestParser.Parse(Path, yaml);

        Assert.Equal("good", Assert.Single(file.Services).Metadata.Name);
        Assert.Empty(file.EndpointSlices);
        Assert.Empty(file.Pods);
        Assert.Equal(
        [
            (1, "Service without a name", "metadata.name is required; skipped"),
            (2, "Service default/big-port", "spec.ports[0].port 70000 is not between 1 and 65535; skipped"),
            (3, "Service default/two-unnamed", "spec.ports[0].name is required when a service has more than one port; skipped"),
            (4, "EndpointSlice default/wrong-family", "endpoints[0].addresses entry fd00::1 is not an IPv4 address; skipped"),
            (5, "Pod default/bad-ip", "status.podIP 10.244.0 is not an IP address; skipped"),
            (6, "EndpointSlice default/old", "apiVersion discovery.k8s.io/v1beta1 is not supported for EndpointSlice (use discovery.k8s.io/v1); skipped"),
            (7, "Service default/no-version", "apiVersion and kind are required; skipped"),
        ],
        file.Errors.Select(e => (e.Document!.Value, e.Object!, e.Message)).ToList());
        Assert.All(file.Errors, e => Assert.Equal(Path, e.File));
    }

    [Fact]
    public void List_items_are_read_including_typed_lists_whose_items_carry_no_kind()
    {
        const string yaml = """
            apiVersion: v1
            kind: List
            items:
            - apiVersion: v1
              kind: Service
              metadata: {name: a}
              spec: {ports: [{port: 80, targetPort: "8080"}]}
            - apiVersion: v1
              kind: ConfigMap
              metadata: {name: c}
            ---
            apiVersion: v1
            kind: PodList
            items:
            - metadata: {name: p1}
            - metadata: {name: p2}
              status: {podIP: 10.0.0.2}
            """;

        var file = ManifestParser.Parse(Path, yaml);

        var service = Assert.Single(file.Services);
        Assert.Equal("8080", service.Spec.Ports[0].TargetPort.Value);
        Assert.Equal(["p1", "p2"], file.Pods.Select(p => p.Metadata.Name).ToList());
        Assert.Equal(new IgnoredManifest(1, "v1", "ConfigMap", "c"), Assert.Single(file.Ignored));
    }

    [Fact]
    public void Json_files_are_read_including_lists()
    {
        const string json = """
            {
              "apiVersion": "v1",
              "kind": "List",
              "items": [
                { "apiVersion": "v1", "kind": "Service", "metadata": { "name": "a" }, "spec": { "ports": [ { "port": 80, "targetPort": "http" } ] } },
                { "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p", "namespace": "x" } },
              ]
            }
            """;

        var file = ManifestParser.Parse("/m/all.json", json);

        Assert.Equal("http", Assert.Single(file.Services).Spec.Ports[0].TargetPort.Value);
        Assert.Equal("x", Assert.Single(file.Pods).Metadata.NamespaceProperty);
    }

    [Fact]
    public void Json_errors_name_the_item_and_field()
    {
        const string json = """
            { "apiVersion": "v1", "kind": "List", "items": [
              { "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p", "labels": { "v": 1 } } } ] }
            """;

        var ex = Assert.Throws<ManifestFormatException>(() => ManifestParser.Parse("/m/bad.json", json));

        Assert.Equal("items[0] Pod default/p", ex.ObjectName);
        Assert.Contains("$.metadata.labels.v", ex.Reason);
    }

    [Theory]
    [InlineData("echo.yaml", true)]
    [InlineData("echo.YML", true)]
    [InlineData("echo.json", true)]
    [InlineData(".#echo.yaml", false)]
    [InlineData(".echo.yaml.swp", false)]
    [InlineData("echo.yaml~", false)]
    [InlineData("..data", false)]
    [InlineData("README.md", false)]
    public void Manifest_file_names(string name, bool expected) =>
        Assert.Equal(expected, ManifestParser.IsManifestFileName(name));
}
