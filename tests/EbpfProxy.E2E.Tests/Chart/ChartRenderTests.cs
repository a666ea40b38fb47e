using EbpfProxy.Testing;
using k8s.Models;

namespace EbpfProxy.E2E.Tests.Chart;

/// <summary>
/// The chart rendered with Helm's engine (<see cref="HelmChart"/>) for its default values and for
/// ci/full-values.yaml: what it renders, that values.schema.json refuses bad values, and that the daemon's
/// container is least privilege. The API server judges the same objects in <see cref="ChartRealApiTests"/>.
/// </summary>
public sealed class ChartRenderTests
{
    private static readonly string[] DaemonCapabilities = ["BPF", "NET_ADMIN", "PERFMON"];

    [Fact]
    public void DefaultValuesRenderTheDaemonSetRbacAndMetricsService()
    {
        var docs = HelmChart.Documents(HelmChart.Render());
        // (Other objects, such as the observability work's dashboard, may come with them.)
        Assert.Superset(
            new HashSet<string> { "ClusterRole/ebpf-proxy", "ClusterRoleBinding/ebpf-proxy", "DaemonSet/ebpf-proxy", "Service/ebpf-proxy-metrics", "ServiceAccount/ebpf-proxy" },
            docs.Keys.ToHashSet());
        Assert.DoesNotContain("ServiceMonitor/ebpf-proxy", docs.Keys);
        var svc = k8s.KubernetesYaml.Deserialize<V1Service>(docs["Service/ebpf-proxy-metrics"]);
        Assert.Equal("true", svc.Metadata.Annotations["prometheus.io/scrape"]);
        Assert.Equal("10249", svc.Metadata.Annotations["prometheus.io/port"]);
        Assert.Equal(10249, Assert.Single(svc.Spec.Ports).Port);
    }

    [Fact]
    public void FullValuesReachEveryDaemonOption()
    {
        var rendered = HelmChart.Render(HelmChart.FullValues);
        Assert.Superset(new HashSet<string> { "ServiceMonitor/ebpf-proxy", "ConfigMap/ebpf-proxy-dashboard", "PrometheusRule/ebpf-proxy" }, HelmChart.Documents(rendered).Keys.ToHashSet());
        var c = HelmChart.DaemonSet(rendered).Spec.Template.Spec.Containers.Single();
        Assert.Equal("registry.example/net/ebpf-proxy:0.2.0-rc1", c.Image);
        Assert.Equal(
            ["run", "--bpffs=/sys/fs/bpf", "--bpf-dir=/app", "--sync-period=45", "--min-sync-interval=0.5",
             "--healthz-bind-address=0.0.0.0:10356", "--metrics-bind-address=0.0.0.0:10349", "--metrics-map-interval=15",
             "--conntrack-max=1048576", "--policy-conntrack-max=2000000", "--pod-interfaces=veth*,cali*",
             "--service-cidr=10.96.0.0/12", "--cluster-cidr=10.244.0.0/16", "--masquerade-all", "--masquerade-address=192.0.2.10",
             "--nodeport-addresses=192.0.2.0/24,198.51.100.0/24", "--netdev-interfaces=eth*,ens*",
             "--host-services=true", "--cgroup-root=/host/sys/fs/cgroup"],
            c.Args);
        Assert.Equal("Debug", c.Env.Single(e => e.Name == "Logging__LogLevel__Default").Value);
        Assert.Equal("spec.nodeName", c.Env.Single(e => e.Name == "NODE_NAME").ValueFrom.FieldRef.FieldPath);
    }

