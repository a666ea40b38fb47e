using System.Collections.Immutable;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Metrics;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Kubernetes.Api;

/// <summary>
/// Feeds the <see cref="ClusterStore"/> from a Kubernetes API server: one
/// <see cref="ResourceInformer{T, TList}"/> per resource the proxy needs, all running for the
/// life of the host.
/// </summary>
/// <remarks>
/// <para>Resources followed:</para>
/// <list type="bullet">
/// <item>v1 Services, discovery.k8s.io/v1 EndpointSlices and networking.k8s.io/v1 NetworkPolicies, all namespaces;</item>
/// <item>v1 Pods, all namespaces: NetworkPolicy needs the address and labels of remote pods to
/// give them identities. This is the expensive one: every pod of the cluster is held in memory
/// (estimate: several KB each once <c>managedFields</c> is dropped, on the order of 100 MB per
/// 10,000 pods) and every pod status change in the cluster reaches every node. <see cref="KubernetesApiSourceOptions.LocalPodsOnly"/>
/// narrows it to this node's pods where policy is not needed;</item>
/// <item>v1 Namespaces (namespace selectors of policies);</item>
/// <item>this node's v1 Node only (field selector <c>metadata.name</c>).</item>
/// </list>
/// <para>
/// Each informer registers its own source with the store when this class is constructed, so the
/// store reports synced only once every resource has been listed once. Objects are not filtered
/// here beyond these selectors; what to skip is decided in translation.
/// </para>
/// </remarks>
public sealed partial class KubernetesApiSource : BackgroundService
{
    private readonly IKubernetes _client;
    private readonly bool _ownsClient;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly KubernetesApiSourceOptions _options;

    /// <param name="client">The KubernetesClient to use (see <see cref="CreateClient"/>).</param>
    /// <param name="store">The store to feed; every informer registers with it here.</param>
    /// <param name="metrics">Watch restarts, watch errors, changes recorded.</param>
    /// <param name="loggerFactory">Loggers for the source and its informers.</param>
    /// <param name="timeProvider">Clock for backoff, silent-watch detection and timeouts.</param>
    /// <param name="options">Node name and timing; validated here except for the client configuration.</param>
    /// <param name="ownsClient">Dispose <paramref name="client"/> with this source.</param>
    public KubernetesApiSource(
        IKubernetes client,
        ClusterStore store,
        ProxyMetrics metrics,
        ILoggerFactory loggerFactory,
        TimeProvider timeProvider,
        KubernetesApiSourceOptions options,
        bool ownsClient = false)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(options);
        options = options.Clone();
        if (string.IsNullOrWhiteSpace(options.NodeName))
            throw new ArgumentException("the node name is empty", nameof(options));
        var common = options.ToInformerOptions();
        common.Validate();

        _client = client;
        _ownsClient = ownsClient;
        _logger = loggerFactory.CreateLogger<KubernetesApiSource>();
        _time = timeProvider;
        _options = options;

        var informerLogger = loggerFactory.CreateLogger("EbpfProxy.Kubernetes.Api.ResourceInformer");
        ResourceInformer<T, TList> Informer<T, TList>(ResourceKind<T, TList> kind, string? fieldSelector = null)
            where T : IKubernetesObject<V1ObjectMeta>
            where TList : IKubernetesObject<V1ListMeta>, IItems<T>
        {
            var informerOptions = common.Clone();
            informerOptions.FieldSelector = fieldSelector;
            return new ResourceInformer<T, TList>(kind, client, store, metrics, informerLogger, timeProvider, informerOptions);
        }

        Informers =
        [
            Informer(KubernetesResources.Services),
            Informer(KubernetesResources.EndpointSlices),
            Informer(KubernetesResources.NetworkPolicies),
            Informer(KubernetesResources.Pods, options.LocalPodsOnly ? $"spec.nodeName={options.NodeName}" : null),
            Informer(KubernetesResources.Namespaces),
            Informer(KubernetesResources.Nodes, $"metadata.name={options.NodeName}"),
        ];
    }

    /// <summary>The informers, in start order: services, endpointslices, networkpolicies, pods, namespaces, nodes.</summary>
    public ImmutableArray<IResourceInformer> Informers { get; }

    /// <summary>True once every informer has listed once.</summary>
    public bool HasSynced => Informers.All(i => i.HasSynced);

    /// <summary>Completes once every informer has listed once.</summary>
    public Task ReadyAsync(CancellationToken cancellationToken) =>
        Task.WhenAll(Informers.Select(i => i.ReadyAsync(cancellationToken)));

    /// <summary>
    /// The client configuration <paramref name="options"/> asks for: the kubeconfig file's
    /// current context, or the in-cluster configuration when no kubeconfig is given.
    /// </summary>
    /// <exception cref="ArgumentException">The configuration cannot be loaded; the message says why.</exception>
    public static KubernetesClientConfiguration BuildClientConfiguration(KubernetesApiSourceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        try
        {
            return options.KubeconfigPath is { } path
                ? KubernetesClientConfiguration.BuildConfigFromConfigFile(path)
                : KubernetesClientConfiguration.InClusterConfig();
        }
        catch (Exception ex) when (ex is k8s.Exceptions.KubeConfigException or IOException or UnauthorizedAccessException
            or YamlDotNet.Core.YamlException or FormatException)
        {
            var what = options.KubeconfigPath is { } p ? $"kubeconfig '{p}'" : "the in-cluster configuration";
            throw new ArgumentException($"cannot load {what}: {ex.Message}", ex);
        }
    }

    /// <summary>A KubernetesClient for <paramref name="options"/> (see <see cref="BuildClientConfiguration"/>).</summary>
    public static IKubernetes CreateClient(KubernetesApiSourceOptions options) =>
        new k8s.Kubernetes(BuildClientConfiguration(options));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var started = _time.GetTimestamp();
        Log.Starting(_logger, _client.BaseUri?.ToString() ?? "", _options.NodeName, string.Join(", ", Informers.Select(i => i.Resource)));
        var runs = Informers.Select(i => i.RunAsync(stoppingToken)).ToList();
        runs.Add(ReportSyncedAsync(started, stoppingToken));
        await Task.WhenAll(runs).ConfigureAwait(false);
    }

    private async Task ReportSyncedAsync(long started, CancellationToken stoppingToken)
    {
        try
        {
            await ReadyAsync(stoppingToken).ConfigureAwait(false);
            Log.AllSynced(_logger, Informers.Length, _time.GetElapsedTime(started).TotalMilliseconds);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    public override void Dispose()
    {
        base.Dispose();
        if (_ownsClient)
            _client.Dispose();
    }
}
