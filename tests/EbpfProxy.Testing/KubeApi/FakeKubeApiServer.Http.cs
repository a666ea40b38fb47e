using System.Buffers;
using System.Buffers.Text;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;

namespace EbpfProxy.Testing.KubeApi;

public sealed partial class FakeKubeApiServer
{
    private const string JsonContentType = "application/json";

    private static readonly string[] KnownGroups = KubeResource.All.Select(r => r.Group).Where(g => g.Length > 0).Distinct().ToArray();

    private async Task HandleAsync(HttpContext context)
    {
        HttpRequest request = context.Request;
        string path = request.Path.HasValue ? request.Path.Value! : "/";
        Route route = Route.Parse(path);
        bool isWatch = route.WatchPrefix || IsTrue(request.Query["watch"]);
        string? verb = route.Kind is RouteKind.Collection or RouteKind.Item
            ? !HttpMethods.IsGet(request.Method) ? request.Method.ToLowerInvariant()
            : isWatch ? "watch"
            : route.Kind == RouteKind.Collection ? "list" : "get"
            : null;
        var info = new RequestInfo(request.Method, path, request.QueryString.Value ?? "", isWatch, route.Resource?.Plural, verb,
            request.Headers.Authorization.Count > 0 ? request.Headers.Authorization.ToString() : null);
        try
        {
            if (IsDown)
            {
                await WriteStatusAsync(context, info, 503, "the fake API server is down (SetDown(true))").ConfigureAwait(false);
                return;
            }
            if (TakeFault() is int fault)
            {
                if (fault == 0)
                {
                    Record(info, 0);
                    context.Abort();
                    return;
                }
                await WriteStatusAsync(context, info, fault, $"injected failure (FailNextRequests): {fault}").ConfigureAwait(false);
                return;
            }
            await DispatchAsync(context, info, route).ConfigureAwait(false);
        }
        catch (Exception e) when ((e is OperationCanceledException or IOException) && context.RequestAborted.IsCancellationRequested)
        {
            Record(info, 499);
        }
        catch (Exception e)
        {
            _logger?.LogError(e, "FakeKubeApiServer: {Method} {Path} failed", info.Method, info.Path);
            if (!context.Response.HasStarted)
            {
                await WriteStatusAsync(context, info, 500, $"fake API server error: {e.Message}").ConfigureAwait(false);
            }
            else
            {
                Record(info, 500);
                context.Abort();
            }
        }
    }

    private async Task DispatchAsync(HttpContext context, RequestInfo info, Route route)
    {
        if (!HttpMethods.IsGet(context.Request.Method))
        {
            await WriteStatusAsync(context, info, 405, $"the fake API server only serves GET, not {context.Request.Method}").ConfigureAwait(false);
            return;
        }
        switch (route.Kind)
        {
            case RouteKind.Version:
                await WriteJsonAsync(context, info, 200, VersionJson).ConfigureAwait(false);
                return;
            case RouteKind.Health:
                Record(info, 200);
                context.Response.ContentType = "text/plain";
                await context.Response.WriteAsync("ok").ConfigureAwait(false);
                return;
            case RouteKind.CoreVersions:
                await WriteJsonAsync(context, info, 200, $$"""{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"{{EndPoint}}"}]}""").ConfigureAwait(false);
                return;
            case RouteKind.GroupList:
                await WriteJsonAsync(context, info, 200, $$"""{"kind":"APIGroupList","apiVersion":"v1","groups":[{{string.Join(",", KnownGroups.Select(GroupJson))}}]}""").ConfigureAwait(false);
                return;
            case RouteKind.Group:
                await WriteJsonAsync(context, info, 200, GroupJson(route.Group!)).ConfigureAwait(false);
                return;
            case RouteKind.ResourceList:
                await WriteJsonAsync(context, info, 200, ResourceListJson(route.Group!)).ConfigureAwait(false);
                return;
            case RouteKind.Collection:
            case RouteKind.Item:
                await ServeResourceAsync(context, info, route).ConfigureAwait(false);
                return;
            default:
                await WriteStatusAsync(context, info, 404, "the server could not find the requested resource").ConfigureAwait(false);
                return;
        }
    }

