namespace EbpfProxy.Kubernetes.Api;

/// <summary>
/// Exponential backoff with relative jitter: initial, doubling, capped. Not thread-safe; each
/// informer owns one.
/// </summary>
internal sealed class Backoff
{
    private readonly TimeSpan _initial;
    private readonly TimeSpan _max;
    private readonly double _jitter;
    private readonly Random _random;
    private TimeSpan _next;

    public Backoff(TimeSpan initial, TimeSpan max, double jitter, Random? random = null)
    {
        _initial = initial;
        _max = max;
        _jitter = jitter;
        _random = random ?? Random.Shared;
        _next = initial;
    }

    /// <summary>The delay before the next attempt; the one after will be twice as long, up to the cap.</summary>
    public TimeSpan Next()
    {
        var nominal = _next;
        _next = TimeSpan.FromTicks(Math.Min(_max.Ticks, nominal.Ticks * 2));
        var factor = 1 + _jitter * (2 * _random.NextDouble() - 1);
        return TimeSpan.FromTicks((long)(nominal.Ticks * factor));
    }

    /// <summary>Back to the initial delay, after something worked.</summary>
    public void Reset()
    {
        _next = _initial;
    }
}
