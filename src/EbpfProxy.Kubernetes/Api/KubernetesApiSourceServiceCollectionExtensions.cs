using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Kubernetes.Api;

public static class KubernetesApiSourceServiceCollectionExtensions
{
    /// <summary>
    /// Registers a <see cref="KubernetesApiSource"/> as a singleton (so a status command can read
    /// its informers) and as a hosted service. Validates <paramref name="options"/> now (throws
    /// <see cref="ArgumentException"/> with an operator-facing message). Needs a
    /// <see cref="ClusterStore"/> singleton; registers <see cref="ProxyMetrics"/> and the system
    /// <see cref="TimeProvider"/> when absent. The client is built, and the kubeconfig read, on
    /// another thread from this call on (KubernetesClient's YAML loader first reflects over every
    /// model type: ~0.2 s, which would otherwise delay the first list by as much); resolving the
    /// source waits for it and throws what building it threw.
    /// </summary>
    public static IServiceCollection AddKubernetesApiSource(this IServiceCollection services, KubernetesApiSourceOptions options)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(options);
        options = options.Clone();
        options.Validate();

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(_ => new ProxyMetrics());
        var prebuilt = Task.Run(() => KubernetesApiSource.CreateClient(options));
        int taken = 0;
        services.AddSingleton(provider => new KubernetesApiSource(
            // Each source owns its client: a second service provider builds its own.
            Interlocked.Exchange(ref taken, 1) == 0 ? prebuilt.GetAwaiter().GetResult() : KubernetesApiSource.CreateClient(options),
            provider.GetRequiredService<ClusterStore>(),
            provider.GetRequiredService<ProxyMetrics>(),
            provider.GetRequiredService<ILoggerFactory>(),
            provider.GetRequiredService<TimeProvider>(),
            options,
            ownsClient: true));
        services.AddHostedService(provider => provider.GetRequiredService<KubernetesApiSource>());
        return services;
    }
}
