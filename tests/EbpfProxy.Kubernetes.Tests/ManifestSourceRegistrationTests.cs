using EbpfProxy.Core.Cluster;
using EbpfProxy.Kubernetes.Manifests;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace EbpfProxy.Kubernetes.Tests;

public class ManifestSourceRegistrationTests
{
    [Fact]
    public async Task Add_manifest_source_registers_one_instance_as_singleton_and_hosted_service()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("svc.yaml"), "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n");
        var store = new ClusterStore();
        var services = new ServiceCollection()
            .AddLogging()
            .AddSingleton(store)
            .AddManifestSource(dir.Path, options => options.PollInterval = TimeSpan.FromMilliseconds(500));
        await using var provider = services.BuildServiceProvider();

        var hosted = Assert.Single(provider.GetServices<IHostedService>());
        var source = provider.GetRequiredService<ManifestSource>();
        Assert.Same(source, hosted);
        Assert.Equal(dir.Path, source.Directory);

        await hosted.StartAsync(CancellationToken.None);
        await store.WaitForSyncedAsync(CancellationToken.None).WaitAsync(Wait.Timeout);
        await hosted.StopAsync(CancellationToken.None);

        Assert.Single(store.Snapshot().Services);
    }

    [Fact]
    public void Invalid_options_fail_at_registration()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            new ServiceCollection().AddManifestSource("/tmp", options => options.PollInterval = TimeSpan.Zero));
    }
}
