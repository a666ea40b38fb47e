namespace EbpfProxy.Daemon;

/// <summary>Options of `ebpf-proxy run`, validated at start-up.</summary>
public sealed class ProxyOptions
{
    /// <summary>Standalone mode: follow the Kubernetes manifests in this folder instead of an API server.</summary>
    public string? ManifestsDirectory { get; set; }

    /// <summary>API mode: the kubeconfig to use; null means the in-cluster service account.</summary>
    public string? KubeconfigPath { get; set; }

    /// <summary>This node's name (endpoints with this nodeName are local).</summary>
    public string NodeName { get; set; } = "";

    /// <summary>At most one sync per interval (kube-proxy's --min-sync-period).</summary>
    public TimeSpan MinSyncInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Full resync period: re-reads the maps and heals drift (kube-proxy's --sync-period).</summary>
    public TimeSpan SyncPeriod { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>--nodeport-addresses: CIDRs of the local addresses NodePorts are served on; empty = the node's primary addresses.</summary>
    public IReadOnlyList<System.Net.IPNetwork> NodePortCidrs { get; set; } = [];

    /// <summary>Where /healthz and /livez are served (kube-proxy's --healthz-bind-address); empty disables.</summary>
    public string HealthzBindAddress { get; set; } = "0.0.0.0:10256";

    /// <summary>Where /metrics is served in Prometheus text format (kube-proxy's --metrics-bind-address); empty disables.</summary>
    public string MetricsBindAddress { get; set; } = "0.0.0.0:10249";

    /// <summary>How often the pinned maps are walked for their fill (ebpfproxy_map_entries, conntrack_entries); scrapes read the last walk.</summary>
    public TimeSpan MetricsMapInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a change may wait for a successful sync before /healthz says 503.</summary>
    public TimeSpan HealthTimeout { get; set; } = TimeSpan.FromSeconds(60);

    public void Validate()
    {
        if (!string.IsNullOrEmpty(HealthzBindAddress))
            _ = DaemonHttpServer.ParseEndpoint(HealthzBindAddress, "--healthz-bind-address");
        if (!string.IsNullOrEmpty(MetricsBindAddress))
            _ = DaemonHttpServer.ParseEndpoint(MetricsBindAddress, "--metrics-bind-address");
        if (MetricsMapInterval <= TimeSpan.Zero)
            throw new ArgumentException("--metrics-map-interval must be positive");
        if (ManifestsDirectory is not null && KubeconfigPath is not null)
            throw new ArgumentException("--manifests and --kubeconfig exclude each other: pick standalone mode or an API server");
        if (ManifestsDirectory is not null && !Directory.Exists(ManifestsDirectory))
            throw new ArgumentException($"manifest directory '{ManifestsDirectory}' does not exist");
        if (string.IsNullOrWhiteSpace(NodeName))
            throw new ArgumentException("--node-name is empty (and NODE_NAME is unset)");
        if (MinSyncInterval < TimeSpan.Zero)
            throw new ArgumentException("--min-sync-interval must not be negative");
        if (SyncPeriod <= TimeSpan.Zero)
            throw new ArgumentException("--sync-period must be positive");
    }
}
