using EbpfProxy.Core.Health;
using Microsoft.Extensions.Time.Testing;

namespace EbpfProxy.Core.Tests;

public class ProxyHealthTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));

    [Fact]
    public void FollowsSyncsAndWaitingChanges()
    {
        var health = new ProxyHealth(_time, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30));
        Assert.False(health.Evaluate().Healthy); // nothing synced yet

        health.Synced(_time.GetUtcNow());
        Assert.True(health.Evaluate().Healthy);

        // A change that waits less than the timeout is fine, longer is not.
        health.Queued();
        _time.Advance(TimeSpan.FromSeconds(59));
        Assert.True(health.Evaluate().Healthy);
        _time.Advance(TimeSpan.FromSeconds(2));
        var bad = health.Evaluate();
        Assert.False(bad.Healthy);
        Assert.Contains("waited", bad.Problem);

        // A sync that started after the change programs it.
        var started = _time.GetUtcNow();
        health.Synced(started);
        Assert.True(health.Evaluate().Healthy);
    }

    [Fact]
    public void ASyncThatStartedBeforeAChangeDoesNotClearIt()
    {
        var health = new ProxyHealth(_time, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30));
        var started = _time.GetUtcNow();
        _time.Advance(TimeSpan.FromSeconds(1));
        health.Queued();
        health.Synced(started);
        _time.Advance(TimeSpan.FromSeconds(61));
        Assert.False(health.Evaluate().Healthy);
    }

    [Fact]
    public void NoSuccessfulSyncForTooLongIsUnhealthy()
    {
        var health = new ProxyHealth(_time, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30));
        health.Synced(_time.GetUtcNow());
        _time.Advance(TimeSpan.FromSeconds(90));
        Assert.True(health.Evaluate().Healthy);
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Contains("no successful sync", health.Evaluate().Problem);
    }
}
