using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Health;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Kubernetes.Manifests;

public static class ManifestSourceServiceCollectionExtensions
{
    /// <summary>
    /// Registers a <see cref="ManifestSource"/> for <paramref name="directory"/> as a singleton
    /// (so a status command can read its <see cref="ManifestSource.Errors"/>) and as a hosted
    /// service. Needs a <see cref="ClusterStore"/> singleton; uses the registered
    /// <see cref="TimeProvider"/>, or the system clock.
    /// </summary>
    public static IServiceCollection AddManifestSource(
        this IServiceCollection services, string directory, Action<ManifestSourceOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);

        var options = new ManifestSourceOptions();
        configure?.Invoke(options);
        options.Validate();

        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(provider => new ManifestSource(
            directory,
            provider.GetRequiredService<ClusterStore>(),
            provider.GetRequiredService<ILogger<ManifestSource>>(),
            provider.GetRequiredService<TimeProvider>(),
            options,
            provider.GetService<ProxyStatus>()));
        services.AddHostedService(provider => provider.GetRequiredService<ManifestSource>());
        return services;
    }
}
