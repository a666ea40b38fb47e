using EbpfProxy.Core.Sync;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace EbpfProxy.Core.Tests;

/// <summary>The sync runner's timing, driven by a fake clock.</summary>
public sealed class BoundedFrequencyRunnerTests : IAsyncDisposable
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));
    private readonly List<(SyncTrigger Trigger, DateTimeOffset At)> _syncs = [];
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;
    private int _failuresToInject;

    private BoundedFrequencyRunner Start(TimeSpan min, TimeSpan max)
    {
        var runner = new BoundedFrequencyRunner(
            (trigger, _) =>
            {
                lock (_syncs)
                    _syncs.Add((trigger, _time.GetUtcNow()));
                if (Interlocked.Decrement(ref _failuresToInject) >= 0)
                    throw new InvalidOperationException("injected failure");
                return Task.CompletedTask;
            },
            new BoundedFrequencyRunnerOptions { MinInterval = min, MaxInterval = max, RetryInitial = TimeSpan.FromSeconds(1), RetryMax = TimeSpan.FromSeconds(8) },
            _time,
            NullLogger.Instance);
        _loop = Task.Run(() => runner.RunAsync(_stop.Token));
        return runner;
    }

    private int Count
    {
        get
        {
            lock (_syncs)
                return _syncs.Count;
        }
    }

    /// <summary>Waits (in real time) until the loop has done <paramref name="n"/> syncs and is idle again.</summary>
    private async Task WaitForSyncs(int n)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Count < n)
        {
            Assert.True(DateTime.UtcNow < deadline, $"only {Count} of {n} syncs happened");
            await Task.Delay(5);
        }
        await Task.Delay(50); // let the loop reach its next wait
    }

    private async Task AssertNoMoreSyncs(int n)
    {
        await Task.Delay(100);
        Assert.Equal(n, Count);
    }

    [Fact]
    public async Task RequestsWithinTheMinimumIntervalCoalesceIntoOneSync()
    {
        var runner = Start(TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(10));
        await WaitForSyncs(1); // the first sync runs at once
        for (int i = 0; i < 5; i++)
        {
            runner.Request();
            _time.Advance(TimeSpan.FromMilliseconds(100));
        }
        await AssertNoMoreSyncs(1);
        _time.Advance(TimeSpan.FromMilliseconds(500));
        await WaitForSyncs(2);
        await AssertNoMoreSyncs(2);
        Assert.Equal(TimeSpan.FromSeconds(1), _syncs[1].At - _syncs[0].At);
        Assert.Equal(SyncTrigger.Requested, _syncs[1].Trigger);
    }

    [Fact]
    public async Task ARequestAfterAQuietPeriodSyncsImmediately()
    {
        var runner = Start(TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(10));
        await WaitForSyncs(1);
        _time.Advance(TimeSpan.FromSeconds(5));
        runner.Request();
        await WaitForSyncs(2);
        Assert.Equal(TimeSpan.FromSeconds(5), _syncs[1].At - _syncs[0].At);
    }

    [Fact]
    public async Task WithoutRequestsAPeriodicSyncRunsEveryMaxInterval()
    {
        Start(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
        await WaitForSyncs(1);
        _time.Advance(TimeSpan.FromSeconds(29));
        await AssertNoMoreSyncs(1);
        _time.Advance(TimeSpan.FromSeconds(1));
        await WaitForSyncs(2);
        Assert.Equal(SyncTrigger.Periodic, _syncs[1].Trigger);
    }

    [Fact]
    public async Task FailuresAreRetriedWithGrowingBackoff()
    {
        _failuresToInject = 3;
        var runner = Start(TimeSpan.Zero, TimeSpan.FromMinutes(10));
        await WaitForSyncs(1);
        Assert.Equal(1, runner.ConsecutiveFailures);
        _time.Advance(TimeSpan.FromMilliseconds(1250)); // first backoff: 1 s +-20 %
        await WaitForSyncs(2);
        Assert.Equal(SyncTrigger.Retry, _syncs[1].Trigger);
        _time.Advance(TimeSpan.FromMilliseconds(1500)); // second backoff is 2 s +-20 %: not yet
        await AssertNoMoreSyncs(2);
        _time.Advance(TimeSpan.FromMilliseconds(1000));
        await WaitForSyncs(3);
        _time.Advance(TimeSpan.FromSeconds(5)); // third backoff is 4 s +-20 %
        await WaitForSyncs(4);
        Assert.Equal(0, runner.ConsecutiveFailures);
        Assert.NotNull(runner.LastSuccess);
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        if (_loop is not null)
            await _loop.WaitAsync(TimeSpan.FromSeconds(5));
        _stop.Dispose();
    }
}
