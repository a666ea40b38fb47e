using EbpfProxy.Core.Cluster;
using EbpfProxy.Kubernetes.Manifests;

namespace EbpfProxy.Kubernetes.Tests;

/// <summary>
/// Issue 14 item 10: the same object in two files is decided as the API server would (the one
/// created first stands; a later copy is refused), never by which file sorts first, and the
/// conflict is reported against both files.
/// </summary>
public sealed class ManifestConflictTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly ClusterStore _store = new();
    private readonly ListLogger _logger = new();

    public void Dispose() => _dir.Dispose();

    private static string Service(string clusterIP, string? created = null) => $$"""
        apiVersion: v1
        kind: Service
        metadata:
          name: echo
          {{(created is null ? "" : $"creationTimestamp: \"{created}\"")}}
        spec:
          clusterIP: {{clusterIP}}
          ports: [{port: 80}]

        """;

    private ManifestSource NewSource() => new(_dir.Path, _store, _logger, TimeProvider.System, new ManifestSourceOptions { UseFileSystemWatcher = false });

    private string ClusterIP => _store.Snapshot().Services["default/echo"].Spec.ClusterIP;

    [Fact]
    public void A_later_copy_in_a_file_that_sorts_first_does_not_take_over_the_vip()
    {
        File.WriteAllText(_dir.File("b-echo.yaml"), Service("10.96.0.42"));
        using var source = NewSource();
        source.ReadNow();
        Assert.Equal("10.96.0.42", ClusterIP);

        File.WriteAllText(_dir.File("a-copy.yaml"), Service("10.96.0.99"));
        source.ReadNow();

        Assert.Equal("10.96.0.42", ClusterIP);
        AssertReportedAgainstBoth(source, used: "b-echo.yaml", ignored: "a-copy.yaml");
    }

    [Fact]
    public void The_copy_created_first_wins_whatever_the_file_order()
    {
        File.WriteAllText(_dir.File("a-new.yaml"), Service("10.96.0.99", created: "2025-02-01T00:00:00Z"));
        File.WriteAllText(_dir.File("b-old.yaml"), Service("10.96.0.42", created: "2025-01-01T00:00:00Z"));
        using var source = NewSource();

        source.ReadNow();

        Assert.Equal("10.96.0.42", ClusterIP);
        AssertReportedAgainstBoth(source, used: "b-old.yaml", ignored: "a-new.yaml");
    }

    [Fact]
    public void When_the_copy_in_use_goes_away_the_other_takes_over_and_the_conflict_clears()
    {
        File.WriteAllText(_dir.File("b-echo.yaml"), Service("10.96.0.42"));
        using var source = NewSource();
        source.ReadNow();
        File.WriteAllText(_dir.File("a-copy.yaml"), Service("10.96.0.99"));
        source.ReadNow();

        File.Delete(_dir.File("b-echo.yaml"));
        source.ReadNow();

        Assert.Equal("10.96.0.99", ClusterIP);
        Assert.Empty(source.Errors);
    }

    private void AssertReportedAgainstBoth(ManifestSource source, string used, string ignored)
    {
        var onIgnored = Assert.Single(source.Errors, e => e.File == _dir.File(ignored));
        Assert.Equal("Service default/echo", onIgnored.Object);
        Assert.Contains($"also defined in {used}", onIgnored.Message, StringComparison.Ordinal);
        Assert.Contains("ignored", onIgnored.Message, StringComparison.Ordinal);
        var onUsed = Assert.Single(source.Errors, e => e.File == _dir.File(used));
        Assert.Equal("Service default/echo", onUsed.Object);
        Assert.Contains($"also defined in {ignored}", onUsed.Message, StringComparison.Ordinal);
        Assert.Contains("this copy is used", onUsed.Message, StringComparison.Ordinal);
    }
}
