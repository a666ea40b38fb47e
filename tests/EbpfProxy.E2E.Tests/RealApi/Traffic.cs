using System.Net;
using EbpfProxy.Testing;

namespace EbpfProxy.E2E.Tests.RealApi;

/// <summary>
/// Traffic that keeps going while the test disturbs the control plane: fresh connections one after
/// another, and long-lived connections that each send a request every 200 ms. Counts requests, failed
/// requests (no answer in time, refused) and connections reset or closed by something else than the test.
/// </summary>
internal sealed class Traffic : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _loops = [];
    private readonly List<string> _errors = [];
    private readonly Lock _gate = new();
    private long _requests;
    private long _failures;
    private long _resets;
    private int _held;

    public long Requests => Interlocked.Read(ref _requests);
    public long Failures => Interlocked.Read(ref _failures);
    public long Resets => Interlocked.Read(ref _resets);

    /// <summary>The first errors seen, for a failing assertion's message.</summary>
    public string Errors
    {
        get
        {
            lock (_gate)
                return string.Join("\n", _errors.Take(20));
        }
    }

    private void Record(string what, Exception e)
    {
        lock (_gate)
            _errors.Add($"{DateTime.UtcNow:HH:mm:ss.fff} {what}: {e.Message}");
    }

    /// <summary>Fresh connections from <paramref name="from"/> to <paramref name="dst"/>:<paramref name="port"/>, one request each.</summary>
    public void AddFreshConnections(NetNs from, IPAddress dst, int port) => _loops.Add(Task.Run(async () =>
    {
        for (int i = 0; !_stop.IsCancellationRequested; i++)
        {
            Interlocked.Increment(ref _requests);
            try
            {
                using var c = await TcpProbe.ConnectAsync(from, dst, port, TimeSpan.FromSeconds(3));
                var reply = await c.RequestAsync($"fresh{i}", TimeSpan.FromSeconds(3));
                if (!reply.EndsWith($" fresh{i}", StringComparison.Ordinal))
                    throw new InvalidOperationException($"unexpected reply '{reply}'");
            }
            catch (Exception e) when (e is ProbeFailedException or InvalidOperationException)
            {
                Interlocked.Increment(ref _failures);
                Record($"fresh {dst}:{port}", e);
            }
            await Task.Delay(50);
        }
    }));

    /// <summary>
    /// Opens <paramref name="count"/> connections now and keeps each busy until stopped; returns once they are open.
    /// With <paramref name="backend"/>, only connections that this echo server answers are kept (others are closed and
    /// opened again).
    /// </summary>
    public async Task AddLongLivedAsync(NetNs from, IPAddress dst, int port, int count, string? backend = null)
    {
        for (int n = 0, attempts = 0; n < count; n++)
        {
            var c = await TcpProbe.ConnectAsync(from, dst, port, TimeSpan.FromSeconds(3));
            if (backend is not null && !(await c.RequestAsync("who", TimeSpan.FromSeconds(3))).StartsWith(backend + " ", StringComparison.Ordinal))
            {
                c.Dispose();
                if (++attempts > 300)
                    throw new InvalidOperationException($"no connection to {dst}:{port} reached {backend} in 300 attempts");
                n--;
                continue;
            }
            var id = Interlocked.Increment(ref _held);
            _loops.Add(Task.Run(async () =>
            {
                using var conn = c;
                for (int i = 0; !_stop.IsCancellationRequested; i++)
                {
                    Interlocked.Increment(ref _requests);
                    try
                    {
                        var reply = await conn.RequestAsync($"held{id}-{i}", TimeSpan.FromSeconds(5));
                        if (!reply.EndsWith($" held{id}-{i}", StringComparison.Ordinal) || backend is not null && !reply.StartsWith(backend + " ", StringComparison.Ordinal))
                            throw new InvalidOperationException($"unexpected reply '{reply}'");
                    }
                    catch (ProbeFailedException e) when (e.Failure is ProbeFailure.Reset or ProbeFailure.Closed)
                    {
                        Interlocked.Increment(ref _resets);
                        Record($"held {dst}:{port} #{id}", e);
                        return; // that connection is gone
                    }
                    catch (Exception e) when (e is ProbeFailedException or InvalidOperationException)
                    {
                        Interlocked.Increment(ref _failures);
                        Record($"held {dst}:{port} #{id}", e);
                    }
                    await Task.Delay(200);
                }
            }));
        }
    }

    public override string ToString() => $"{Requests} requests, {Failures} failed, {Resets} connections reset";

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await Task.WhenAll(_loops);
        _stop.Dispose();
    }
}
