using System.Diagnostics;
using System.Text.Json;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Metrics;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Log = EbpfProxy.Kubernetes.Api.ResourceInformerLog;

namespace EbpfProxy.Kubernetes.Api;

/// <summary>What the API source knows about each of its informers, whatever the resource type.</summary>
public interface IResourceInformer
{
    /// <summary>The API's plural resource name, e.g. "services"; the <c>resource</c> tag of the watch metrics.</summary>
    string Resource { get; }

    /// <summary>The name registered with the <see cref="ClusterStore"/>: "kubernetes/&lt;resource&gt;".</summary>
    string SourceName { get; }

    /// <summary>True once the first LIST has been applied to the store.</summary>
    bool HasSynced { get; }

    /// <summary>The resource version the next watch resumes from: the last list's, event's or bookmark's.</summary>
    string? LastResourceVersion { get; }

    /// <summary>Completes when the first LIST has been applied (as <see cref="HasSynced"/>).</summary>
    Task ReadyAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Lists, then watches, until <paramref name="cancellationToken"/> is cancelled, and then
    /// completes normally. API failures and unexpected exceptions are logged, counted and retried,
    /// never thrown. One run at a time (a second concurrent call throws <see cref="InvalidOperationException"/>).
    /// </summary>
    Task RunAsync(CancellationToken cancellationToken);
}

