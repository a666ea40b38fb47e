using System.Globalization;
using EbpfProxy.Kubernetes.Api;
using k8s.Models;
using Xunit.Abstractions;

namespace EbpfProxy.Kubernetes.Tests.Api;

/// <summary>
/// <see cref="ResourceInformer{T, TList}"/> against the in-process fake API server, through the
/// real KubernetesClient: what reaches the store, and how every kind of watch failure is survived.
/// </summary>
public sealed class ResourceInformerTests(ITestOutputHelper output) : IAsyncLifetime
{
    private ApiHarness _api = null!;

    public async Task InitializeAsync() => _api = await ApiHarness.StartAsync(output);

    public async Task DisposeAsync()
    {
        output.WriteLine("metrics: " + _api.Recorder.Describe());
        await _api.DisposeAsync();
    }

    [Fact]
    public async Task InitialListInPagesThenWatchEventsReachTheStore()
    {
        foreach (var name in new[] { "a", "b", "c", "d", "e" })
            _api.Server.Upsert(ApiHarness.Service(name));

        var informer = await _api.RunSyncedServicesAsync(ApiHarness.Options(o => o.PageSize = 2));

        Assert.Equal(["default/a", "default/b", "default/c", "default/d", "default/e"], _api.Store.Snapshot().Services.Keys);
        Assert.True(_api.Store.IsSynced);
        Assert.Equal(_api.Server.ResourceVersion.ToString(CultureInfo.InvariantCulture), informer.LastResourceVersion);
        var lists = _api.Server.RequestLog.Where(r => r.Resource == "services" && r.Verb == "list").ToList();
        Assert.Equal(3, lists.Count); // 5 objects, 2 per page
        Assert.All(lists, r => Assert.Contains("limit=2", r.Query));
        Assert.Contains("continue=", lists[1].Query);
        await _api.Server.WaitForWatchesAsync("services");
        var pendingAfterList = _api.Metrics.PendingChanges;

        _api.Server.Upsert(ApiHarness.Service("f"));
        await _api.ServicesAreAsync("a", "b", "c", "d", "e", "f");

        _api.Server.Upsert(ApiHarness.Service("a", clusterIp: "10.96.0.99"));
        await Eventually.ThatAsync(() => _api.Store.Snapshot().Services["default/a"].Spec.ClusterIP == "10.96.0.99", "the modified service reached the store");

        _api.Server.Delete<V1Service>("default", "b");
        await _api.ServicesAreAsync("a", "c", "d", "e", "f");

        Assert.Equal(3, _api.Server.ListCount("services")); // events, no re-list
        Assert.Equal(pendingAfterList + 3, _api.Metrics.PendingChanges);
        Assert.Equal(_api.Server.ResourceVersion.ToString(CultureInfo.InvariantCulture), informer.LastResourceVersion);
        Assert.Null(_api.Store.Snapshot().Services["default/a"].Metadata.ManagedFields);
    }

    [Fact]
    public async Task ObjectsChangedWhileTheServerWasDownAndCompactedConvergeAfterRelist()
    {
        foreach (var name in new[] { "a", "b", "c" })
            _api.Server.Upsert(ApiHarness.Service(name));
        await _api.RunSyncedServicesAsync();
        await _api.Server.WaitForWatchesAsync("services");
        var listsBefore = _api.Server.ListCount("services");

        _api.Server.SetDown(true);
        await Eventually.ThatAsync(() => _api.Recorder.Errors("services") >= 1, "the informer noticed the outage");
        _api.Server.Delete<V1Service>("default", "b");
        _api.Server.Upsert(ApiHarness.Service("d"));
        _api.Server.Compact(); // resuming from the informer's resource version is now impossible
        Assert.Equal(["default/a", "default/b", "default/c"], _api.Store.Snapshot().Services.Keys);

        _api.Server.SetDown(false);

        // "b" was deleted without the informer seeing a DELETED event: only the re-list removes it.
        await _api.ServicesAreAsync("a", "c", "d");
        Assert.True(_api.Server.ListCount("services") > listsBefore);
    }

    [Fact]
    public async Task ExpiredWatchTriggersExactlyOneRelist()
    {
        _api.Server.Upsert(ApiHarness.Service("a"));
        _api.Server.Upsert(ApiHarness.Service("b"));
        var informer = await _api.RunSyncedServicesAsync();
        await _api.Server.WaitForWatchesAsync("services");
        var listsBefore = _api.Server.ListCount("services");

        // Changes the open watch does not deliver, then compaction past the informer's version.
        _api.Server.StallWatches(true);
        _api.Server.Delete<V1Service>("default", "a");
        _api.Server.Upsert(ApiHarness.Service("c"));
        _api.Server.Compact();
        _api.Server.StallWatches(false);
        _api.Server.DropWatches(); // the resumed watch gets an ERROR event with a 410 Status

        await _api.ServicesAreAsync("b", "c");
        await _api.Server.WaitForWatchesAsync("services");
        Assert.Equal(listsBefore + 1, _api.Server.ListCount("services"));
        Assert.Equal(1, _api.Recorder.Restarts("services", "expired"));
        Assert.Equal(_api.Server.ResourceVersion.ToString(CultureInfo.InvariantCulture), informer.LastResourceVersion);
        Assert.Contains(_api.Logger.Entries, e => e.Id.Id == 3056 && e.Message.Contains("410"));
    }

