using k8s;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Kubernetes.Api;

/// <summary>
/// Log messages of <see cref="ResourceInformer{T, TList}"/> (outside the generic type, so each
/// message is generated once). Event ids 3050-3079 are reserved for it; never renumber.
/// </summary>
internal static partial class ResourceInformerLog
{
    [LoggerMessage(EventId = 3050, Level = LogLevel.Debug,
        Message = "Informer for {Resource} starting (label selector '{LabelSelector}', field selector '{FieldSelector}')")]
    public static partial void Starting(ILogger logger, string resource, string labelSelector, string fieldSelector);

    [LoggerMessage(EventId = 3051, Level = LogLevel.Information,
        Message = "Listed {Resource}: {Count} objects in {Pages} pages at resource version {ResourceVersion} (store changed: {Changed}) in {ElapsedMs:F1} ms")]
    public static partial void Listed(ILogger logger, string resource, int count, int pages, string resourceVersion, bool changed, double elapsedMs);

    [LoggerMessage(EventId = 3052, Level = LogLevel.Warning,
        Message = "Listing {Resource} failed (attempt {Attempt}), retrying in {DelayMs:F0} ms; the store keeps its content: {Reason}")]
    public static partial void ListFailed(ILogger logger, string resource, int attempt, double delayMs, string reason);

    [LoggerMessage(EventId = 3053, Level = LogLevel.Information,
        Message = "The continue token of the {Resource} list expired after {Pages} pages; listing again from the first page")]
    public static partial void ListContinueExpired(ILogger logger, string resource, int pages);

    [LoggerMessage(EventId = 3054, Level = LogLevel.Debug,
        Message = "Watching {Resource} from resource version {ResourceVersion} (server timeout {TimeoutSeconds} s)")]
    public static partial void WatchOpening(ILogger logger, string resource, string resourceVersion, int timeoutSeconds);

    [LoggerMessage(EventId = 3055, Level = LogLevel.Debug,
        Message = "Watch of {Resource} closed by the server after {Events} events and {Seconds:F1} s; resuming from {ResourceVersion}")]
    public static partial void WatchClosed(ILogger logger, string resource, long events, double seconds, string resourceVersion);

    [LoggerMessage(EventId = 3056, Level = LogLevel.Information,
        Message = "Watch of {Resource} from resource version {ResourceVersion} expired ({Reason}); listing again, objects deleted meanwhile will be removed")]
    public static partial void WatchExpired(ILogger logger, string resource, string resourceVersion, string reason);

    [LoggerMessage(EventId = 3057, Level = LogLevel.Warning,
        Message = "Watch of {Resource} failed ({Failures} in a row), will {Next} in {DelayMs:F0} ms; the store keeps its content: {Reason}")]
    public static partial void WatchFailed(ILogger logger, string resource, int failures, double delayMs, string next, string reason);

    [LoggerMessage(EventId = 3058, Level = LogLevel.Warning,
        Message = "Watch of {Resource} silent for {Timeout}: no event or bookmark; reconnecting from resource version {ResourceVersion}")]
    public static partial void WatchSilent(ILogger logger, string resource, TimeSpan timeout, string resourceVersion);

    [LoggerMessage(EventId = 3059, Level = LogLevel.Information,
        Message = "Informer for {Resource} synced: {Count} objects listed")]
    public static partial void Synced(ILogger logger, string resource, int count);

    [LoggerMessage(EventId = 3060, Level = LogLevel.Trace,
        Message = "{Resource} {Type} {Key} at resource version {ResourceVersion}")]
    public static partial void Event(ILogger logger, string resource, WatchEventType type, string key, string resourceVersion);

    [LoggerMessage(EventId = 3061, Level = LogLevel.Trace,
        Message = "{Resource} bookmark at resource version {ResourceVersion}")]
    public static partial void Bookmark(ILogger logger, string resource, string resourceVersion);

    [LoggerMessage(EventId = 3062, Level = LogLevel.Warning,
        Message = "Ignoring a {Resource} watch event of type {Type} without an object")]
    public static partial void UnexpectedEvent(ILogger logger, string resource, WatchEventType type);

    [LoggerMessage(EventId = 3063, Level = LogLevel.Error,
        Message = "Unexpected failure in the {Resource} informer; listing again after a backoff")]
    public static partial void UnexpectedFailure(ILogger logger, string resource, Exception exception);

    [LoggerMessage(EventId = 3064, Level = LogLevel.Debug,
        Message = "Informer for {Resource} stopped at resource version {ResourceVersion}")]
    public static partial void Stopped(ILogger logger, string resource, string resourceVersion);
}
