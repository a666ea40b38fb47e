using System.Collections.Concurrent;
using EbpfProxy.Kubernetes.Api;
using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;

namespace EbpfProxy.Kubernetes.Tests.Api;

/// <summary>
/// The informer's timing against a fake clock (the fake API server is real HTTP; only the informer's
/// delays and timeouts run on the fake clock): the backoff starts over after a success, and the
/// silent-watch limit follows the timeout the watch asked for.
/// </summary>
public sealed class InformerClockTests(ITestOutputHelper output) : IAsyncLifetime
{
    private ApiHarness _api = null!;
    private readonly RecordingClock _clock = new();

    public async Task InitializeAsync() => _api = await ApiHarness.StartAsync(output);

    public async Task DisposeAsync() => await _api.DisposeAsync();

    /// <summary>A fake clock that records every one-shot timer (Task.Delay's and timeouts') it is asked for.</summary>
    private sealed class RecordingClock : FakeTimeProvider
    {
        public ConcurrentQueue<TimeSpan> OneShots { get; } = new();

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            if (period == Timeout.InfiniteTimeSpan)
                OneShots.Enqueue(dueTime);
            return base.CreateTimer(callback, state, dueTime, period);
        }

        /// <summary>Backoff delays asked for so far: whole seconds below a minute (the tests' request timeouts and watch limits are longer).</summary>
        public List<TimeSpan> Delays => [.. OneShots.Where(d => d > TimeSpan.Zero && d < TimeSpan.FromMinutes(1))];
    }

    private static ResourceInformerOptions Options() => ApiHarness.Options(o =>
    {
        o.InitialBackoff = TimeSpan.FromSeconds(1);
        o.MaxBackoff = TimeSpan.FromSeconds(50);
        o.BackoffJitter = 0; // exact delays
        o.ListRequestTimeout = TimeSpan.FromMinutes(2);
        o.WatchTimeout = TimeSpan.FromMinutes(5);
        o.RelistAfterWatchFailures = 100;
    });

    /// <summary>Waits (real time) until the informer has asked for its <paramref name="n"/>th backoff delay, and returns it.</summary>
    private async Task<TimeSpan> NthDelayAsync(int n)
    {
        await Eventually.ThatAsync(() => _clock.Delays.Count >= n, $"backoff delay #{n} requested");
        return _clock.Delays[n - 1];
    }

    [Fact]
    public async Task ASuccessfulListResetsTheBackoffAnOutageGrew()
    {
        _api.Server.Upsert(ApiHarness.Service("a"));
        _api.Server.SetDown(true);
        var informer = _api.Run(_api.Services(Options(), _clock));
        // Four failed lists: 1, 2, 4, 8 s.
        for (int i = 1; i <= 4; i++)
        {
            Assert.Equal(TimeSpan.FromSeconds(1 << (i - 1)), await NthDelayAsync(i));
            if (i < 4)
                _clock.Advance(TimeSpan.FromSeconds(1 << (i - 1)));
        }
        _api.Server.SetDown(false);
        _clock.Advance(TimeSpan.FromSeconds(8));
        await Eventually.ThatAsync(() => informer.HasSynced, "listed after the outage");
        await _api.Server.WaitForWatchesAsync("services");

        // One dropped watch right after: retried after the initial delay, not after 16 s.
        _api.Server.DropWatches();
        Assert.Equal(TimeSpan.FromSeconds(1), await NthDelayAsync(5));
        _clock.Advance(TimeSpan.FromSeconds(1));
        await _api.Server.WaitForWatchesAsync("services");
        _api.Server.Upsert(ApiHarness.Service("b"));
        await _api.ServicesAreAsync("a", "b");
    }

    [Fact]
    public async Task AWatchThatLivedLongEnoughResetsTheBackoff()
    {
        _api.Server.BookmarkInterval = TimeSpan.FromHours(1); // no event at all on these watches
        _api.Server.Upsert(ApiHarness.Service("a"));
        var informer = _api.Run(_api.Services(Options(), _clock));
        await Eventually.ThatAsync(() => informer.HasSynced, "listed");
        // Three watches dropped at once, eventless: 1, 2, 4 s.
        for (int i = 1; i <= 3; i++)
        {
            await _api.Server.WaitForWatchesAsync("services");
            _api.Server.DropWatches();
            Assert.Equal(TimeSpan.FromSeconds(1 << (i - 1)), await NthDelayAsync(i));
            _clock.Advance(TimeSpan.FromSeconds(1 << (i - 1)));
        }
        // This one lives (on the informer's clock) past the healthy lifetime, still without an event, then drops.
        await _api.Server.WaitForWatchesAsync("services");
        _clock.Advance(ResourceInformer<k8s.Models.V1Service, k8s.Models.V1ServiceList>.HealthyWatchLifetime + TimeSpan.FromSeconds(1));
        _api.Server.DropWatches();
        Assert.Equal(TimeSpan.FromSeconds(1), await NthDelayAsync(4));
        Assert.Equal(0, _api.Recorder.Restarts("services", "silent"));
    }

    [Fact]
    public async Task AQuietWatchIsNotSilentBeforeItsRequestedTimeoutHasPassed()
    {
        _api.Server.BookmarkInterval = TimeSpan.FromHours(1); // a 1.28 server: no periodic bookmarks
        _api.Server.Upsert(ApiHarness.Service("a"));
        var informer = _api.Run(_api.Services(Options(), _clock));
        await Eventually.ThatAsync(() => informer.HasSynced, "listed");
        await _api.Server.WaitForWatchesAsync("services");
        var asked = int.Parse(System.Text.RegularExpressions.Regex.Match(
            _api.Server.RequestLog.Last(r => r.Verb == "watch").Query, "timeoutSeconds=(\\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(asked, 300, 375);

        // Five minutes and more of quiet, up to the requested timeout itself: a healthy server would still end it.
        _clock.Advance(TimeSpan.FromSeconds(asked));
        await Task.Delay(300);
        Assert.Equal(0, _api.Recorder.Restarts("services", "silent"));
        Assert.Equal(1, _api.Server.WatchCount("services"));

        // Past the timeout and its grace without the server ending it: a dead connection.
        _clock.Advance(TimeSpan.FromSeconds(31));
        await Eventually.ThatAsync(() => _api.Recorder.Restarts("services", "silent") == 1, "the silent watch was reopened");
        await _api.Server.WaitForWatchesAsync("services");
        Assert.Contains(_api.Logger.Entries, e => e.Id.Id == 3058 && e.Message.Contains($"{TimeSpan.FromSeconds(asked + 30)}"));
    }
}
