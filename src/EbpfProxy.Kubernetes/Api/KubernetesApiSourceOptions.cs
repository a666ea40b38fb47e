namespace EbpfProxy.Kubernetes.Api;

/// <summary>
/// Configuration of <see cref="KubernetesApiSource"/>: how to reach the API server, which node
/// this is, and the timing shared by its informers (see <see cref="ResourceInformerOptions"/>).
/// </summary>
public sealed class KubernetesApiSourceOptions
{
    /// <summary>The environment variables and file the in-cluster configuration reads.</summary>
    internal const string ServiceHostVariable = "KUBERNETES_SERVICE_HOST";
    internal const string ServicePortVariable = "KUBERNETES_SERVICE_PORT";
    internal const string ServiceAccountTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token";

    /// <summary>
    /// A kubeconfig file (its current context is used). Null: the in-cluster configuration
    /// (service account token and <c>KUBERNETES_SERVICE_HOST</c>/<c>PORT</c>), as in a DaemonSet pod.
    /// </summary>
    public string? KubeconfigPath { get; set; }

    /// <summary>This node's name: the Node object watched (field selector <c>metadata.name</c>).</summary>
    public string NodeName { get; set; } = "";

    /// <summary>
    /// Watch only the pods scheduled on this node (field selector <c>spec.nodeName</c>) instead
    /// of every pod in the cluster. Saves memory and API traffic on big clusters, but remote pod
    /// addresses, which NetworkPolicy identities need, are then unknown. Default false.
    /// </summary>
    public bool LocalPodsOnly { get; set; }

    /// <inheritdoc cref="ResourceInformerOptions.PageSize"/>
    public int PageSize { get; set; } = 2000;

    /// <inheritdoc cref="ResourceInformerOptions.SilentWatchGrace"/>
    public TimeSpan SilentWatchGrace { get; set; } = TimeSpan.FromSeconds(30);

    /// <inheritdoc cref="ResourceInformerOptions.WatchTimeout"/>
    public TimeSpan WatchTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <inheritdoc cref="ResourceInformerOptions.ListRequestTimeout"/>
    public TimeSpan ListRequestTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <inheritdoc cref="ResourceInformerOptions.InitialBackoff"/>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <inheritdoc cref="ResourceInformerOptions.MaxBackoff"/>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(30);

    /// <inheritdoc cref="ResourceInformerOptions.BackoffJitter"/>
    public double BackoffJitter { get; set; } = 0.2;

    /// <inheritdoc cref="ResourceInformerOptions.RelistAfterWatchFailures"/>
    public int RelistAfterWatchFailures { get; set; } = 3;

    /// <summary>A copy, so the caller may keep changing its own.</summary>
    public KubernetesApiSourceOptions Clone() => (KubernetesApiSourceOptions)MemberwiseClone();

    /// <summary>
    /// Throws <see cref="ArgumentException"/> with a message an operator can act on: a missing
    /// node name, a kubeconfig that does not exist, in-cluster configuration outside a pod, or
    /// timing out of range.
    /// </summary>
    public void Validate() => Validate(Environment.GetEnvironmentVariable, File.Exists);

    internal void Validate(Func<string, string?> environment, Func<string, bool> fileExists)
    {
        if (string.IsNullOrWhiteSpace(NodeName))
            throw new ArgumentException("the node name is empty: pass --node-name or set NODE_NAME (the downward API's spec.nodeName)");

        if (KubeconfigPath is not null)
        {
            if (string.IsNullOrWhiteSpace(KubeconfigPath))
                throw new ArgumentException("the kubeconfig path is empty");
            if (!fileExists(KubeconfigPath))
                throw new ArgumentException($"kubeconfig '{KubeconfigPath}' does not exist");
        }
        else
        {
            var missing = new[] { ServiceHostVariable, ServicePortVariable }
                .Where(name => string.IsNullOrEmpty(environment(name)))
                .ToList();
            if (missing.Count > 0)
                throw new ArgumentException(
                    $"in-cluster Kubernetes configuration requested but {string.Join(" and ", missing)} {(missing.Count == 1 ? "is" : "are")} not set " +
                    "(not running in a pod?): pass --kubeconfig PATH to reach the API server from outside the cluster, or --manifests DIR for standalone mode");
            if (!fileExists(ServiceAccountTokenPath))
                throw new ArgumentException(
                    $"in-cluster Kubernetes configuration requested but the service account token {ServiceAccountTokenPath} does not exist " +
                    "(automountServiceAccountToken disabled?): mount it, or pass --kubeconfig PATH");
        }

        try
        {
            ToInformerOptions().Validate();
        }
        catch (ArgumentOutOfRangeException ex)
        {
            throw new ArgumentException($"Kubernetes API source: {ex.ParamName} {ex.ActualValue} {ex.Message.Split(" (Parameter", 2)[0]}", ex);
        }
    }

    /// <summary>The informer options these settings imply (no selectors).</summary>
    internal ResourceInformerOptions ToInformerOptions() => new()
    {
        PageSize = PageSize,
        SilentWatchGrace = SilentWatchGrace,
        WatchTimeout = WatchTimeout,
        ListRequestTimeout = ListRequestTimeout,
        InitialBackoff = InitialBackoff,
        MaxBackoff = MaxBackoff,
        BackoffJitter = BackoffJitter,
        RelistAfterWatchFailures = RelistAfterWatchFailures,
    };
}