    [Fact]
    public async Task StalledWatchIsDetectedBySilenceAndResumed()
    {
        _api.Server.BookmarkInterval = TimeSpan.FromMilliseconds(100); // a healthy watch is never silent for 1 s
        _api.Server.Upsert(ApiHarness.Service("a"));
        // Silent for the requested timeout (1-1.25 s) plus the grace (1 s): detected within 2.25 s.
        await _api.RunSyncedServicesAsync(ApiHarness.Options(o => { o.WatchTimeout = TimeSpan.FromSeconds(1); o.SilentWatchGrace = TimeSpan.FromSeconds(1); }));
        await _api.Server.WaitForWatchesAsync("services");
        var listsBefore = _api.Server.ListCount("services");
        var watchesBefore = _api.Server.WatchCount("services");

        _api.Server.StallWatches(true); // the open watch never says anything again
        _api.Server.Upsert(ApiHarness.Service("b"));
        _api.Server.StallWatches(false);

        await _api.ServicesAreAsync("a", "b");
        Assert.True(_api.Recorder.Restarts("services", "silent") >= 1);
        Assert.True(_api.Server.WatchCount("services") > watchesBefore);
        Assert.Equal(listsBefore, _api.Server.ListCount("services")); // resumed from its version, no re-list
        Assert.Contains(_api.Logger.Entries, e => e.Id.Id == 3058);
    }

    [Fact]
    public async Task ServerErrorsAreRetriedWithGrowingBackoffUntilRecovery()
    {
        _api.Server.Upsert(ApiHarness.Service("a"));
        await _api.RunSyncedServicesAsync(ApiHarness.Options(o =>
        {
            o.InitialBackoff = TimeSpan.FromMilliseconds(100);
            o.MaxBackoff = TimeSpan.FromSeconds(1);
        }));
        await _api.Server.WaitForWatchesAsync("services");
        var requestsBefore = _api.Server.RequestLog.Count;

        _api.Server.FailNextRequests(4, 500);
        _api.Server.DropWatches();
        _api.Server.Upsert(ApiHarness.Service("b"));

        await _api.ServicesAreAsync("a", "b");
        var after = _api.Server.RequestLog.Skip(requestsBefore).Where(r => r.Resource == "services").ToList();
        var failed = after.Where(r => r.StatusCode == 500).ToList();
        Assert.Equal(4, failed.Count);
        // The dropped watch and two failed watches make three failures in a row (RelistAfterWatchFailures):
        // then lists, two failed, and one that works.
        Assert.Equal(["watch", "watch", "list", "list"], failed.Select(r => r.Verb));
        Assert.Equal("list", after.First(r => r.StatusCode == 200).Verb);

        // Delays 100, 200, 400, 800, 1000 ms nominal, ±20 %: between the failed requests 200, 400, 800 ms.
        double[] nominal = [200, 400, 800];
        for (var i = 0; i < 3; i++)
        {
            var gap = (failed[i + 1].Time - failed[i].Time).TotalMilliseconds;
            Assert.True(gap >= nominal[i] * 0.8 - 20, $"gap {i} was {gap:F0} ms, expected about {nominal[i]} ms");
        }
        Assert.True(_api.Recorder.Errors("services") >= 5); // the dropped watch and four 500s
        Assert.Equal(2, _api.Logger.Entries.Count(e => e.Id.Id == 3057 && e.Message.Contains("HTTP 500")));
        Assert.Equal(2, _api.Logger.Entries.Count(e => e.Id.Id == 3052 && e.Message.Contains("HTTP 500")));
    }

    [Fact]
    public async Task OutageKeepsTheStoreAndConvergesAfterRecovery()
    {
        _api.Server.Upsert(ApiHarness.Service("a"));
        _api.Server.Upsert(ApiHarness.Service("b"));
        await _api.RunSyncedServicesAsync(ApiHarness.Options(o =>
        {
            o.InitialBackoff = TimeSpan.FromMilliseconds(50);
            o.MaxBackoff = TimeSpan.FromMilliseconds(400);
        }));
        await _api.Server.WaitForWatchesAsync("services");
        var before = _api.Store.Snapshot();

        _api.Server.SetDown(true);
        // Long enough for failed watches and then failed lists (503s).
        await Eventually.ThatAsync(() => _api.Server.RequestLog.Count(r => r.Resource == "services" && r.Verb == "list" && r.StatusCode == 503) >= 2,
            "the informer tried to list during the outage");
        _api.Server.Upsert(ApiHarness.Service("a", clusterIp: "10.96.0.77"));
        _api.Server.Delete<V1Service>("default", "b");
        _api.Server.Upsert(ApiHarness.Service("c"));
        await Task.Delay(500); // more failures: still nothing may change in the store
        Assert.Same(before, _api.Store.Snapshot());

        _api.Server.SetDown(false);

        await _api.ServicesAreAsync("a", "c");
        await Eventually.ThatAsync(() => _api.Store.Snapshot().Services["default/a"].Spec.ClusterIP == "10.96.0.77", "the change made during the outage arrived");
        Assert.True(_api.Recorder.Errors("services") >= 3);
        Assert.Contains(_api.Logger.Entries, e => e.Id.Id == 3052 && e.Message.Contains("503"));
    }

