using System.Net;
using System.Text.Json;
using EbpfProxy.Testing.KubeApi;
using k8s;
using k8s.Autorest;
using k8s.Models;
using static EbpfProxy.Testing.Tests.KubeApi.KubeApiTestObjects;

namespace EbpfProxy.Testing.Tests.KubeApi;

/// <summary>
/// WATCH semantics and fault injection of <see cref="FakeKubeApiServer"/>, observed through the real KubernetesClient
/// 21 (<c>WatchList…Async</c>, the non-obsolete API) — these tests pin down how the client surfaces each case.
/// </summary>
public class FakeKubeApiServerWatchTests
{
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(600);

    [Fact]
    public async Task Watch_from_list_resource_version_receives_added_modified_deleted_in_order()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.Upsert(Service("existing"));
        using Kubernetes client = server.CreateClient();
        string rv = (await client.CoreV1.ListServiceForAllNamespacesAsync()).Metadata.ResourceVersion;

        await using var watch = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(resourceVersion: rv, allowWatchBookmarks: true, onError: err, cancellationToken: ct));
        await server.WaitForWatchesAsync("services");

        server.Upsert(Service("web", labels: Labels("v=1")));
        server.Upsert(Service("web", labels: Labels("v=2")));
        server.Delete<V1Service>("default", "web");

        var added = await watch.NextAsync();
        var modified = await watch.NextAsync();
        var deleted = await watch.NextAsync();
        Assert.Equal(WatchEventType.Added, added.Type);
        Assert.Equal(WatchEventType.Modified, modified.Type);
        Assert.Equal("2", modified.Object.Metadata.Labels["v"]);
        Assert.Equal(WatchEventType.Deleted, deleted.Type);
        Assert.Equal("2", deleted.Object.Metadata.Labels["v"]); // the last state…
        Assert.Equal(server.ResourceVersion.ToString(), deleted.Object.Metadata.ResourceVersion); // …with the deletion's RV
        Assert.True(long.Parse(added.Object.Metadata.ResourceVersion) < long.Parse(modified.Object.Metadata.ResourceVersion));
        Assert.Equal("web", deleted.Object.Metadata.Name);
        Assert.Empty(watch.Errors);
    }

    [Fact]
    public async Task Watch_from_an_older_resource_version_replays_history()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        using Kubernetes client = server.CreateClient();
        string rv = (await client.CoreV1.ListServiceForAllNamespacesAsync()).Metadata.ResourceVersion;
        server.Upsert(Service("a"));
        server.Upsert(Pod("p", "n")); // other kinds share the counter but not the stream
        server.Upsert(Service("b"));
        server.Delete<V1Service>("default", "a");

        await using var watch = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(resourceVersion: rv, onError: err, cancellationToken: ct));
        Assert.Equal((WatchEventType.Added, "a"), Name(await watch.NextAsync()));
        Assert.Equal((WatchEventType.Added, "b"), Name(await watch.NextAsync()));
        Assert.Equal((WatchEventType.Deleted, "a"), Name(await watch.NextAsync()));
        server.Upsert(Service("c"));
        Assert.Equal((WatchEventType.Added, "c"), Name(await watch.NextAsync()));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("0")]
    public async Task Watch_without_resource_version_starts_with_synthetic_added_events(string? rv)
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.Upsert(Service("b", "ns1"));
        server.Upsert(Service("a", "ns1"));
        server.Upsert(Service("c", "ns2"));
        using Kubernetes client = server.CreateClient();

        await using var watch = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(resourceVersion: rv, onError: err, cancellationToken: ct));
        Assert.Equal((WatchEventType.Added, "a"), Name(await watch.NextAsync()));
        Assert.Equal((WatchEventType.Added, "b"), Name(await watch.NextAsync()));
        Assert.Equal((WatchEventType.Added, "c"), Name(await watch.NextAsync()));
        server.Upsert(Service("a", "ns1", labels: Labels("x=y")));
        Assert.Equal((WatchEventType.Modified, "a"), Name(await watch.NextAsync()));
    }

    [Fact]
    public async Task Bookmarks_carry_the_current_resource_version_only_when_asked_for()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.BookmarkInterval = TimeSpan.FromMilliseconds(100);
        server.Upsert(Service("a"));
        server.Upsert(Pod("p", "n"));
        using Kubernetes client = server.CreateClient();
        string rv = server.ResourceVersion.ToString();

        await using var withBookmarks = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(resourceVersion: rv, allowWatchBookmarks: true, onError: err, cancellationToken: ct));
        var bookmark = await withBookmarks.NextAsync(includeBookmarks: true);
        Assert.Equal(WatchEventType.Bookmark, bookmark.Type);
        Assert.Equal(rv, bookmark.Object.Metadata.ResourceVersion);
        Assert.Equal("Service", bookmark.Object.Kind);
        Assert.Null(bookmark.Object.Metadata.Name);

        server.Upsert(Pod("q", "n")); // bumps the global RV: the next bookmark reports it
        while (true)
        {
            var next = await withBookmarks.NextAsync(includeBookmarks: true);
            if (next.Object.Metadata.ResourceVersion == server.ResourceVersion.ToString())
            {
                break;
            }
        }

        server.Upsert(Service("b")); // so that the watch without bookmarks gets its first line
        await using var without = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(resourceVersion: rv, onError: err, cancellationToken: ct));
        Assert.Equal((WatchEventType.Added, "b"), Name(await without.NextAsync(includeBookmarks: true)));
        await without.AssertSilentAsync(Quiet);
    }

    [Fact]
    public async Task Too_old_resource_version_gives_a_410_error_event_reported_to_onError()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.Upsert(Service("a"));
        string old = server.ResourceVersion.ToString();
        server.Upsert(Service("b"));
        server.Compact();
        Assert.Equal(server.ResourceVersion, server.CompactedResourceVersion);
        using Kubernetes client = server.CreateClient();

        // KubernetesClient 21: the ERROR event is not yielded; its Status goes to onError as a KubernetesException,
        // then the enumeration completes normally (the server ends the stream).
        await using var watch = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(resourceVersion: old, onError: err, cancellationToken: ct));
        Assert.Null(await watch.WaitEndAsync());
        var error = Assert.IsType<KubernetesException>(Assert.Single(watch.Errors));
        Assert.Equal(410, error.Status.Code);
        Assert.Equal("Expired", error.Status.Reason);
        Assert.Equal($"too old resource version: {old} ({server.CompactedResourceVersion})", error.Status.Message);

        // Without onError the 410 is silently swallowed: an empty, normally completed enumeration.
        int events = 0;
        await foreach (var _ in client.CoreV1.WatchListServiceForAllNamespacesAsync(resourceVersion: old))
        {
            events++;
        }
        Assert.Equal(0, events);

        // On the wire: 200, then one ERROR line, then the end of the stream.
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        using HttpResponseMessage response = await http.GetAsync($"/api/v1/services?watch=1&resourceVersion={old}", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.TransferEncodingChunked);
        string line = Assert.Single((await response.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries));
        using JsonDocument doc = JsonDocument.Parse(line);
        Assert.Equal("ERROR", doc.RootElement.GetProperty("type").GetString());
        JsonElement status = doc.RootElement.GetProperty("object");
        Assert.Equal("Status", status.GetProperty("kind").GetString());
        Assert.Equal("Failure", status.GetProperty("status").GetString());
        Assert.Equal(410, status.GetProperty("code").GetInt32());

        // Watching from the list RV after compaction works.
        string rv = (await client.CoreV1.ListServiceForAllNamespacesAsync()).Metadata.ResourceVersion;
        await using var fresh = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(resourceVersion: rv, onError: err, cancellationToken: ct));
        server.Upsert(Service("c"));
        Assert.Equal((WatchEventType.Added, "c"), Name(await fresh.NextAsync()));
    }

    [Fact]
    public async Task Obsolete_WatchAsync_extension_behaves_the_same()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.Upsert(Service("a"));
        string old = server.ResourceVersion.ToString();
        using Kubernetes client = server.CreateClient();
        string rv = (await client.CoreV1.ListServiceForAllNamespacesAsync()).Metadata.ResourceVersion;