/// <summary>
/// Follows one Kubernetes resource into the <see cref="ClusterStore"/>, as client-go's reflector
/// and YARP's ResourceInformer do: LIST (in pages), replace the kind in the store, WATCH from the
/// list's resource version, apply events, and recover from everything the API can do to a watch.
/// </summary>
/// <remarks>
/// <para>
/// Registers <see cref="SourceName"/> with the store when constructed and marks it synced after
/// its first LIST, so nothing is programmed before every informer has listed once.
/// </para>
/// <para>Recovery, by how a watch ends (the reason is the <c>reason</c> tag of <c>ebpfproxy_watch_restarts_total</c>):</para>
/// <list type="bullet">
/// <item><b>closed</b>: the server ended it (its <c>timeoutSeconds</c>): watch again from the last resource version, no list.</item>
/// <item><b>expired</b>: 410 Gone, as an HTTP status or as an ERROR event carrying a Status with code 410:
/// the resource version is compacted away, events were lost. LIST again; objects missing from the
/// new listing are deleted from the store (<see cref="ClusterStore.ReplaceKind{T}"/>), which is how
/// deletions missed while the watch was down surface.</item>
/// <item><b>silent</b>: no event and no bookmark for the watch's requested timeout plus <see cref="ResourceInformerOptions.SilentWatchGrace"/>:
/// the watch is cancelled (its connection closed) and opened again from the last resource version.</item>
/// <item><b>error</b>: anything else (refused or dropped connection, 5xx, a timeout): back off with jitter and
/// watch again from the last resource version; after <see cref="ResourceInformerOptions.RelistAfterWatchFailures"/>
/// consecutive failures, LIST instead. A failed LIST is retried with the same backoff.</item>
/// </list>
/// <para>
/// Failures never touch the store: while the API server is unreachable the store keeps the last
/// content it had. Only a successful LIST or a watch event changes it.
/// </para>
/// <para>
/// KubernetesClient details this class depends on (checked by the tests): an ERROR event does not
/// reach the event stream, it goes to the <c>onError</c> callback of <c>WatchAsync</c> as a
/// <see cref="KubernetesException"/> whose <c>Status.Code</c> is 410 for an expired version, and
/// the enumeration would go on reading; a watch request answered with an HTTP error throws
/// <see cref="HttpOperationException"/>; the watch call itself only returns once the first line
/// (event) has arrived, and throws <see cref="HttpRequestException"/> wrapping
/// <see cref="EndOfStreamException"/> when the server ends the watch before sending any event
/// (a quiet watch reaching its timeout); a dropped connection throws an <see cref="IOException"/>
/// out of the enumeration.
/// </para>
/// <para>
/// Objects are stored as the API returns them, except <c>metadata.managedFields</c>, which is
/// dropped: nothing reads it and it is often a third of an object's size.
/// </para>
/// </remarks>
public sealed class ResourceInformer<T, TList> : IResourceInformer
    where T : IKubernetesObject<V1ObjectMeta>
    where TList : IKubernetesObject<V1ListMeta>, IItems<T>
{
    /// <summary>Prefix of the source names this informer registers with the store.</summary>
    public const string SourcePrefix = "kubernetes/";

    // A watch that ended by itself sooner than this without any event is not evidence of health.
    private static readonly TimeSpan MinHealthyWatch = TimeSpan.FromSeconds(1);

    // A watch that failed after living this long (events or not) was a success until then: the next
    // attempt starts from the initial backoff again. client-go's reflector does the same with its
    // backoff manager's reset interval (a backoff not needed for a while starts over).
    internal static readonly TimeSpan HealthyWatchLifetime = TimeSpan.FromSeconds(10);

    // Restarts of a paginated list whose continue token expired, before the list counts as failed.
    private const int MaxListRestarts = 3;

    private readonly IKubernetes _client;
    private readonly ListFunction<TList> _list;
    private readonly WatchFunction<TList> _watch;
    private readonly ClusterStore _store;
    private readonly ProxyMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ResourceInformerOptions _options;
    private readonly Backoff _backoff;
    private readonly KeyValuePair<string, object?> _resourceTag;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private volatile string? _lastResourceVersion;
    private int _running;

    /// <summary>Creates an informer for one of <see cref="KubernetesResources"/> (or any <see cref="ResourceKind{T, TList}"/>).</summary>
    public ResourceInformer(
        ResourceKind<T, TList> kind,
        IKubernetes client,
        ClusterStore store,
        ProxyMetrics metrics,
        ILogger logger,
        TimeProvider timeProvider,
        ResourceInformerOptions? options = null)
        : this(kind?.Resource!, client, kind?.List!, kind?.Watch!, store, metrics, logger, timeProvider, options)
    {
    }

    /// <param name="resource">The API's plural resource name: store source name, logs, metric tags.</param>
    /// <param name="client">The KubernetesClient to call; not disposed here.</param>
    /// <param name="list">Lists one page, e.g. <c>(c, r, ct) => c.CoreV1.ListServiceForAllNamespacesWithHttpMessagesAsync(continueParameter: r.Continue, limit: r.Limit, ...)</c>.</param>
    /// <param name="watch">Opens a watch: the same call with <c>watch: true</c>, <c>allowWatchBookmarks: true</c>, the resource version and timeout of the request.</param>
    /// <param name="store">The store to feed; the informer registers with it here.</param>
    /// <param name="metrics">Watch restarts and errors; changes recorded.</param>
    /// <param name="logger">Every restart and error is logged with the resource name.</param>
    /// <param name="timeProvider">Clock for backoff, silent-watch detection and request timeouts.</param>
    /// <param name="options">Selectors and timing; defaults when null. Validated here.</param>
    public ResourceInformer(
        string resource,
        IKubernetes client,
        ListFunction<TList> list,
        WatchFunction<TList> watch,
        ClusterStore store,
        ProxyMetrics metrics,
        ILogger logger,
        TimeProvider timeProvider,
        ResourceInformerOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(resource);
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(list);
        ArgumentNullException.ThrowIfNull(watch);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentNullException.ThrowIfNull(timeProvider);
        options = options?.Clone() ?? new ResourceInformerOptions();
        options.Validate();

        Resource = resource;
        SourceName = SourcePrefix + resource;
        _client = client;
        _list = list;
        _watch = watch;
        _store = store;
        _metrics = metrics;
        _logger = logger;
        _time = timeProvider;
        _options = options;
        _backoff = new Backoff(options.InitialBackoff, options.MaxBackoff, options.BackoffJitter);
        _resourceTag = new("resource", resource);
        _store.RegisterSource(SourceName);
    }

    /// <inheritdoc/>
    public string Resource { get; }

    /// <inheritdoc/>
    public string SourceName { get; }

    /// <inheritdoc/>
    public bool HasSynced => _ready.Task.IsCompleted;

    /// <inheritdoc/>
    public string? LastResourceVersion => _lastResourceVersion;

    /// <inheritdoc/>
    public Task ReadyAsync(CancellationToken cancellationToken) => _ready.Task.WaitAsync(cancellationToken);

    /// <inheritdoc/>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _running, 1) != 0)
            throw new InvalidOperationException($"the {Resource} informer is already running");
        Log.Starting(_logger, Resource, _options.LabelSelector ?? "", _options.FieldSelector ?? "");
        var relist = true;
        var watchFailures = 0;
        var firstWatchAfterList = false;
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                try
                {
                    if (relist)
                    {
                        await ListUntilSuccessAsync(cancellationToken).ConfigureAwait(false);
                        relist = false;
                        watchFailures = 0;
                        // The API answers again: an outage's grown backoff must not delay the next hiccup.
                        _backoff.Reset();
                        firstWatchAfterList = true;
                    }

                    var outcome = await WatchOnceAsync(cancellationToken).ConfigureAwait(false);
                    var expiredRightAfterList = firstWatchAfterList && outcome.Events == 0;
                    firstWatchAfterList = false;
                    switch (outcome.Kind)
                    {
                        case WatchEnd.Closed:
                            CountRestart("closed");
                            Log.WatchClosed(_logger, Resource, outcome.Events, outcome.Duration.TotalSeconds, _lastResourceVersion ?? "");
                            if (outcome.Events > 0 || outcome.Duration >= MinHealthyWatch)
                            {
                                _backoff.Reset();
                                watchFailures = 0;
                            }
                            else
                            {
                                // Ended at once with nothing: do not spin on a server that closes every watch.
                                await DelayAsync(_backoff.Next(), cancellationToken).ConfigureAwait(false);
                            }
                            break;

                        case WatchEnd.Expired:
                            CountRestart("expired");
                            Log.WatchExpired(_logger, Resource, outcome.ResourceVersion ?? "", Describe(outcome.Error));
                            relist = true;
                            // A list's own resource version already too old: do not spin list -> 410 -> list.
                            if (expiredRightAfterList)
                                await DelayAsync(_backoff.Next(), cancellationToken).ConfigureAwait(false);
                            break;

                        case WatchEnd.Silent:
                            CountRestart("silent");
                            Log.WatchSilent(_logger, Resource, outcome.SilenceLimit, _lastResourceVersion ?? "");
                            break;

                        default:
                            CountRestart("error");
                            _metrics.WatchErrors.Add(1, _resourceTag);
                            if (outcome.Events > 0 || outcome.Duration >= HealthyWatchLifetime)
                            {
                                // It worked until the failure (a dropped connection): retry quickly.
                                _backoff.Reset();
                                watchFailures = 0;
                            }
                            watchFailures++;
                            var delay = _backoff.Next();
                            relist = outcome.Relist || watchFailures >= _options.RelistAfterWatchFailures;
                            Log.WatchFailed(_logger, Resource, watchFailures, delay.TotalMilliseconds, relist ? "list again" : "resume the watch", Describe(outcome.Error));
                            await DelayAsync(delay, cancellationToken).ConfigureAwait(false);
                            break;
                    }
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    break;
                }
                catch (Exception ex)
                {
                    // Not an API failure (those are handled above) but a bug: keep following the
                    // resource, starting over from a list.
                    _metrics.WatchErrors.Add(1, _resourceTag);
                    Log.UnexpectedFailure(_logger, Resource, ex);
                    relist = true;
                    await DelayAsync(_backoff.Next(), cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            Log.Stopped(_logger, Resource, _lastResourceVersion ?? "");
            Volatile.Write(ref _running, 0);
        }
    }

    // ---- LIST ----

    private async Task ListUntilSuccessAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var started = _time.GetTimestamp();
            Listing listing;
            try
            {
                listing = await ListAllPagesAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                _metrics.WatchErrors.Add(1, _resourceTag);
                var delay = _backoff.Next();
                Log.ListFailed(_logger, Resource, attempt, delay.TotalMilliseconds, Describe(ex));
                await DelayAsync(delay, cancellationToken).ConfigureAwait(false);
                continue;
            }

            var before = _store.Snapshot().Version;
            _store.ReplaceKind(listing.Items);
            var changed = _store.Snapshot().Version != before;
            if (changed)
                _metrics.ChangeRecorded();
            _lastResourceVersion = listing.ResourceVersion;
            Log.Listed(_logger, Resource, listing.Items.Count, listing.Pages, listing.ResourceVersion ?? "", changed,
                _time.GetElapsedTime(started).TotalMilliseconds);

            if (!_ready.Task.IsCompleted)
            {
                // Ready first: whoever sees the store synced sees every informer synced.
                _ready.TrySetResult();
                _store.MarkSynced(SourceName);
                Log.Synced(_logger, Resource, listing.Items.Count);
            }
            return;
        }
    }

    private async Task<Listing> ListAllPagesAsync(CancellationToken cancellationToken)
    {
        for (var restart = 0; ; restart++)
        {
            var items = new List<T>();
            string? resourceVersion = null;
            string? continueToken = null;
            var pages = 0;
            try
            {
                do
                {
                    using var timeout = new CancellationTokenSource(_options.ListRequestTimeout, _time);
                    using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
                    var request = new ListRequest(_options.LabelSelector, _options.FieldSelector, _options.PageSize, continueToken);
                    using var response = await _list(_client, request, linked.Token).ConfigureAwait(false);
                    var page = response.Body ?? throw new InvalidDataException("the API server answered the list with an empty body");
                    pages++;
                    if (page.Items is { } pageItems)
                    {
                        foreach (var item in pageItems)
                        {
                            if (item?.Metadata is not null)
                                items.Add(Trim(item));
                        }
                    }
                    // Every page of one list carries the resource version of the same snapshot.
                    if (!string.IsNullOrEmpty(page.Metadata?.ResourceVersion))
                        resourceVersion = page.Metadata.ResourceVersion;
                    continueToken = page.Metadata?.ContinueProperty;
                }
                while (!string.IsNullOrEmpty(continueToken));
                return new Listing(items, resourceVersion, pages);
            }
            catch (Exception ex) when (continueToken is not null && IsExpired(ex) && restart < MaxListRestarts)
            {
                // The snapshot behind the continue token was compacted while we paged: start over.
                Log.ListContinueExpired(_logger, Resource, pages);
            }
        }
    }

    // ---- WATCH ----

    private async Task<WatchOutcome> WatchOnceAsync(CancellationToken cancellationToken)
    {
        var from = _lastResourceVersion;
        var timeoutSeconds = (int)Math.Ceiling(_options.WatchTimeout.TotalSeconds * (1 + 0.25 * Random.Shared.NextDouble()));
        var started = _time.GetTimestamp();
        long events = 0;
        Exception? streamError = null;

        var silenceLimit = TimeSpan.FromSeconds(timeoutSeconds) + _options.SilentWatchGrace;
        using var silence = new CancellationTokenSource(silenceLimit, _time);
        using var abort = new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, silence.Token, abort.Token);
        Log.WatchOpening(_logger, Resource, from ?? "", timeoutSeconds);

        WatchOutcome Outcome(WatchEnd kind, Exception? error = null, bool relist = false) =>
            new(kind, error, events, _time.GetElapsedTime(started), from, relist, silenceLimit);

        try
        {
            // Returns once the first line of the stream has arrived (KubernetesClient peeks it).
            using var response = await _watch(_client, new WatchRequest(_options.LabelSelector, _options.FieldSelector, from, timeoutSeconds), linked.Token)
                .ConfigureAwait(false);

            // ERROR events (410 Gone above all) arrive here, not in the stream; the enumeration
            // would keep reading, so stop it and decide once it has unwound.
            void OnError(Exception ex)
            {
                streamError ??= ex;
                abort.Cancel();
            }

#pragma warning disable CS0618 // WatchAsync is marked "will be deprecated"; it is what the generated clients use, and there is no replacement yet.
            var stream = Task.FromResult(response).WatchAsync<T, TList>(OnError, linked.Token);
#pragma warning restore CS0618
            await foreach (var (type, obj) in stream.ConfigureAwait(false))
            {
                silence.CancelAfter(silenceLimit);
                events++;
                Apply(type, obj);
            }
            return streamError is null ? Outcome(WatchEnd.Closed) : Classify(streamError);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception) when (streamError is not null)
        {
            return Classify(streamError);
        }
        catch (OperationCanceledException) when (silence.IsCancellationRequested)
        {
            return Outcome(WatchEnd.Silent);
        }
        catch (HttpRequestException ex) when (ex.InnerException is EndOfStreamException)
        {
            // The server ended the watch before its first event: a quiet watch reaching its timeout.
            return Outcome(WatchEnd.Closed);
        }
        catch (Exception ex)
        {
            return Classify(ex);
        }

        WatchOutcome Classify(Exception ex)
        {
            if (IsExpired(ex))
                return Outcome(WatchEnd.Expired, ex);
            // A line that does not decode would come again on a resumed watch: list instead.
            return Outcome(WatchEnd.Failed, ex, relist: ex is JsonException);
        }
    }

    private void Apply(WatchEventType type, T obj)
    {
        var resourceVersion = obj?.Metadata?.ResourceVersion;
        switch (type)
        {
            case WatchEventType.Added or WatchEventType.Modified or WatchEventType.Deleted when obj?.Metadata is not null:
                var before = _store.Snapshot().Version;
                if (type == WatchEventType.Deleted)
                    _store.Delete(obj);
                else
                    _store.Upsert(Trim(obj));
                if (_store.Snapshot().Version != before)
                    _metrics.ChangeRecorded();
                Log.Event(_logger, Resource, type, ClusterStore.KeyOf(obj), resourceVersion ?? "");
                break;

            case WatchEventType.Bookmark:
                Log.Bookmark(_logger, Resource, resourceVersion ?? "");
                break;

            default:
                Log.UnexpectedEvent(_logger, Resource, type);
                return;
        }
        if (!string.IsNullOrEmpty(resourceVersion))
            _lastResourceVersion = resourceVersion;
    }

    // ---- helpers ----

    private static T Trim(T obj) => ObjectTrimmer.Trim(obj);

    /// <summary>410 Gone: as an HTTP status, or as a Status in an ERROR event (reason "Expired" or "Gone").</summary>
    internal static bool IsExpired(Exception? ex) => ex switch
    {
        HttpOperationException { Response.StatusCode: System.Net.HttpStatusCode.Gone } => true,
        KubernetesException { Status.Code: 410 } => true,
        KubernetesException { Status.Reason: "Expired" or "Gone" } => true,
        _ => false,
    };

    /// <summary>A one-line reason for the logs: status and message for API errors, the exception chain otherwise.</summary>
    internal static string Describe(Exception? ex)
    {
        switch (ex)
        {
            case null:
                return "";
            case HttpOperationException http:
                var body = http.Response?.Content;
                var status = TryParseStatus(body);
                return $"HTTP {(int?)http.Response?.StatusCode} {http.Response?.StatusCode}"
                    + (status?.Message is { Length: > 0 } m ? $": {m}" : body is { Length: > 0 } ? $": {Shorten(body)}" : "");
            case KubernetesException { Status: { } s }:
                return $"ERROR event {s.Code} {s.Reason}: {s.Message}";
            case OperationCanceledException:
                return "request timed out";
            default:
                var text = $"{ex.GetType().Name}: {ex.Message}";
                for (var inner = ex.InnerException; inner is not null; inner = inner.InnerException)
                    text += $" ({inner.GetType().Name}: {inner.Message})";
                return text;
        }
    }

    private static V1Status? TryParseStatus(string? body)
    {
        if (string.IsNullOrWhiteSpace(body))
            return null;
        try
        {
            return KubernetesJson.Deserialize<V1Status>(body);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string Shorten(string text) => text.Length <= 200 ? text : text[..200] + "...";

    private void CountRestart(string reason) =>
        _metrics.WatchRestarts.Add(1, _resourceTag, new KeyValuePair<string, object?>("reason", reason));

    private Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken) =>
        Task.Delay(delay, _time, cancellationToken);

    private sealed record Listing(List<T> Items, string? ResourceVersion, int Pages);

    private enum WatchEnd
    {
        Closed,
        Expired,
        Silent,
        Failed,
    }

    [DebuggerDisplay("{Kind} after {Events} events")]
    private sealed record WatchOutcome(WatchEnd Kind, Exception? Error, long Events, TimeSpan Duration, string? ResourceVersion, bool Relist, TimeSpan SilenceLimit);
}