    [Fact]
    public async Task BookmarksAdvanceTheResourceVersionWithoutTouchingTheStore()
    {
        _api.Server.BookmarkInterval = TimeSpan.FromMilliseconds(100);
        _api.Server.Upsert(ApiHarness.Service("a"));
        var informer = await _api.RunSyncedServicesAsync();
        await _api.Server.WaitForWatchesAsync("services");
        var listed = long.Parse(informer.LastResourceVersion!, CultureInfo.InvariantCulture);
        var storeBefore = _api.Store.Snapshot();

        // Other resources move the global resource version; the services watch only sees bookmarks.
        _api.Server.Upsert(K8s.Pod("p1", "10.0.0.5"));
        _api.Server.Upsert(K8s.Pod("p2", "10.0.0.6"));
        var target = _api.Server.ResourceVersion;
        Assert.True(target > listed);

        await Eventually.ThatAsync(() => long.Parse(informer.LastResourceVersion!, CultureInfo.InvariantCulture) == target,
            () => $"a bookmark moved the resource version to {target} (is {informer.LastResourceVersion})");
        Assert.Same(storeBefore, _api.Store.Snapshot());
        Assert.Equal(0, _api.Recorder.Restarts("services", "error"));
    }

    [Theory]
    [InlineData(true)]  // the stream carried bookmarks, then ended
    [InlineData(false)] // the stream ended before its first line: KubernetesClient throws EndOfStreamException
    public async Task WatchEndedByTheServerResumesWithoutRelist(bool bookmarks)
    {
        _api.Server.BookmarkInterval = bookmarks ? TimeSpan.FromMilliseconds(200) : TimeSpan.FromHours(1);
        _api.Server.Upsert(ApiHarness.Service("a"));
        // The API counts whole seconds: 1 s, up to a quarter more with jitter.
        await _api.RunSyncedServicesAsync(ApiHarness.Options(o => o.WatchTimeout = TimeSpan.FromSeconds(1)));

        await Eventually.ThatAsync(() => _api.Recorder.Restarts("services", "closed") >= 2, "two watches reached their timeout");
        _api.Server.Upsert(ApiHarness.Service("b"));

        await _api.ServicesAreAsync("a", "b");
        Assert.Equal(1, _api.Server.ListCount("services"));
        Assert.Equal(0, _api.Recorder.Errors("services"));
        Assert.All(_api.Server.RequestLog.Where(r => r.Verb == "watch"), r =>
        {
            Assert.Contains("allowWatchBookmarks=true", r.Query);
            Assert.Matches("timeoutSeconds=[12]($|&)", r.Query);
        });
    }

    [Fact]
    public async Task ListWhoseContinueTokenExpiresStartsOver()
    {
        foreach (var name in new[] { "a", "b", "c", "d", "e" })
            _api.Server.Upsert(ApiHarness.Service(name));
        var pages = 0;
        var services = KubernetesResources.Services;
        var informer = _api.Run(new ResourceInformer<V1Service, V1ServiceList>(
            "services",
            _api.Client,
            async (client, request, ct) =>
            {
                var page = await services.List(client, request, ct);
                if (++pages == 1)
                {
                    // Between the first and the second page: a change, then compaction past the list's snapshot.
                    _api.Server.Delete<V1Service>("default", "e");
                    _api.Server.Compact();
                }
                return page;
            },
            services.Watch,
            _api.Store, _api.Metrics, _api.Logger, TimeProvider.System, ApiHarness.Options(o => o.PageSize = 2)));

        await Eventually.ThatAsync(() => informer.HasSynced, "the services informer listed");
        Assert.Equal(["default/a", "default/b", "default/c", "default/d"], _api.Store.Snapshot().Services.Keys);
        // Page 1, page 2 (410), then pages 1 and 2 of the new list.
        var lists = _api.Server.RequestLog.Where(r => r.Verb == "list").ToList();
        Assert.Equal([200, 410, 200, 200], lists.Select(r => r.StatusCode));
        Assert.Contains(_api.Logger.Entries, e => e.Id.Id == 3053);
        Assert.Equal(0, _api.Recorder.Errors("services"));
    }
}
