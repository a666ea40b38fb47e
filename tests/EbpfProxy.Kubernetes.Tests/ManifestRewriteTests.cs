using EbpfProxy.Core.Cluster;
using EbpfProxy.Kubernetes.Manifests;

namespace EbpfProxy.Kubernetes.Tests;

/// <summary>
/// Issue 14 item 5: a manifest rewritten in place (truncated, then written again a moment later)
/// must not delete its objects in between; a file that stays empty does, once it has settled.
/// </summary>
public sealed class ManifestRewriteTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly ClusterStore _store = new();
    private readonly ListLogger _logger = new();

    public void Dispose() => _dir.Dispose();

    private const string Echo = """
        apiVersion: v1
        kind: Service
        metadata: {name: echo}
        spec:
          clusterIP: 10.96.0.42
          selector: {app: echo}
          ports: [{port: 80, targetPort: 8080}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: echo-1, labels: {app: echo}}
        spec: {nodeName: node-1, containers: [{name: echo, image: echo}]}
        status: {phase: Running, podIP: 10.244.0.11, conditions: [{type: Ready, status: "True"}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: echo-2, labels: {app: echo}}
        spec: {nodeName: node-1, containers: [{name: echo, image: echo}]}
        status: {phase: Running, podIP: 10.244.0.12, conditions: [{type: Ready, status: "True"}]}

        """;

    private ManifestSource NewSource(TimeSpan settle) => new(_dir.Path, _store, _logger, TimeProvider.System,
        new ManifestSourceOptions { UseFileSystemWatcher = false, SettleTime = settle, PollInterval = TimeSpan.FromMilliseconds(100) });

    private bool HasEcho => _store.Snapshot().Services.ContainsKey("default/echo");

    [Fact]
    public void A_truncate_then_rewrite_never_removes_the_service()
    {
        var file = _dir.File("echo.yaml");
        File.WriteAllText(file, Echo);
        using var source = NewSource(TimeSpan.FromSeconds(3));
        source.ReadNow();
        Assert.True(HasEcho);
        var lost = false;
        _store.Changed += () => lost |= !HasEcho || _store.Snapshot().Pods.Count < 2;

        File.WriteAllText(file, "");               // the truncation
        source.ReadNow();                           // a read lands in between
        Thread.Sleep(300);
        File.WriteAllText(file, Echo);             // written again 0.3 s later
        source.ReadNow();

        Assert.False(lost, "the Service or its pods disappeared during the rewrite");
        Assert.True(HasEcho);
        Assert.Equal(2, _store.Snapshot().Pods.Count);
    }

    [Fact]
    public void A_half_written_file_keeps_what_it_had()
    {
        var file = _dir.File("echo.yaml");
        File.WriteAllText(file, Echo);
        using var source = NewSource(TimeSpan.FromSeconds(3));
        source.ReadNow();

        // Cut in the middle of the second Pod: its metadata has no name yet.
        File.WriteAllText(file, Echo[..(Echo.IndexOf("metadata: {name: echo-2", StringComparison.Ordinal))] + "metadata:\n");
        source.ReadNow();

        Assert.True(HasEcho);
        Assert.Equal(2, _store.Snapshot().Pods.Count);
    }

    [Fact]
    public async Task A_file_that_stays_empty_removes_its_objects_once_settled()
    {
        var file = _dir.File("echo.yaml");
        File.WriteAllText(file, Echo);
        var settle = TimeSpan.FromMilliseconds(800);
        using var source = NewSource(settle);
        await source.StartAsync(CancellationToken.None);
        try
        {
            await Wait.ForStoreAsync(_store, () => { }, _ => HasEcho);
            var took = await Wait.ForStoreAsync(_store, () => File.WriteAllText(file, ""), _ => !HasEcho);
            Assert.True(took >= settle, $"removed after {took}, before the settle time {settle}");
        }
        finally
        {
            await source.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public void A_valid_edit_with_fewer_objects_applies_at_once()
    {
        var file = _dir.File("echo.yaml");
        File.WriteAllText(file, Echo);
        using var source = NewSource(TimeSpan.FromSeconds(30));
        source.ReadNow();

        File.WriteAllText(file, Echo[..Echo.IndexOf("---", Echo.IndexOf("echo-1", StringComparison.Ordinal), StringComparison.Ordinal)]);
        source.ReadNow();

        Assert.True(HasEcho);
        Assert.Equal(["default/echo-1"], _store.Snapshot().Pods.Keys);
    }
}