#pragma warning disable CS0618 // WatcherExt.WatchAsync is obsolete in KubernetesClient 21 in favour of WatchList…Async
        await using (var watch = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.ListServiceForAllNamespacesWithHttpMessagesAsync(watch: true, resourceVersion: rv, allowWatchBookmarks: true, cancellationToken: ct)
                .WatchAsync<V1Service, V1ServiceList>(err, ct)))
        {
            await server.WaitForWatchesAsync("services");
            server.Upsert(Service("b"));
            server.Delete<V1Service>("default", "a");
            Assert.Equal((WatchEventType.Added, "b"), Name(await watch.NextAsync()));
            Assert.Equal((WatchEventType.Deleted, "a"), Name(await watch.NextAsync()));
        }

        server.Compact();
        await using (var expired = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.ListServiceForAllNamespacesWithHttpMessagesAsync(watch: true, resourceVersion: old, cancellationToken: ct)
                .WatchAsync<V1Service, V1ServiceList>(err, ct)))
        {
            Assert.Null(await expired.WaitEndAsync());
            Assert.Equal(410, Assert.IsType<KubernetesException>(Assert.Single(expired.Errors)).Status.Code);
        }
#pragma warning restore CS0618
    }

    [Fact]
    public async Task Server_timeout_ends_the_stream_normally_after_an_event_but_throws_on_an_empty_stream()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.Upsert(Service("a"));
        using Kubernetes client = server.CreateClient();

        // With at least one line sent: a clean end of the enumeration.
        await using (var watch = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(timeoutSeconds: 1, onError: err, cancellationToken: ct)))
        {
            Assert.Equal((WatchEventType.Added, "a"), Name(await watch.NextAsync()));
            Assert.Null(await watch.WaitEndAsync(TimeSpan.FromSeconds(5)));
        }

        // With nothing sent before the end: KubernetesClient waits for the first line before returning the response
        // (LineSeparatedHttpContent), so an empty stream throws HttpRequestException (inner EndOfStreamException).
        string rv = server.ResourceVersion.ToString();
        await using (var empty = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(resourceVersion: rv, timeoutSeconds: 1, onError: err, cancellationToken: ct)))
        {
            var e = Assert.IsType<HttpRequestException>(await empty.WaitEndAsync(TimeSpan.FromSeconds(5)));
            Assert.IsType<EndOfStreamException>(e.InnerException);
        }

        // DefaultWatchTimeout applies when the client sends no timeoutSeconds.
        server.DefaultWatchTimeout = TimeSpan.FromMilliseconds(300);
        await using (var byDefault = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(onError: err, cancellationToken: ct)))
        {
            Assert.Equal((WatchEventType.Added, "a"), Name(await byDefault.NextAsync()));
            Assert.Null(await byDefault.WaitEndAsync(TimeSpan.FromSeconds(5)));
        }
    }

    [Fact]
    public async Task DropWatches_breaks_open_streams_with_an_IOException()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.Upsert(Service("a"));
        using Kubernetes client = server.CreateClient();
        await using var watch = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(onError: err, cancellationToken: ct));
        Assert.Equal((WatchEventType.Added, "a"), Name(await watch.NextAsync()));
        Assert.Equal(1, server.OpenWatchCount("services"));

        server.DropWatches();
        Exception? end = await watch.WaitEndAsync();
        Assert.IsAssignableFrom<IOException>(end); // "Unable to read data from the transport connection: Connection reset by peer."
        Assert.Empty(watch.Errors);

        // Dropped before the first line: the pending call fails with HttpRequestException (inner IOException).
        string rv = server.ResourceVersion.ToString();
        await using var early = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(resourceVersion: rv, onError: err, cancellationToken: ct));
        await server.WaitForWatchesAsync("services");
        server.DropWatches();
        var e = Assert.IsType<HttpRequestException>(await early.WaitEndAsync());
        Assert.IsAssignableFrom<IOException>(e.InnerException);

        // New watches work.
        await using var again = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(onError: err, cancellationToken: ct));
        Assert.Equal((WatchEventType.Added, "a"), Name(await again.NextAsync()));
        Assert.Equal(3, server.WatchCount("services"));
    }

    [Fact]
    public async Task StallWatches_delivers_nothing_and_missed_events_come_back_through_a_new_watch()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.BookmarkInterval = TimeSpan.FromMilliseconds(100);
        using Kubernetes client = server.CreateClient();
        string rv = server.ResourceVersion.ToString();
        await using var watch = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: 1, onError: err, cancellationToken: ct));
        Assert.Equal(WatchEventType.Bookmark, (await watch.NextAsync(includeBookmarks: true)).Type);

        server.StallWatches(true);
        Assert.True(server.IsStalled);
        await Task.Delay(150); // let a bookmark queued before the stall drain
        while (watch.Errors.IsEmpty && await TryDrainAsync(watch))
        {
        }
        server.Upsert(Service("missed"));
        await watch.AssertSilentAsync(TimeSpan.FromMilliseconds(1500)); // no event, no bookmark, not even the 1 s timeout's end
        server.StallWatches(false);
        await watch.AssertSilentAsync(Quiet); // a stream that was stalled stays silent
        Assert.Equal(1, server.OpenWatchCount("services"));

        // Lists still work; a new watch from the last RV seen recovers the missed event.
        Assert.Single((await client.CoreV1.ListServiceForAllNamespacesAsync()).Items);
        await using var recovered = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(resourceVersion: rv, onError: err, cancellationToken: ct));
        Assert.Equal((WatchEventType.Added, "missed"), Name(await recovered.NextAsync()));

        // The stalled stream ends only by a fault or the client: here DropWatches.
        server.DropWatches();
        Assert.IsAssignableFrom<IOException>(await watch.WaitEndAsync());
    }

    [Fact]
    public async Task A_watch_opened_while_stalled_never_returns_from_the_initial_call()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.Upsert(Service("a"));
        server.StallWatches(true);
        using Kubernetes client = server.CreateClient();
        await using var watch = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(onError: err, cancellationToken: ct));
        await server.WaitForWatchesAsync("services");
        await watch.AssertSilentAsync(Quiet); // not even the synthetic ADDED for "a"
        // Cancelling on the client side (the informer's own stall timeout) ends it.
    }

    [Fact]
    public async Task FailNextRequests_throws_HttpOperationException_with_the_status()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.Upsert(Service("a"));
        using Kubernetes client = server.CreateClient();

        server.FailNextRequests(1);
        var e = await Assert.ThrowsAsync<HttpOperationException>(() => client.CoreV1.ListServiceForAllNamespacesAsync());
        Assert.Equal(HttpStatusCode.InternalServerError, e.Response.StatusCode);
        V1Status status = KubernetesJson.Deserialize<V1Status>(e.Response.Content);
        Assert.Equal(("InternalError", 500), (status.Reason, status.Code));
        Assert.Single((await client.CoreV1.ListServiceForAllNamespacesAsync()).Items);

        // A failing watch request throws from the first MoveNextAsync of the enumeration.
        server.FailNextRequests(2, 429);
        await using (var watch = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(onError: err, cancellationToken: ct)))
        {
            var w = Assert.IsType<HttpOperationException>(await watch.WaitEndAsync());
            Assert.Equal(HttpStatusCode.TooManyRequests, w.Response.StatusCode);
        }
        await Assert.ThrowsAsync<HttpOperationException>(() => client.CoreV1.ReadNamespacedServiceAsync("a", "default"));
        Assert.NotNull(await client.CoreV1.ReadNamespacedServiceAsync("a", "default"));

        // A dropped request: HttpRequestException.
        server.DropNextRequests(1);
        await Assert.ThrowsAsync<HttpRequestException>(() => client.CoreV1.ListServiceForAllNamespacesAsync());
        Assert.Equal(0, server.RequestLog.Last().StatusCode);
        Assert.Equal([500, 200, 429, 429, 200, 0], server.RequestLog.Skip(0).Select(r => r.StatusCode));
    }

    [Fact]
    public async Task SetDown_answers_503_and_aborts_open_watches()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.Upsert(Service("a"));
        using Kubernetes client = server.CreateClient();
        await using var watch = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(onError: err, cancellationToken: ct));
        await watch.NextAsync();

        server.SetDown(true);
        Assert.True(server.IsDown);
        Assert.IsAssignableFrom<IOException>(await watch.WaitEndAsync());
        var e = await Assert.ThrowsAsync<HttpOperationException>(() => client.CoreV1.ListServiceForAllNamespacesAsync());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, e.Response.StatusCode);
        Assert.Equal("ServiceUnavailable", KubernetesJson.Deserialize<V1Status>(e.Response.Content).Reason);

        server.SetDown(false);
        Assert.Single((await client.CoreV1.ListServiceForAllNamespacesAsync()).Items);
    }

    [Fact]
    public async Task Watch_selectors_turn_transitions_into_added_and_deleted()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.BookmarkInterval = TimeSpan.FromMilliseconds(100);
        using Kubernetes client = server.CreateClient();
        string rv = server.ResourceVersion.ToString();
        await using var watch = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListNamespacedServiceAsync("prod", resourceVersion: rv, labelSelector: "app=web", allowWatchBookmarks: true, onError: err, cancellationToken: ct));
        await server.WaitForWatchesAsync("services");

        server.Upsert(Service("x", "prod", Labels("app=db")));    // not selected
        server.Upsert(Service("y", "dev", Labels("app=web")));    // other namespace
        server.Upsert(Service("x", "prod", Labels("app=web")));   // enters the selection
        server.Upsert(Service("x", "prod", Labels("app=web", "v=2")));
        server.Upsert(Service("x", "prod", Labels("app=db")));    // leaves it
        server.Delete<V1Service>("prod", "x");                    // not selected any more

        Assert.Equal((WatchEventType.Added, "x"), Name(await watch.NextAsync()));
        Assert.Equal((WatchEventType.Modified, "x"), Name(await watch.NextAsync()));
        var left = await watch.NextAsync();
        Assert.Equal((WatchEventType.Deleted, "x"), Name(left));
        Assert.Equal("db", left.Object.Metadata.Labels["app"]);

        // A single-object watch (fieldSelector metadata.name, as the client does).
        await using var one = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListNamespacedServiceAsync("dev", fieldSelector: "metadata.name=y", onError: err, cancellationToken: ct));
        Assert.Equal((WatchEventType.Added, "y"), Name(await one.NextAsync()));
        server.Upsert(Service("z", "dev"));
        server.Delete<V1Service>("dev", "y");
        Assert.Equal((WatchEventType.Deleted, "y"), Name(await one.NextAsync()));
    }

    [Fact]
    public async Task Disposing_the_server_ends_open_watches_cleanly()
    {
        FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        server.Upsert(Service("a"));
        using Kubernetes client = server.CreateClient();
        await using var watch = WatchProbe<V1Service>.Start((err, ct) =>
            client.CoreV1.WatchListServiceForAllNamespacesAsync(onError: err, cancellationToken: ct));
        await watch.NextAsync();
        await server.DisposeAsync();
        Assert.Null(await watch.WaitEndAsync());
        await server.DisposeAsync(); // idempotent
        await Assert.ThrowsAsync<HttpRequestException>(() => client.CoreV1.ListServiceForAllNamespacesAsync());
    }

    [Fact]
    public async Task Raw_watch_stream_is_chunked_json_lines_flushed_per_event()
    {
        await using FakeKubeApiServer server = await FakeKubeApiServer.StartAsync();
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        string rv = server.ResourceVersion.ToString();
        using HttpResponseMessage response = await http.GetAsync($"/api/v1/watch/namespaces/default/services?resourceVersion={rv}", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.TransferEncodingChunked);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());

        server.Upsert(Service("a"));
        string? line = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(5));
        using JsonDocument doc = JsonDocument.Parse(line!);
        Assert.Equal("ADDED", doc.RootElement.GetProperty("type").GetString());
        Assert.Equal("Service", doc.RootElement.GetProperty("object").GetProperty("kind").GetString());
        Assert.Equal(1, server.WatchCount("services"));
    }

    private static async Task<bool> TryDrainAsync(WatchProbe<V1Service> watch)
    {
        try
        {
            await watch.NextAsync(TimeSpan.FromMilliseconds(50), includeBookmarks: true);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private static (WatchEventType, string) Name<T>((WatchEventType Type, T Object) e) where T : IKubernetesObject<V1ObjectMeta> => (e.Type, e.Object.Metadata.Name);
}
