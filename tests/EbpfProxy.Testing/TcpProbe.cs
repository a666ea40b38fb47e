using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EbpfProxy.Testing;

/// <summary>
/// TCP client probes run from inside a namespace (the socket is created there via <see cref="NetNs.Run{T}"/>).
/// Failures surface as <see cref="ProbeFailedException"/> with a <see cref="ProbeFailure"/>.
/// </summary>
public static class TcpProbe
{
    /// <summary>
    /// Connects from <paramref name="ns"/> to <paramref name="dst"/>:<paramref name="port"/>.
    /// </summary>
    /// <exception cref="ProbeFailedException">Refused, timed out, unreachable, …</exception>
    public static async Task<TcpProbeConnection> ConnectAsync(NetNs ns, IPAddress dst, int port, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentNullException.ThrowIfNull(dst);
        var remote = new IPEndPoint(dst, port);
        Socket socket = ns.Run(() => new Socket(dst.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true });
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            await socket.ConnectAsync(remote, cts.Token).ConfigureAwait(false);
            return new TcpProbeConnection(socket, remote);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new ProbeFailedException(ProbeFailure.Timeout, remote, $"connect from {ns.Name} timed out after {timeout.TotalMilliseconds:0} ms", e);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new ProbeFailedException(ProbeFailedException.Classify(e.SocketErrorCode), remote, $"connect from {ns.Name} failed: {e.SocketErrorCode} ({e.Message})", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// One-shot: connect, send <paramref name="line"/>, read one reply line, close. The timeout applies to the
    /// connect and to the reply separately.
    /// </summary>
    /// <returns>The reply line without its trailing newline.</returns>
    /// <exception cref="ProbeFailedException">Refused, timed out, reset, closed, unreachable, …</exception>
    public static async Task<string> RequestAsync(NetNs ns, IPAddress dst, int port, string line, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using TcpProbeConnection connection = await ConnectAsync(ns, dst, port, timeout, cancellationToken).ConfigureAwait(false);
        return await connection.RequestAsync(line, timeout, cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>An established TCP probe connection; send lines and read reply lines.</summary>
public sealed class TcpProbeConnection : IDisposable
{
    private readonly Socket _socket;
    private readonly List<byte> _pending = [];
    private readonly SemaphoreSlim _gate = new(1, 1);

    internal TcpProbeConnection(Socket socket, IPEndPoint remote)
    {
        _socket = socket;
        RemoteEndPoint = remote;
        LocalEndPoint = (IPEndPoint)socket.LocalEndPoint!;
    }

    /// <summary>The local address and port the kernel chose.</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>The endpoint connected to (e.g. a service VIP).</summary>
    public IPEndPoint RemoteEndPoint { get; }

    /// <summary>The underlying socket, for special cases (e.g. <c>LingerState</c> for RST on close).</summary>
    public Socket Socket => _socket;

    /// <summary>
    /// Sends <paramref name="line"/> + <c>"\n"</c> and reads one reply line (without the newline).
    /// </summary>
    /// <exception cref="ProbeFailedException">Timeout, reset, closed before a full line, …</exception>
    public async Task<string> RequestAsync(string line, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(line);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            await _socket.SendAsync(Encoding.UTF8.GetBytes(line + "\n"), SocketFlags.None, cts.Token).ConfigureAwait(false);
            return await ReadLineAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ProbeFailedException(ProbeFailure.Timeout, RemoteEndPoint, $"no reply within {timeout.TotalMilliseconds:0} ms", e);
        }
        catch (SocketException e)
        {
            throw new ProbeFailedException(ProbeFailedException.Classify(e.SocketErrorCode), RemoteEndPoint, $"request failed: {e.SocketErrorCode} ({e.Message})", e);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Reads one reply line (for servers that speak first or send several lines).</summary>
    public async Task<string> ReadLineAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            return await ReadLineAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ProbeFailedException(ProbeFailure.Timeout, RemoteEndPoint, $"no line within {timeout.TotalMilliseconds:0} ms", e);
        }
        catch (SocketException e)
        {
            throw new ProbeFailedException(ProbeFailedException.Classify(e.SocketErrorCode), RemoteEndPoint, $"read failed: {e.SocketErrorCode} ({e.Message})", e);
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<string> ReadLineAsync(CancellationToken ct)
    {
        byte[] buffer = new byte[4096];
        while (true)
        {
            int newline = _pending.IndexOf((byte)'\n');
            if (newline >= 0)
            {
                string result = Encoding.UTF8.GetString(_pending.GetRange(0, newline).ToArray()).TrimEnd('\r');
                _pending.RemoveRange(0, newline + 1);
                return result;
            }
            int n = await _socket.ReceiveAsync(buffer, SocketFlags.None, ct).ConfigureAwait(false);
            if (n == 0)
            {
                string partial = Encoding.UTF8.GetString(_pending.ToArray());
                throw new ProbeFailedException(ProbeFailure.Closed, RemoteEndPoint,
                    partial.Length == 0 ? "peer closed the connection without replying" : $"peer closed the connection after a partial reply '{partial}'");
            }
            _pending.AddRange(buffer.AsSpan(0, n));
        }
    }

    /// <summary>Closes the connection (FIN).</summary>
    public void Dispose()
    {
        _socket.Dispose();
        _gate.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() => $"tcp {LocalEndPoint} -> {RemoteEndPoint}";
}