    private async Task ServeResourceAsync(HttpContext context, RequestInfo info, Route route)
    {
        KubeResource resource = route.Resource!;
        IQueryCollection query = context.Request.Query;
        LabelSelector labels;
        FieldSelector fields;
        try
        {
            labels = LabelSelector.Parse(query["labelSelector"]);
            fields = FieldSelector.Parse(query["fieldSelector"], resource);
        }
        catch (SelectorException e)
        {
            await WriteStatusAsync(context, info, 400, e.Message).ConfigureAwait(false);
            return;
        }

        if (route.Kind == RouteKind.Item && !info.IsWatch)
        {
            StoredObject? obj = _store.Get(resource, route.Namespace, route.Name!);
            if (obj is null)
            {
                await WriteStatusAsync(context, info, 404, $"{resource} \"{route.Name}\" not found", resource, route.Name).ConfigureAwait(false);
                return;
            }
            await WriteJsonAsync(context, info, 200, obj.JsonText).ConfigureAwait(false);
            return;
        }
        if (route.Kind == RouteKind.Item)
        {
            fields = fields.WithName(route.Name!);
        }
        var filter = new Filter(route.Namespace, labels, fields);
        if (info.IsWatch)
        {
            await ServeWatchAsync(context, info, resource, filter).ConfigureAwait(false);
        }
        else
        {
            await ServeListAsync(context, info, resource, filter).ConfigureAwait(false);
        }
    }

    // ------------------------------------------------------------------ LIST

