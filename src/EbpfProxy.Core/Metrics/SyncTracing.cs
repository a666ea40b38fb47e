using System.Diagnostics;

namespace EbpfProxy.Core.Metrics;

/// <summary>
/// Sync traces: each service sync and each NetworkPolicy pass is an Activity of the "EbpfProxy"
/// source, with its counts as tags. The daemon exports them over OTLP only when
/// OTEL_EXPORTER_OTLP_ENDPOINT is set; without a listener StartActivity returns null and costs nothing.
/// </summary>
public static class SyncTracing
{
    public const string SourceName = "EbpfProxy";

    public static ActivitySource Source { get; } = new(SourceName);

    /// <summary>Starts a "sync" or "policy-sync" activity (null when nobody listens).</summary>
    public static Activity? Start(string name, string trigger) =>
        Source.StartActivity(name)?.SetTag("ebpfproxy.trigger", trigger);

    /// <summary>Records a pass's counts as tags (ebpfproxy.writes, ...).</summary>
    public static void Counts(Activity? activity, params (string Name, long Value)[] counts)
    {
        if (activity is null)
            return;
        foreach (var (name, value) in counts)
            activity.SetTag("ebpfproxy." + name, value);
    }
}
