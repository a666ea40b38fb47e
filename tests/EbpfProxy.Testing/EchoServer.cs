using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EbpfProxy.Testing;

/// <summary>
/// A TCP or UDP echo server living in a namespace, answering with its identity so tests can tell which
/// backend served a request, and recording client endpoints so tests can check source preservation.
/// </summary>
/// <remarks>
/// <para>TCP: for each received line (LF-terminated, a trailing CR is dropped) replies <c>"{identity} {line}\n"</c>.
/// Clients are recorded when accepted.</para>
/// <para>UDP: for each datagram replies <c>"{identity} {payload}"</c> to the sender. Senders are recorded per datagram.</para>
/// <para>Resets and abrupt closes by clients are tolerated; <see cref="Fault"/> reports an unexpected loop failure.</para>
/// </remarks>
public sealed class EchoServer : IDisposable, IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly CancellationTokenSource _cts = new();
    private readonly ConcurrentQueue<IPEndPoint> _seen = new();
    private readonly ConcurrentDictionary<Socket, byte> _connections = new();
    private readonly Task _loop;
    private int _requests;
    private int _disposed;

    private EchoServer(NetNs ns, ProtocolType protocol, Socket socket, string identity)
    {
        Ns = ns;
        Protocol = protocol;
        _socket = socket;
        Identity = identity;
        LocalEndPoint = (IPEndPoint)socket.LocalEndPoint!;
        _loop = protocol == ProtocolType.Tcp ? Task.Run(AcceptLoopAsync) : Task.Run(UdpLoopAsync);
    }

    /// <summary>The namespace the server lives in.</summary>
    public NetNs Ns { get; }

    /// <summary><see cref="ProtocolType.Tcp"/> or <see cref="ProtocolType.Udp"/>.</summary>
    public ProtocolType Protocol { get; }

    /// <summary>The identity prefixed to every reply.</summary>
    public string Identity { get; }

    /// <summary>The bound endpoint (the actual port when 0 was requested).</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>The bound port.</summary>
    public int Port => LocalEndPoint.Port;

    /// <summary>Remote endpoints seen so far (TCP: one per accepted connection; UDP: one per datagram), in order.</summary>
    public IReadOnlyList<IPEndPoint> SeenClients => _seen.ToArray();

    /// <summary>Number of requests answered (lines for TCP, datagrams for UDP).</summary>
    public int RequestCount => Volatile.Read(ref _requests);

    /// <summary>An unexpected exception that stopped the server loop, or null.</summary>
    public Exception? Fault { get; private set; }

    /// <summary>True when a client with this address was seen.</summary>
    public bool HasSeen(IPAddress address) => _seen.Any(e => e.Address.Equals(address));

    /// <summary>Starts a TCP echo server on <paramref name="bind"/>:<paramref name="port"/> inside <paramref name="ns"/>.</summary>
    public static EchoServer StartTcp(NetNs ns, IPAddress bind, int port, string identity)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentNullException.ThrowIfNull(bind);
        Socket socket = ns.Run(() =>
        {
            var s = new Socket(bind.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                s.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                s.Bind(new IPEndPoint(bind, port));
                s.Listen(512);
                return s;
            }
            catch
            {
                s.Dispose();
                throw;
            }
        });
        return new EchoServer(ns, ProtocolType.Tcp, socket, identity);
    }

    /// <summary>Starts a UDP echo server on <paramref name="bind"/>:<paramref name="port"/> inside <paramref name="ns"/>.</summary>
    public static EchoServer StartUdp(NetNs ns, IPAddress bind, int port, string identity)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentNullException.ThrowIfNull(bind);
        Socket socket = ns.Run(() =>
        {
            var s = new Socket(bind.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            try
            {
                s.Bind(new IPEndPoint(bind, port));
                return s;
            }
            catch
            {
                s.Dispose();
                throw;
            }
        });
        return new EchoServer(ns, ProtocolType.Udp, socket, identity);
    }

    private async Task AcceptLoopAsync()
    {
        CancellationToken ct = _cts.Token;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                Socket client;
                try
                {
                    client = await _socket.AcceptAsync(ct).ConfigureAwait(false);
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionAborted or SocketError.ConnectionReset)
                {
                    continue;
                }
                if (client.RemoteEndPoint is IPEndPoint remote)
                {
                    _seen.Enqueue(remote);
                }
                _connections.TryAdd(client, 0);
                _ = Task.Run(() => ServeTcpAsync(client, ct), CancellationToken.None);
            }
        }
        catch (Exception) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            Fault = e;
        }
    }

    private async Task ServeTcpAsync(Socket client, CancellationToken ct)
    {
        var pending = new List<byte>();
        byte[] buffer = new byte[4096];
        try
        {
            while (!ct.IsCancellationRequested)
            {
                int n = await client.ReceiveAsync(buffer, SocketFlags.None, ct).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }
                pending.AddRange(buffer.AsSpan(0, n));
                int newline;
                while ((newline = pending.IndexOf((byte)'\n')) >= 0)
                {
                    string line = Encoding.UTF8.GetString(pending.GetRange(0, newline).ToArray()).TrimEnd('\r');
                    pending.RemoveRange(0, newline + 1);
                    byte[] reply = Encoding.UTF8.GetBytes($"{Identity} {line}\n");
                    Interlocked.Increment(ref _requests);
                    await client.SendAsync(reply, SocketFlags.None, ct).ConfigureAwait(false);
                }
            }
        }
        catch (Exception) when (ct.IsCancellationRequested)
        {
        }
        catch (SocketException)
        {
            // client reset or aborted: fine
        }
        catch (ObjectDisposedException)
        {
        }
        finally
        {
            _connections.TryRemove(client, out _);
            client.Dispose();
        }
    }

    private async Task UdpLoopAsync()
    {
        CancellationToken ct = _cts.Token;
        byte[] buffer = new byte[65536];
        EndPoint any = new IPEndPoint(_socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        try
        {
            while (!ct.IsCancellationRequested)
            {
                SocketReceiveFromResult r;
                try
                {
                    r = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, any, ct).ConfigureAwait(false);
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionRefused or SocketError.HostUnreachable or SocketError.NetworkUnreachable)
                {
                    continue; // ICMP errors from earlier replies
                }
                var sender = (IPEndPoint)r.RemoteEndPoint;
                _seen.Enqueue(sender);
                string payload = Encoding.UTF8.GetString(buffer, 0, r.ReceivedBytes);
                byte[] reply = Encoding.UTF8.GetBytes($"{Identity} {payload}");
                Interlocked.Increment(ref _requests);
                try
                {
                    await _socket.SendToAsync(reply, SocketFlags.None, sender, ct).ConfigureAwait(false);
                }
                catch (SocketException)
                {
                    // unreachable sender: keep serving
                }
            }
        }
        catch (Exception) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            Fault = e;
        }
    }

    /// <summary>Stops the server, closing the listening socket and all connections.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>Stops the server, closing the listening socket and all connections.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        _cts.Cancel();
        _socket.Dispose();
        foreach (Socket c in _connections.Keys)
        {
            c.Dispose();
        }
        try
        {
            await _loop.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }
        _cts.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Protocol} echo '{Identity}' on {LocalEndPoint} in {Ns.Name}";
}
