using Microsoft.Extensions.Logging;

namespace EbpfProxy.Kubernetes.Api;

public sealed partial class KubernetesApiSource
{
    /// <summary>Log messages of the API source. Event ids 3080-3099 are reserved for it (3050-3079: its informers); never renumber.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 3080, Level = LogLevel.Information,
            Message = "Following the Kubernetes API at {Server} for node {NodeName}: {Resources}")]
        public static partial void Starting(ILogger logger, string server, string nodeName, string resources);

        [LoggerMessage(EventId = 3081, Level = LogLevel.Information,
            Message = "All {Count} Kubernetes resources listed in {ElapsedMs:F0} ms")]
        public static partial void AllSynced(ILogger logger, int count, double elapsedMs);
    }
}