    private async Task ServeListAsync(HttpContext context, RequestInfo info, KubeResource resource, Filter filter)
    {
        IQueryCollection query = context.Request.Query;
        int limit = 0;
        if (query.TryGetValue("limit", out StringValues limitText) && !StringValues.IsNullOrEmpty(limitText)
            && (!int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 0))
        {
            await WriteStatusAsync(context, info, 400, $"limit: Invalid value: \"{limitText}\"").ConfigureAwait(false);
            return;
        }

        IReadOnlyList<StoredObject> items;
        long listRv;
        string? start = null;
        string continueText = query["continue"].ToString();
        string rvText = query["resourceVersion"].ToString();
        if (continueText.Length > 0)
        {
            if (!TryDecodeContinue(continueText, out listRv, out start))
            {
                await WriteStatusAsync(context, info, 400, $"continue key is not valid: \"{continueText}\"").ConfigureAwait(false);
                return;
            }
            IReadOnlyList<StoredObject>? snapshot = _store.ListAt(resource, listRv);
            if (snapshot is null)
            {
                await WriteStatusAsync(context, info, 410,
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    reason: "Expired").ConfigureAwait(false);
                return;
            }
            items = snapshot;
        }
        else if (query["resourceVersionMatch"] == "Exact")
        {
            if (!long.TryParse(rvText, NumberStyles.None, CultureInfo.InvariantCulture, out listRv))
            {
                await WriteStatusAsync(context, info, 400, $"resourceVersionMatch: Invalid value: \"Exact\": needs a resourceVersion, got \"{rvText}\"").ConfigureAwait(false);
                return;
            }
            IReadOnlyList<StoredObject>? snapshot = _store.ListAt(resource, listRv);
            if (snapshot is null)
            {
                await WriteStatusAsync(context, info, 410, $"too old resource version: {listRv} ({_store.CompactedResourceVersion})", reason: "Expired").ConfigureAwait(false);
                return;
            }
            items = snapshot;
        }
        else
        {
            (items, listRv) = _store.List(resource);
        }

        var matching = new List<StoredObject>();
        foreach (StoredObject o in items)
        {
            if ((start is null || string.CompareOrdinal(o.Key, start) > 0) && filter.Matches(o))
            {
                matching.Add(o);
            }
        }
        int take = limit > 0 ? Math.Min(limit, matching.Count) : matching.Count;
        int remaining = matching.Count - take;

        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("kind", resource.ListKind);
            w.WriteString("apiVersion", resource.ApiVersion);
            w.WriteStartObject("metadata");
            w.WriteString("resourceVersion", listRv.ToString(CultureInfo.InvariantCulture));
            if (remaining > 0)
            {
                w.WriteString("continue", EncodeContinue(listRv, matching[take - 1].Key));
                if (filter.IsEverything)
                {
                    w.WriteNumber("remainingItemCount", remaining);
                }
            }
            w.WriteEndObject();
            w.WriteStartArray("items");
            for (int i = 0; i < take; i++)
            {
                w.WriteRawValue(matching[i].ItemJsonText, skipInputValidation: true);
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        await WriteBytesAsync(context, info, 200, buffer.WrittenMemory).ConfigureAwait(false);
    }

    private static string EncodeContinue(long rv, string lastKey) =>
        Base64Url.EncodeToString(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new ContinueToken(rv, lastKey), ContinueTokenContext.Default.ContinueToken)));

    private static bool TryDecodeContinue(string text, out long rv, out string start)
    {
        rv = 0;
        start = "";
        try
        {
            ContinueToken? token = JsonSerializer.Deserialize(Base64Url.DecodeFromChars(text), ContinueTokenContext.Default.ContinueToken);
            if (token is null || token.Start is null)
            {
                return false;
            }
            rv = token.Rv;
            start = token.Start;
            return true;
        }
        catch (Exception e) when (e is FormatException or JsonException)
        {
            return false;
        }
    }

    // ------------------------------------------------------------------ WATCH

    private async Task ServeWatchAsync(HttpContext context, RequestInfo info, KubeResource resource, Filter filter)
    {
        IQueryCollection query = context.Request.Query;
        string rvText = query["resourceVersion"].ToString();
        long? fromRv = null;
        if (rvText.Length > 0 && rvText != "0")
        {
            if (!long.TryParse(rvText, NumberStyles.None, CultureInfo.InvariantCulture, out long rv))
            {
                await WriteStatusAsync(context, info, 400, $"resourceVersion: Invalid value: \"{rvText}\"").ConfigureAwait(false);
                return;
            }
            fromRv = rv;
        }
        bool bookmarks = IsTrue(query["allowWatchBookmarks"]);
        TimeSpan? timeout = DefaultWatchTimeout;
        if (int.TryParse(query["timeoutSeconds"], NumberStyles.None, CultureInfo.InvariantCulture, out int seconds) && seconds > 0)
        {
            timeout = TimeSpan.FromSeconds(seconds);
        }

        var session = new WatchSession(resource, context);
        lock (_watchGate)
        {
            if (_down)
            {
                session = null;
            }
            else
            {
                _watches.Add(session);
                if (_stalled)
                {
                    session.Mute();
                }
            }
        }
        if (session is null)
        {
            await WriteStatusAsync(context, info, 503, "the fake API server is down (SetDown(true))").ConfigureAwait(false);
            return;
        }

        try
        {
            WatchStart start = _store.OpenWatch(session.Subscription, fromRv);
            Record(info, 200);
            HttpResponse response = context.Response;
            response.StatusCode = 200;
            response.ContentType = JsonContentType;
            response.Headers.CacheControl = "no-cache, private";
            await response.StartAsync(context.RequestAborted).ConfigureAwait(false);
            await response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);

            using var timeoutCts = new CancellationTokenSource();
            if (timeout is { } t)
            {
                timeoutCts.CancelAfter(t);
            }
            using var ended = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _stopping.Token, timeoutCts.Token);
            Task bookmarkLoop = bookmarks && !start.Expired ? BookmarkLoopAsync(session, ended.Token) : Task.CompletedTask;
            try
            {
                if (start.Expired)
                {
                    if (!session.Muted)
                    {
                        string status = StatusJson(410, "Expired", $"too old resource version: {fromRv} ({start.OldestResourceVersion})", null, null);
                        await WriteLineAsync(response, $$"""{"type":"ERROR","object":{{status}}}""", ended.Token).ConfigureAwait(false);
                        return;
                    }
                }
                else
                {
                    foreach (StoredObject o in start.InitialObjects)
                    {
                        if (session.Muted)
                        {
                            break;
                        }
                        if (filter.Matches(o))
                        {
                            await WriteLineAsync(response, EventLine("ADDED", o.JsonText), ended.Token).ConfigureAwait(false);
                        }
                    }
                    await foreach (WatchItem item in session.Subscription.Reader.ReadAllAsync(ended.Token).ConfigureAwait(false))
                    {
                        if (session.Muted)
                        {
                            continue;
                        }
                        string? line = Translate(item, resource, filter);
                        if (line is not null)
                        {
                            await WriteLineAsync(response, line, ended.Token).ConfigureAwait(false);
                        }
                    }
                }
            }
            catch (OperationCanceledException) when (ended.IsCancellationRequested)
            {
            }
            finally
            {
                await ended.CancelAsync().ConfigureAwait(false);
                await bookmarkLoop.ConfigureAwait(false);
            }

            if (session.Muted && !context.RequestAborted.IsCancellationRequested && !_stopping.IsCancellationRequested)
            {
                // A stalled stream sends nothing, not even its end: hold it until the client, a fault or disposal ends it.
                using var held = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _stopping.Token);
                try
                {
                    await Task.Delay(Timeout.Infinite, held.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                }
            }
        }
        catch (Exception e) when ((e is OperationCanceledException or IOException) && (context.RequestAborted.IsCancellationRequested || _stopping.IsCancellationRequested))
        {
            // Client went away, the connection was dropped, or the server is stopping.
        }
        finally
        {
            _store.CloseWatch(session.Subscription);
            lock (_watchGate)
            {
                _watches.Remove(session);
            }
        }
    }

    private async Task BookmarkLoopAsync(WatchSession session, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                await Task.Delay(BookmarkInterval, cancellationToken).ConfigureAwait(false);
                _store.Bookmark(session.Subscription);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static string? Translate(WatchItem item, KubeResource resource, Filter filter)
    {
        switch (item.Kind)
        {
            case EventKind.Bookmark:
                string bookmark = $$$"""{"kind":"{{{resource.Kind}}}","apiVersion":"{{{resource.ApiVersion}}}","metadata":{"resourceVersion":"{{{item.ResourceVersion}}}"}}""";
                return EventLine("BOOKMARK", bookmark);
            case EventKind.Added:
                return filter.Matches(item.Object!) ? EventLine("ADDED", item.Object!.JsonText) : null;
            case EventKind.Deleted:
                return filter.Matches(item.Previous!) ? EventLine("DELETED", item.Object!.JsonText) : null;
            default:
                // Selector transitions, like the real watch cache: entering the selection is ADDED, leaving it DELETED.
                bool now = filter.Matches(item.Object!);
                bool before = item.Previous is not null && filter.Matches(item.Previous);
                return (before, now) switch
                {
                    (true, true) => EventLine("MODIFIED", item.Object!.JsonText),
                    (false, true) => EventLine("ADDED", item.Object!.JsonText),
                    (true, false) => EventLine("DELETED", item.Object!.JsonText),
                    _ => null,
                };
        }
    }

    private static string EventLine(string type, string objectJson) => $$"""{"type":"{{type}}","object":{{objectJson}}}""";

    private static async Task WriteLineAsync(HttpResponse response, string line, CancellationToken cancellationToken)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(line + "\n");
        await response.Body.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
        await response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    // ------------------------------------------------------------------ responses

    private void Record(RequestInfo info, int status)
    {
        if (info.Recorded)
        {
            return;
        }
        info.Recorded = true;
        _log.Enqueue(new KubeApiRequest(DateTimeOffset.UtcNow, info.Method, info.Path, info.Query, info.IsWatch, status, info.Resource, info.Verb, info.Authorization));
        _logger?.LogDebug("FakeKubeApiServer: {Method} {Path}{Query} -> {Status}", info.Method, info.Path, info.Query, status);
    }

    private Task WriteJsonAsync(HttpContext context, RequestInfo info, int status, string json) =>
        WriteBytesAsync(context, info, status, Encoding.UTF8.GetBytes(json));

    private async Task WriteBytesAsync(HttpContext context, RequestInfo info, int status, ReadOnlyMemory<byte> body)
    {
        Record(info, status);
        HttpResponse response = context.Response;
        response.StatusCode = status;
        response.ContentType = JsonContentType;
        response.ContentLength = body.Length;
        await response.Body.WriteAsync(body, context.RequestAborted).ConfigureAwait(false);
    }

    private Task WriteStatusAsync(HttpContext context, RequestInfo info, int code, string message, KubeResource? resource = null, string? name = null, string? reason = null) =>
        WriteJsonAsync(context, info, code, StatusJson(code, reason ?? ReasonFor(code), message, resource, name));

    private static string StatusJson(int code, string reason, string message, KubeResource? resource, string? name)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("kind", "Status");
            w.WriteString("apiVersion", "v1");
            w.WriteStartObject("metadata");
            w.WriteEndObject();
            w.WriteString("status", "Failure");
            w.WriteString("message", message);
            w.WriteString("reason", reason);
            if (resource is not null)
            {
                w.WriteStartObject("details");
                if (name is not null)
                {
                    w.WriteString("name", name);
                }
                if (resource.Group.Length > 0)
                {
                    w.WriteString("group", resource.Group);
                }
                w.WriteString("kind", resource.Plural);
                w.WriteEndObject();
            }
            w.WriteNumber("code", code);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static string ReasonFor(int code) => code switch
    {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    };

    private static bool IsTrue(StringValues value) =>
        value.ToString() is { } s && (s == "1" || s.Equals("true", StringComparison.OrdinalIgnoreCase) || s.Equals("t", StringComparison.OrdinalIgnoreCase));

    private const string VersionJson =
        """{"major":"1","minor":"34","emulationMajor":"1","emulationMinor":"34","gitVersion":"v1.34.0-ebpf-proxy-fake","gitCommit":"0000000000000000000000000000000000000000","gitTreeState":"clean","buildDate":"2025-01-01T00:00:00Z","goVersion":"go1.24.0","compiler":"gc","platform":"linux/amd64"}""";

    private static string GroupJson(string group) =>
        $$$"""{"kind":"APIGroup","apiVersion":"v1","name":"{{{group}}}","versions":[{"groupVersion":"{{{group}}}/v1","version":"v1"}],"preferredVersion":{"groupVersion":"{{{group}}}/v1","version":"v1"}}""";

    private static string ResourceListJson(string group)
    {
        IEnumerable<string> resources = KubeResource.All.Where(r => r.Group == group).Select(r =>
            $$"""{"name":"{{r.Plural}}","singularName":"{{r.Kind.ToLowerInvariant()}}","namespaced":{{(r.Namespaced ? "true" : "false")}},"kind":"{{r.Kind}}","verbs":["get","list","watch"]}""");
        string groupVersion = group.Length == 0 ? "v1" : $"{group}/v1";
        return $$"""{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"{{groupVersion}}","resources":[{{string.Join(",", resources)}}]}""";
    }

    // ------------------------------------------------------------------ types

    private sealed class RequestInfo(string method, string path, string query, bool isWatch, string? resource, string? verb, string? authorization)
    {
        public string Method { get; } = method;

        public string Path { get; } = path;

        public string Query { get; } = query;

        public bool IsWatch { get; } = isWatch;

        public string? Resource { get; } = resource;

        public string? Verb { get; } = verb;

        public string? Authorization { get; } = authorization;

        public bool Recorded { get; set; }
    }

    private sealed class Filter(string? ns, LabelSelector labels, FieldSelector fields)
    {
        public bool IsEverything => labels.IsEmpty && fields.IsEmpty;

        public bool Matches(StoredObject o) => (ns is null || o.Namespace == ns) && labels.Matches(o.Labels) && fields.Matches(o);
    }

    private sealed class WatchSession(KubeResource resource, HttpContext context)
    {
        private volatile bool _muted;

        public KubeResource Resource { get; } = resource;

        public WatchSubscription Subscription { get; } = new(resource);

        public bool Muted => _muted;

        public void Mute() => _muted = true;

        public void Abort()
        {
            try
            {
                context.Abort();
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    private enum RouteKind
    {
        NotFound,
        Version,
        Health,
        CoreVersions,
        GroupList,
        Group,
        ResourceList,
        Collection,
        Item,
    }

    private sealed record Route(RouteKind Kind, KubeResource? Resource = null, string? Namespace = null, string? Name = null, bool WatchPrefix = false, string? Group = null)
    {
        private static readonly Route NotFound = new(RouteKind.NotFound);

        public static Route Parse(string path)
        {
            string[] s = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
            if (s.Length == 0)
            {
                return NotFound;
            }
            if (s.Length == 1 && s[0] == "version")
            {
                return new Route(RouteKind.Version);
            }
            if (s.Length == 1 && s[0] is "healthz" or "livez" or "readyz")
            {
                return new Route(RouteKind.Health);
            }
            string group;
            string[] rest;
            if (s[0] == "api")
            {
                if (s.Length == 1)
                {
                    return new Route(RouteKind.CoreVersions);
                }
                if (s[1] != "v1")
                {
                    return NotFound;
                }
                group = "";
                rest = s[2..];
            }
            else if (s[0] == "apis")
            {
                if (s.Length == 1)
                {
                    return new Route(RouteKind.GroupList);
                }
                if (!KnownGroups.Contains(s[1]))
                {
                    return NotFound;
                }
                if (s.Length == 2)
                {
                    return new Route(RouteKind.Group, Group: s[1]);
                }
                if (s[2] != "v1")
                {
                    return NotFound;
                }
                group = s[1];
                rest = s[3..];
            }
            else
            {
                return NotFound;
            }

            if (rest.Length == 0)
            {
                return new Route(RouteKind.ResourceList, Group: group);
            }
            bool watch = false;
            if (rest[0] == "watch")
            {
                watch = true;
                rest = rest[1..];
                if (rest.Length == 0)
                {
                    return NotFound;
                }
            }
            if (rest[0] == "namespaces" && rest.Length >= 3)
            {
                KubeResource? namespaced = KubeResource.Find(group, "v1", rest[2]);
                if (namespaced is null || !namespaced.Namespaced)
                {
                    return NotFound;
                }
                return rest.Length switch
                {
                    3 => new Route(RouteKind.Collection, namespaced, rest[1], WatchPrefix: watch, Group: group),
                    4 => new Route(RouteKind.Item, namespaced, rest[1], rest[3], watch, group),
                    _ => NotFound,
                };
            }
            KubeResource? r = KubeResource.Find(group, "v1", rest[0]);
            if (r is null)
            {
                return NotFound;
            }
            return rest.Length switch
            {
                1 => new Route(RouteKind.Collection, r, WatchPrefix: watch, Group: group),
                2 when !r.Namespaced => new Route(RouteKind.Item, r, null, rest[1], watch, group),
                _ => NotFound,
            };
        }
    }
}

internal sealed record ContinueToken(long Rv, string Start);

[System.Text.Json.Serialization.JsonSerializable(typeof(ContinueToken))]
internal sealed partial class ContinueTokenContext : System.Text.Json.Serialization.JsonSerializerContext;
