using Microsoft.Extensions.Logging;

namespace EbpfProxy.Kubernetes.Manifests;

public sealed partial class ManifestSource
{
    /// <summary>Log messages of the manifest source. Event ids 3000-3049 are reserved for it; never renumber.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 3000, Level = LogLevel.Information,
            Message = "Reading manifests from {Directory} (poll every {PollInterval}, file system watcher {UseWatcher})")]
        public static partial void Starting(ILogger logger, string directory, TimeSpan pollInterval, bool useWatcher);

        [LoggerMessage(EventId = 3001, Level = LogLevel.Information,
            Message = "Applied manifests from {Directory}: {Files} files, {Services} services, {EndpointSlices} endpoint slices ({Derived} derived from pods), {Pods} pods, {Errors} errors, read in {ElapsedMs:F1} ms")]
        public static partial void Applied(ILogger logger, string directory, int files, int services, int endpointSlices, int derived, int pods, int errors, double elapsedMs);

        [LoggerMessage(EventId = 3002, Level = LogLevel.Debug,
            Message = "Re-read {Files} manifest files in {Directory}: nothing changed ({ElapsedMs:F1} ms)")]
        public static partial void Unchanged(ILogger logger, string directory, int files, double elapsedMs);

        [LoggerMessage(EventId = 3003, Level = LogLevel.Error,
            Message = "Manifest problem in {File}: {Problem}")]
        public static partial void ManifestProblem(ILogger logger, string file, string problem);

        [LoggerMessage(EventId = 3004, Level = LogLevel.Information,
            Message = "Manifest problems in {File} are resolved")]
        public static partial void ProblemsResolved(ILogger logger, string file);

        [LoggerMessage(EventId = 3005, Level = LogLevel.Debug,
            Message = "Ignoring {Kind} {Name} ({ApiVersion}) in {File} document {Document}: this source reads Services, EndpointSlices and Pods")]
        public static partial void IgnoredKind(ILogger logger, string kind, string apiVersion, string name, string file, int document);

        [LoggerMessage(EventId = 3006, Level = LogLevel.Warning,
            Message = "Manifest directory {Directory} does not exist (already synced: {Synced}); waiting for it")]
        public static partial void DirectoryMissing(ILogger logger, string directory, bool synced);

        [LoggerMessage(EventId = 3007, Level = LogLevel.Error,
            Message = "Cannot list manifest directory {Directory}")]
        public static partial void DirectoryUnreadable(ILogger logger, string directory, Exception exception);

        [LoggerMessage(EventId = 3008, Level = LogLevel.Warning,
            Message = "Cannot watch {Directory}; edits are noticed by polling every {PollInterval}")]
        public static partial void WatcherUnavailable(ILogger logger, string directory, TimeSpan pollInterval, Exception exception);

        [LoggerMessage(EventId = 3009, Level = LogLevel.Warning,
            Message = "File system watcher on {Directory} failed; re-reading and re-creating it")]
        public static partial void WatcherFailed(ILogger logger, string directory, Exception exception);

        [LoggerMessage(EventId = 3010, Level = LogLevel.Information,
            Message = "Watching {Directory} again")]
        public static partial void WatcherRestored(ILogger logger, string directory);

        [LoggerMessage(EventId = 3012, Level = LogLevel.Information,
            Message = "{File} now lacks objects it had; keeping them until the file stays unchanged for {SettleTime} (a rewrite in progress?)")]
        public static partial void SettlePending(ILogger logger, string file, TimeSpan settleTime);

        [LoggerMessage(EventId = 3011, Level = LogLevel.Error,
            Message = "Unexpected failure reading manifest directory {Directory}; the store keeps its content")]
        public static partial void ReadFailed(ILogger logger, string directory, Exception exception);
    }
}
