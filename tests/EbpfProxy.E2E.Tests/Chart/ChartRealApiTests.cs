using System.Net;
using System.Text.RegularExpressions;
using EbpfProxy.E2E.Tests.RealApi;
using EbpfProxy.Testing;
using EbpfProxy.Testing.KubeApi;
using EbpfProxy.Testing.RealApi;
using k8s;
using k8s.Models;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests.Chart;

/// <summary>
/// The rendered chart judged by the real kube-apiserver (server-side dry run), and the rendered DaemonSet's
/// container run as a runtime would run it (Chart/container-run.sh: the image's filesystem read-only, the chart's
/// volumes, user, capabilities and no_new_privs) against that API server with the ServiceAccount token of the
/// chart's RBAC: the chart, the image and RBAC together (issue 12 items 2 and 4).
/// </summary>
[Collection(RealApiCollection.Name)]
public sealed partial class ChartRealApiTests(RealApiFixture fixture, ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan Converge = TimeSpan.FromSeconds(20);

    [RealApiFact]
    public async Task TheApiServerAcceptsEveryRenderedObjectInAServerSideDryRun()
    {
        await EnsureMonitoringCrdsAsync();
        foreach (var values in new[] { Array.Empty<string>(), [HelmChart.FullValues] })
        {
            foreach (var (key, doc) in HelmChart.Documents(HelmChart.Render(values)))
            {
                var error = await DryRunApplyAsync(doc);
                Assert.True(error is null, $"the API server refused {key} rendered with [{string.Join(", ", values)}]: {error}");
                output.WriteLine($"{key}: accepted (server-side apply, dry run, strict field validation)");
            }
        }
        // The dry run can refuse: a rolling update that may take no pod down is invalid, and so is a misspelt field.
        var ds = HelmChart.Documents(HelmChart.Render())[$"DaemonSet/{HelmChart.Release}"];
        Assert.Contains("maxUnavailable", await DryRunApplyAsync(ds.Replace("maxUnavailable: 1", "maxUnavailable: 0", StringComparison.Ordinal)), StringComparison.Ordinal);
        Assert.Contains("readOnlyRootFilesytem", await DryRunApplyAsync(ds.Replace("readOnlyRootFilesystem", "readOnlyRootFilesytem", StringComparison.Ordinal)), StringComparison.Ordinal);
    }

    /// <summary>
    /// The rendered YAML as JSON, every field kept (a typed model would drop a misspelt one before the API's strict
    /// validation could see it); unquoted scalars typed as YAML types them (ports are numbers, flags booleans).
    /// </summary>
    private static System.Text.Json.Nodes.JsonNode? YamlToJson(string doc)
    {
        var o = new YamlDotNet.Serialization.DeserializerBuilder().WithAttemptingUnquotedStringTypeDeserialization().Build().Deserialize<object>(doc);
        return Convert(o);

        static System.Text.Json.Nodes.JsonNode? Convert(object? v) => v switch
        {
            null => null,
            Dictionary<object, object> m => new System.Text.Json.Nodes.JsonObject(m.Select(kv => KeyValuePair.Create((string)kv.Key, Convert(kv.Value)))),
            List<object> l => new System.Text.Json.Nodes.JsonArray([.. l.Select(Convert)]),
            _ => System.Text.Json.Nodes.JsonValue.Create(v),
        };
    }

    /// <summary>
    /// Server-side apply of one rendered object with dryRun=All and fieldValidation=Strict (what `kubectl apply
    /// --server-side --dry-run=server` sends): the API's defaulting, validation and admission judge it, nothing is
    /// stored. Returns the API's refusal, or null.
    /// </summary>
    private async Task<string?> DryRunApplyAsync(string doc)
    {
        var map = (Dictionary<object, object>)new YamlDotNet.Serialization.Deserializer().Deserialize<object>(doc);
        var apiVersion = (string)map["apiVersion"];
        var kind = (string)map["kind"];
        var meta = (Dictionary<object, object>)map["metadata"];
        var name = (string)meta["name"];
        var ns = meta.TryGetValue("namespace", out var n) ? (string)n : null;
        var patch = new V1Patch(YamlToJson(doc), V1Patch.PatchType.ApplyPatch);
        const string Manager = "chart-test", DryRun = "All", Strict = "Strict";
        var api = fixture.Admin;
        try
        {
            if (!apiVersion.Contains('/', StringComparison.Ordinal))
            {
                switch (kind)
                {
                    case "ServiceAccount":
                        await api.CoreV1.PatchNamespacedServiceAccountAsync(patch, name, ns, dryRun: DryRun, fieldManager: Manager, fieldValidation: Strict, force: true);
                        break;
                    case "Service":
                        await api.CoreV1.PatchNamespacedServiceAsync(patch, name, ns, dryRun: DryRun, fieldManager: Manager, fieldValidation: Strict, force: true);
                        break;
                    case "ConfigMap":
                        await api.CoreV1.PatchNamespacedConfigMapAsync(patch, name, ns, dryRun: DryRun, fieldManager: Manager, fieldValidation: Strict, force: true);
                        break;
                    default:
                        throw new InvalidOperationException($"the chart renders core kind {kind}, which this test does not apply yet");
                }
                return null;
            }
            var group = apiVersion[..apiVersion.IndexOf('/', StringComparison.Ordinal)];
            var version = apiVersion[(group.Length + 1)..];
            var plural = kind.ToLowerInvariant() + "s";
            if (ns is null)
                await api.CustomObjects.PatchClusterCustomObjectAsync(patch, group, version, plural, name, dryRun: DryRun, fieldManager: Manager, fieldValidation: Strict, force: true);
            else
                await api.CustomObjects.PatchNamespacedCustomObjectAsync(patch, group, version, ns, plural, name, dryRun: DryRun, fieldManager: Manager, fieldValidation: Strict, force: true);
            return null;
        }
        catch (k8s.Autorest.HttpOperationException e)
        {
            return $"{(int)e.Response.StatusCode}: {e.Response.Content}";
        }
    }

    [RealApiFact]
    public async Task TheChartsContainerForwardsAndDropsWithItsCapabilitiesOnly()
    {
        var (s, vip) = await StartScenarioAsync();
        await using var _s = s;
        var container = ChartContainer();
        await StartChartContainerAsync(s, container, container.SecurityContext.Capabilities.Add, waitForFirstSync: true);
        await s.WaitForAttachmentsAsync();
        await s.WaitForMapBackendsAsync(vip, s.Echo.Keys, Converge);
        Assert.Equal(s.Echo.Keys.Order(), (await s.TcpRoundAsync(vip, 80, 20)).Distinct().Order());

        // The probes and the metrics port of the rendered container answer.
        using var http = new HttpClient(NetNsHttp.CreateHandler(s.NodeNs)) { Timeout = TimeSpan.FromSeconds(5) };
        foreach (var probe in new[] { container.LivenessProbe, container.ReadinessProbe })
        {
            var port = container.Ports.Single(p => p.Name == probe.HttpGet.Port.Value).ContainerPort;
            var response = await http.GetAsync($"http://127.0.0.1:{port}{probe.HttpGet.Path}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        var metrics = container.Ports.Single(p => p.Name == "metrics").ContainerPort;
        await RealApiLiveTests.Eventually(async () => (await http.GetStringAsync($"http://127.0.0.1:{metrics}/metrics")).Contains("ebpfproxy_drops_total", StringComparison.Ordinal),
            "the metrics port serves the datapath's counters");

        // A NetworkPolicy drop: the echo pods admit only role=client; the client pod is role=other, then relabelled.
        await s.CreateClientPodAsync(role: "other");
        await s.CreateOnlyClientsPolicyAsync();
        await RealApiLiveTests.Eventually(async () => !await RealApiLiveTests.ConnectsAsync(s.Client.Ns, vip, 80), "the policy drops the client's (role=other) connections");
        await s.PatchPodAsync("client", new { metadata = new { labels = new Dictionary<string, string?> { ["role"] = "client" } } });
        await RealApiLiveTests.Eventually(async () => await RealApiLiveTests.ConnectsAsync(s.Client.Ns, vip, 80), "the relabelled client is admitted");
        Assert.False(s.Daemon.HasExited, "the daemon exited");
        Assert.DoesNotContain(s.Daemon.Output, l => l.Contains("Forbidden", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(s.Daemon.Output, l => l.Contains("Operation not permitted", StringComparison.OrdinalIgnoreCase));
    }

    [RealApiFact]
    public async Task OneCapabilityLessFailsWithAnErrorNamingIt()
    {
        var (s, _) = await StartScenarioAsync();
        await using var _s = s;
        var container = ChartContainer();
        foreach (var missing in container.SecurityContext.Capabilities.Add)
        {
            await StartChartContainerAsync(s, container, container.SecurityContext.Capabilities.Add.Where(c => c != missing).ToList(), waitForFirstSync: false);
            var exit = await s.Daemon.WaitForExitAsync(TimeSpan.FromSeconds(60));
            output.WriteLine($"without CAP_{missing}: exit {exit}\n{s.Daemon.OutputText}");
            Assert.NotEqual(0, exit);
            // The error names what is missing, and only that.
            var named = s.Daemon.Output.Select(l => MissingList().Match(l)).FirstOrDefault(m => m.Success)?.Groups[1].Value;
            Assert.NotNull(named);
            Assert.StartsWith($"CAP_{missing}", named, StringComparison.Ordinal);
            Assert.DoesNotContain(",", named, StringComparison.Ordinal);
        }
    }

    /// <summary>The rendered DaemonSet's container for this test cluster's values.</summary>
    private static V1Container ChartContainer()
    {
        var values = HelmChart.ValuesFile($"""
            serviceCidr: {ControlPlane.ServiceCidr}
            clusterCidr: 10.244.0.0/16
            nodePortAddresses: [192.168.77.0/24]
            minSyncInterval: 0
            conntrackMax: 65536
            policyConntrackMax: 65536
            logLevel: Information
            """);
        return HelmChart.DaemonSet(HelmChart.Render(values)).Spec.Template.Spec.Containers.Single();
    }

    private async Task<(RealApiScenario S, IPAddress Vip)> StartScenarioAsync()
    {
        var s = await RealApiScenario.CreateAsync(output, fixture, 2);
        try
        {
            var svc = await s.CreateServiceAsync();
            foreach (var pod in s.Echo.Keys)
                await s.CreatePodAsync(pod);
            await RealApiTests.WaitForSliceAsync(s, s.Echo.Count);
            return (s, IPAddress.Parse(svc.Spec.ClusterIP));
        }
        catch
        {
            await s.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Runs <paramref name="container"/> (command, args, env, user) in the node namespace through container-run.sh with
    /// <paramref name="capabilities"/>, its volumes bound to the scenario's bpffs and cgroup, and the in-cluster service
    /// account folder holding the scenario's token of the chart's ServiceAccount.
    /// </summary>
    private async Task StartChartContainerAsync(RealApiScenario s, V1Container container, IList<string> capabilities, bool waitForFirstSync)
    {
        var secrets = Names.TempPath("sa");
        Directory.CreateDirectory(secrets);
        _cleanup.Add(secrets);
        File.WriteAllText(Path.Combine(secrets, "token"), TokenLine().Match(File.ReadAllText(s.Kubeconfig)).Groups[1].Value);
        File.Copy(Path.Combine(s.ControlPlane.Folder, "ca.crt"), Path.Combine(secrets, "ca.crt"));
        File.WriteAllText(Path.Combine(secrets, "namespace"), RealApiFixture.ReleaseNamespace);

        var rootfs = ImageRootfs;
        output.WriteLine(rootfs == "host" ? "root: the host's /usr and /etc with artifacts/bin at /app (no unpacked image: make image image-rootfs)" : $"root: the image's filesystem {rootfs}");
        var env = new Dictionary<string, string>
        {
            // What kubelet adds: the in-cluster API address, and the downward API's spec.nodeName.
            ["KUBERNETES_SERVICE_HOST"] = ControlPlane.ApiAddress.ToString(),
            ["KUBERNETES_SERVICE_PORT"] = ControlPlane.ApiPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            // The image's ENV.
            ["DOTNET_ROOT"] = "/usr/share/dotnet",
            ["PATH"] = "/app:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        };
        foreach (var e in container.Env)
            env[e.Name] = e.ValueFrom?.FieldRef?.FieldPath == "spec.nodeName" ? RealApiFixture.NodeName : e.Value;
        var caps = string.Join(",", capabilities.Select(c => "+" + c.ToLowerInvariant()));
        var uid = (container.SecurityContext.RunAsUser ?? 0).ToString(System.Globalization.CultureInfo.InvariantCulture);
        Assert.False(container.SecurityContext.Privileged ?? false);
        Assert.True(container.SecurityContext.ReadOnlyRootFilesystem);
        await s.StartDaemonAsync("unshare",
            ["--mount", "--propagation", "private", ContainerRunScript, rootfs, Binaries.BpfDir, s.BpfFsPath, s.CgroupPath, secrets, uid, caps, "--",
             .. container.Command, .. container.Args],
            env, waitForFirstSync);
    }

    private readonly List<string> _cleanup = [];

    public void Dispose()
    {
        foreach (var dir in _cleanup)
            Directory.Delete(dir, recursive: true);
    }

    private static string ContainerRunScript => Path.Combine(Binaries.RepoRoot, "tests", "EbpfProxy.E2E.Tests", "Chart", "container-run.sh");

    /// <summary>The unpacked image (make image image-rootfs), else "host".</summary>
    private static string ImageRootfs =>
        Environment.GetEnvironmentVariable("EBPF_PROXY_IMAGE_ROOTFS") is { Length: > 0 } r ? r
        : File.Exists(Path.Combine(Binaries.RepoRoot, "artifacts", "image", "rootfs", "app", "ebpf-proxy")) ? Path.Combine(Binaries.RepoRoot, "artifacts", "image", "rootfs")
        : "host";

    [GeneratedRegex(@"missing: ([^;]+);")]
    private static partial Regex MissingList();

    [GeneratedRegex(@"token: (\S+)")]
    private static partial Regex TokenLine();

    /// <summary>
    /// The Prometheus Operator's ServiceMonitor and PrometheusRule kinds, reduced to the fields the chart sets (the
    /// real CRDs are not available offline): the dry run then checks the chart's objects against those fields' types.
    /// </summary>
    private async Task EnsureMonitoringCrdsAsync()
    {
        const string Crd = """
            apiVersion: apiextensions.k8s.io/v1
            kind: CustomResourceDefinition
            metadata: {name: servicemonitors.monitoring.coreos.com}
            spec:
              group: monitoring.coreos.com
              names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
              scope: Namespaced
              versions:
                - name: v1
                  served: true
                  storage: true
                  schema:
                    openAPIV3Schema:
                      type: object
                      properties:
                        spec:
                          type: object
                          required: [endpoints, selector]
                          properties:
                            selector: {type: object, x-kubernetes-preserve-unknown-fields: true}
                            namespaceSelector:
                              type: object
                              properties: {any: {type: boolean}, matchNames: {type: array, items: {type: string}}}
                            endpoints:
                              type: array
                              items:
                                type: object
                                properties:
                                  port: {type: string}
                                  path: {type: string}
                                  interval: {type: string, pattern: '^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'}
                                  relabelings:
                                    type: array
                                    items:
                                      type: object
                                      properties:
                                        sourceLabels: {type: array, items: {type: string}}
                                        targetLabel: {type: string}
            """;
        const string RuleCrd = """
            apiVersion: apiextensions.k8s.io/v1
            kind: CustomResourceDefinition
            metadata: {name: prometheusrules.monitoring.coreos.com}
            spec:
              group: monitoring.coreos.com
              names: {kind: PrometheusRule, listKind: PrometheusRuleList, plural: prometheusrules, singular: prometheusrule}
              scope: Namespaced
              versions:
                - name: v1
                  served: true
                  storage: true
                  schema:
                    openAPIV3Schema:
                      type: object
                      properties:
                        spec:
                          type: object
                          properties:
                            groups:
                              type: array
                              items:
                                type: object
                                required: [name, rules]
                                properties:
                                  name: {type: string}
                                  rules:
                                    type: array
                                    items:
                                      type: object
                                      required: [expr]
                                      properties:
                                        alert: {type: string}
                                        record: {type: string}
                                        expr: {x-kubernetes-int-or-string: true}
                                        for: {type: string}
                                        labels: {type: object, additionalProperties: {type: string}}
                                        annotations: {type: object, additionalProperties: {type: string}}
            """;
        foreach (var (crd, name) in new[] { (Crd, "servicemonitors.monitoring.coreos.com"), (RuleCrd, "prometheusrules.monitoring.coreos.com") })
        {
            try
            {
                await fixture.Admin.ApiextensionsV1.CreateCustomResourceDefinitionAsync(KubernetesYaml.Deserialize<V1CustomResourceDefinition>(crd));
            }
            catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict)
            {
            }
            await RealApiLiveTests.Eventually(async () =>
                (await fixture.Admin.ApiextensionsV1.ReadCustomResourceDefinitionAsync(name)).Status?.Conditions?
                    .Any(c => c.Type == "Established" && c.Status == "True") == true,
                $"CRD {name} is established");
        }
    }
}
