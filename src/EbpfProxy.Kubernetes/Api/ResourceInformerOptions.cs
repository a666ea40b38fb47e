namespace EbpfProxy.Kubernetes.Api;

/// <summary>
/// Selectors and timing of one <see cref="ResourceInformer{T, TList}"/>. The defaults are those of
/// client-go's reflector where it has one.
/// </summary>
public sealed class ResourceInformerOptions
{
    /// <summary>Label selector for list and watch; null for every object.</summary>
    public string? LabelSelector { get; set; }

    /// <summary>Field selector for list and watch, e.g. <c>metadata.name=node-1</c>; null for every object.</summary>
    public string? FieldSelector { get; set; }

    /// <summary>
    /// Objects per LIST page (the API's <c>limit</c>). client-go pages by 500, but its informers'
    /// first list asks for resource version "0", which the API server serves from its watch cache
    /// even with a limit (kubernetes/kubernetes PR 70735), and that cache has not paged: kube-proxy
    /// gets all Services in one response. 2,000 keeps pages bounded (a few MB of EndpointSlices)
    /// with a fourth of the round trips: listing 10,000 Services and 10,000 EndpointSlices took
    /// 0.75 s instead of 1.0 s, and 5,000 no less than 2,000 (docs/benchmarks.md).
    /// </summary>
    public int PageSize { get; set; } = 2000;

    /// <summary>
    /// A watch that delivers no event and no bookmark for its requested <c>timeoutSeconds</c> plus
    /// this grace is cancelled and re-opened from the last resource version (a connection that
    /// died without a FIN, a stuck proxy). The limit is derived from the timeout each watch asks
    /// for, so a healthy server that ends the watch at its timeout is never taken for a silent one:
    /// a 1.28 server sends no periodic bookmarks, and a fixed 5-minute limit fired on every quiet
    /// watch that asked for 300-375 s.
    /// </summary>
    public TimeSpan SilentWatchGrace { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Server-side watch timeout (<c>timeoutSeconds</c>). Each watch asks for a random value
    /// between this and a quarter more, so the informers of many nodes do not reconnect together.
    /// </summary>
    public TimeSpan WatchTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Upper bound on one LIST page request (connection, headers and body).</summary>
    public TimeSpan ListRequestTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>First delay after a failure; it doubles with each further failure.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Largest delay between two attempts.</summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Relative jitter applied to every delay: 0.2 means ±20 %.</summary>
    public double BackoffJitter { get; set; } = 0.2;

    /// <summary>
    /// Consecutive failed watches (errors other than 410) after which the informer stops trying
    /// to resume from its resource version and lists again.
    /// </summary>
    public int RelistAfterWatchFailures { get; set; } = 3;

    /// <summary>A copy, so one options object can seed several informers.</summary>
    public ResourceInformerOptions Clone() => (ResourceInformerOptions)MemberwiseClone();

    /// <summary>Throws <see cref="ArgumentException"/> naming the first value out of range.</summary>
    public void Validate()
    {
        if (PageSize <= 0)
            throw new ArgumentOutOfRangeException(nameof(PageSize), PageSize, "must be positive");
        if (SilentWatchGrace <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(SilentWatchGrace), SilentWatchGrace, "must be positive");
        if (WatchTimeout < TimeSpan.FromSeconds(1) || WatchTimeout.TotalSeconds * 1.25 > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(WatchTimeout), WatchTimeout, "must be at least one second (the API counts whole seconds)");
        if (ListRequestTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(ListRequestTimeout), ListRequestTimeout, "must be positive");
        if (InitialBackoff <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(InitialBackoff), InitialBackoff, "must be positive");
        if (MaxBackoff < InitialBackoff)
            throw new ArgumentOutOfRangeException(nameof(MaxBackoff), MaxBackoff, "must not be shorter than InitialBackoff");
        if (BackoffJitter is < 0 or >= 1 || double.IsNaN(BackoffJitter))
            throw new ArgumentOutOfRangeException(nameof(BackoffJitter), BackoffJitter, "must be in [0, 1)");
        if (RelistAfterWatchFailures <= 0)
            throw new ArgumentOutOfRangeException(nameof(RelistAfterWatchFailures), RelistAfterWatchFailures, "must be positive");
    }
}