    [Theory]
    [InlineData("serviceCidr: 10.96.0.0/33x", "serviceCidr")]
    [InlineData("metrics: {port: 70000}", "metrics.port")]
    [InlineData("logLevel: Loud", "logLevel")]
    [InlineData("conntrackMax: -1", "conntrackMax")]
    [InlineData("hostServices: {enabeld: true}", "enabeld")]
    [InlineData("podInterfaces: []", "podInterfaces")]
    [InlineData("nodePortAddresses: [\"10.0.0.1\"]", "nodePortAddresses.0")]
    public void TheSchemaRefusesBadValuesNamingThem(string values, string named)
    {
        var r = HelmChart.TryRender([HelmChart.ValuesFile(values)]);
        Assert.False(r.Succeeded, $"rendered despite '{values}':\n{r.Stdout}");
        Assert.Contains("values don't meet the specifications of the schema", r.Stderr, StringComparison.Ordinal);
        Assert.Contains(named, r.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TheDaemonContainerHasNamedCapabilitiesOnly(bool full)
    {
        var ds = HelmChart.DaemonSet(full ? HelmChart.Render(HelmChart.FullValues) : HelmChart.Render());
        var spec = ds.Spec.Template.Spec;
        var c = spec.Containers.Single();
        var sc = c.SecurityContext;
        Assert.False(sc.Privileged ?? false);
        Assert.False(sc.AllowPrivilegeEscalation ?? true);
        Assert.True(sc.ReadOnlyRootFilesystem);
        Assert.Equal("RuntimeDefault", sc.SeccompProfile.Type);
        Assert.Equal(["ALL"], sc.Capabilities.Drop);
        Assert.Equal(DaemonCapabilities, sc.Capabilities.Add);
        // Bidirectional propagation is for privileged containers only: the daemon sees the host's mounts.
        Assert.All(c.VolumeMounts, m => Assert.NotEqual("Bidirectional", m.MountPropagation));
        Assert.Equal("HostToContainer", c.VolumeMounts.Single(m => m.MountPath == "/sys/fs/bpf").MountPropagation);
        Assert.True(spec.HostNetwork);
        Assert.Equal("system-node-critical", spec.PriorityClassName);
        Assert.Contains(spec.Tolerations, t => t.OperatorProperty == "Exists" && t.Key is null);
        Assert.Equal("1", ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.Value);
    }

    [Fact]
    public void OnlyTheOptionalInitContainerIsPrivileged()
    {
        // Defaults: the init container mounts bpffs when the host has none.
        var init = Assert.Single(HelmChart.DaemonSet(HelmChart.Render()).Spec.Template.Spec.InitContainers);
        Assert.True(init.SecurityContext.Privileged);
        Assert.Contains("mount -t bpf", init.Args.Single(), StringComparison.Ordinal);
        Assert.DoesNotContain("cgroup2", init.Args.Single(), StringComparison.Ordinal);
        // Full values: the host mounts bpffs, the chart mounts cgroup2.
        init = Assert.Single(HelmChart.DaemonSet(HelmChart.Render(HelmChart.FullValues)).Spec.Template.Spec.InitContainers);
        Assert.Contains("mount -t cgroup2", init.Args.Single(), StringComparison.Ordinal);
        Assert.DoesNotContain("mount -t bpf", init.Args.Single(), StringComparison.Ordinal);
        // The operator says the host mounts both: nothing privileged is left.
        var none = HelmChart.ValuesFile("bpffs: {mount: false}\nhostServices: {cgroup2: {mount: false}}\n");
        var spec = HelmChart.DaemonSet(HelmChart.Render(none)).Spec.Template.Spec;
        Assert.Null(spec.InitContainers);
        Assert.All(spec.Containers, c => Assert.False(c.SecurityContext.Privileged ?? false));
    }

    [Fact]
    public void MetricsOffRendersAnEmptyAddressAndNoService()
    {
        var rendered = HelmChart.Render(HelmChart.ValuesFile("metrics: {enabled: false, port: 10249, bindAddress: 0.0.0.0}"));
        Assert.DoesNotContain("Service/ebpf-proxy-metrics", HelmChart.Documents(rendered).Keys);
        var args = HelmChart.DaemonSet(rendered).Spec.Template.Spec.Containers.Single().Args;
        Assert.Equal("", args[args.IndexOf("--metrics-bind-address") + 1]);
    }

    /// <summary>
    /// `ebpf-proxy run` parses and validates the rendered args (default, full, metrics off) up to its privilege check:
    /// run without capabilities it refuses for lack of them, not for an argument. (ChartRealApiTests runs them for real.)
    /// </summary>
    [Theory]
    [InlineData("")]
    [InlineData("full")]
    [InlineData("metrics: {enabled: false, port: 10249, bindAddress: 0.0.0.0}")]
    public void EbpfProxyRunAcceptsTheRenderedArgs(string values)
    {
        var rendered = values switch
        {
            "" => HelmChart.Render(),
            "full" => HelmChart.Render(HelmChart.FullValues),
            _ => HelmChart.Render(HelmChart.ValuesFile(values)),
        };
        var c = HelmChart.DaemonSet(rendered).Spec.Template.Spec.Containers.Single();
        Assert.Equal("/app/ebpf-proxy", c.Command.Single());
        // No capabilities at all: as nobody when root can switch, else as the unprivileged test user.
        var r = Environment.UserName == "root"
            ? Cmd.TryRun("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--bounding-set=-all", "--inh-caps=-all", "--",
                Binaries.EbpfProxy, .. c.Args, "--kubeconfig", "/dev/null", "--node-name", "node"])
            : Cmd.TryRun(Binaries.EbpfProxy, [.. c.Args, "--kubeconfig", "/dev/null", "--node-name", "node"]);
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("error: ebpf-proxy run needs root", r.Stderr.Trim(), StringComparison.Ordinal);
    }

    [Fact]
    public void NotesTellHowToCheckTheInstall()
    {
        var r = HelmChart.TryRender([], notes: true, release: "proxy", ns: "net");
        Assert.True(r.Succeeded, r.Stderr);
        Assert.Contains("kubectl -n net exec ds/proxy -- ebpf-proxy lb list", r.Stdout, StringComparison.Ordinal);
    }
}
