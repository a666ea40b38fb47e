using System.Diagnostics;
using EbpfProxy.Core.Metrics;

namespace EbpfProxy.Core.Tests;

public sealed class SyncTracingTests
{
    [Fact]
    public void APassIsAnActivityWithItsCountsAsTags()
    {
        Assert.Null(SyncTracing.Start("sync-unheard", "Periodic")); // nobody listens: nothing recorded
        var stopped = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == SyncTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { lock (stopped) stopped.Add(a); },
        };
        ActivitySource.AddActivityListener(listener);
        using (var a = SyncTracing.Start("sync", "Requested"))
            SyncTracing.Counts(a, ("writes", 7), ("errors", 1));
        var sync = Assert.Single(stopped, a => a.OperationName == "sync");
        Assert.Equal("Requested", sync.GetTagItem("ebpfproxy.trigger"));
        Assert.Equal(7L, sync.GetTagItem("ebpfproxy.writes"));
        Assert.Equal(1L, sync.GetTagItem("ebpfproxy.errors"));
    }
}
