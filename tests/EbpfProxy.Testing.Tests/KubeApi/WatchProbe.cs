using System.Collections.Concurrent;
using System.Threading.Channels;
using k8s;

namespace EbpfProxy.Testing.Tests.KubeApi;

/// <summary>
/// Drives a KubernetesClient watch enumeration in the background and records what it yields, what it reports to
/// <c>onError</c>, and how it ends (normally or with an exception).
/// </summary>
internal sealed class WatchProbe<T> : IAsyncDisposable
{
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    private readonly Channel<(WatchEventType Type, T Object)> _events = Channel.CreateUnbounded<(WatchEventType, T)>();
    private readonly CancellationTokenSource _cts = new();

    private WatchProbe(Func<Action<Exception>, CancellationToken, IAsyncEnumerable<(WatchEventType, T)>> open)
    {
        Completion = Task.Run(async () =>
        {
            try
            {
                await foreach ((WatchEventType type, T obj) in open(Errors.Enqueue, _cts.Token))
                {
                    _events.Writer.TryWrite((type, obj));
                }
                return (Exception?)null;
            }
            catch (OperationCanceledException) when (_cts.IsCancellationRequested)
            {
                return null;
            }
            catch (Exception e)
            {
                return e;
            }
            finally
            {
                _events.Writer.TryComplete();
            }
        });
    }

    /// <summary>Exceptions passed to <c>onError</c> (e.g. the <see cref="KubernetesException"/> of a 410 ERROR event).</summary>
    public ConcurrentQueue<Exception> Errors { get; } = new();

    /// <summary>Ends when the enumeration ends: null if it completed normally, else the exception it threw.</summary>
    public Task<Exception?> Completion { get; }

    public static WatchProbe<T> Start(Func<Action<Exception>, CancellationToken, IAsyncEnumerable<(WatchEventType, T)>> open) => new(open);

    /// <summary>The next event (bookmarks skipped unless <paramref name="includeBookmarks"/>); fails on timeout or end of stream.</summary>
    public async Task<(WatchEventType Type, T Object)> NextAsync(TimeSpan? timeout = null, bool includeBookmarks = false)
    {
        using var cts = new CancellationTokenSource(timeout ?? DefaultTimeout);
        try
        {
            while (true)
            {
                if (!await _events.Reader.WaitToReadAsync(cts.Token))
                {
                    Exception? end = await Completion;
                    throw new InvalidOperationException($"The watch ended ({end?.GetType().Name ?? "normally"}) before the next event.", end);
                }
                if (_events.Reader.TryRead(out var e) && (includeBookmarks || e.Item1 != WatchEventType.Bookmark))
                {
                    return e;
                }
            }
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            throw new TimeoutException($"No watch event within {timeout ?? DefaultTimeout}.");
        }
    }

    /// <summary>Asserts that nothing at all (not even a bookmark or the end of the stream) arrives within <paramref name="window"/>.</summary>
    public async Task AssertSilentAsync(TimeSpan window)
    {
        using var cts = new CancellationTokenSource(window);
        try
        {
            bool more = await _events.Reader.WaitToReadAsync(cts.Token);
            if (more && _events.Reader.TryPeek(out var e))
            {
                Assert.Fail($"Expected silence, got {e.Item1}.");
            }
            Assert.Fail($"Expected silence, the watch ended: {(await Completion)?.GetType().Name ?? "normally"}.");
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
        }
    }

    /// <summary>Waits for the end of the enumeration; returns its exception or null.</summary>
    public async Task<Exception?> WaitEndAsync(TimeSpan? timeout = null) => await Completion.WaitAsync(timeout ?? DefaultTimeout);

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        try
        {
            await Completion.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
        }
        _cts.Dispose();
    }
}
