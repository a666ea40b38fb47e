using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EbpfProxy.Testing;

/// <summary>
/// UDP client probe run from inside a namespace. Uses an <em>unconnected</em> socket and
/// <c>recvfrom</c>, so a reply is accepted from any source and the caller can check that it came from the
/// address it sent to (e.g. the service VIP after reverse NAT), which a connected socket would hide by
/// silently dropping it.
/// </summary>
public static class UdpProbe
{
    /// <summary>
    /// Sends <paramref name="payload"/> from <paramref name="ns"/> to <paramref name="dst"/>:<paramref name="port"/>
    /// and waits for one datagram.
    /// </summary>
    /// <returns>The reply text and the endpoint it came from.</returns>
    /// <remarks><paramref name="localPort"/>: the source port (0: any); requests from one port are one flow to the datapath.</remarks>
    /// <exception cref="ProbeFailedException">No reply within the timeout (<see cref="ProbeFailure.Timeout"/>), or a send error.</exception>
    public static async Task<(string Reply, IPEndPoint From)> RequestAsync(
        NetNs ns, IPAddress dst, int port, string payload, TimeSpan timeout, CancellationToken cancellationToken = default, int localPort = 0)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentNullException.ThrowIfNull(dst);
        ArgumentNullException.ThrowIfNull(payload);
        var remote = new IPEndPoint(dst, port);
        IPAddress any = dst.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any;
        using Socket socket = ns.Run(() =>
        {
            var s = new Socket(dst.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            if (localPort != 0)
                s.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            s.Bind(new IPEndPoint(any, localPort));
            return s;
        });

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        byte[] buffer = new byte[65536];
        try
        {
            await socket.SendToAsync(Encoding.UTF8.GetBytes(payload), SocketFlags.None, remote, cts.Token).ConfigureAwait(false);
            SocketReceiveFromResult r = await socket.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(any, 0), cts.Token).ConfigureAwait(false);
            return (Encoding.UTF8.GetString(buffer, 0, r.ReceivedBytes), (IPEndPoint)r.RemoteEndPoint);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ProbeFailedException(ProbeFailure.Timeout, remote, $"no UDP reply to {ns.Name} within {timeout.TotalMilliseconds:0} ms", e);
        }
        catch (SocketException e)
        {
            throw new ProbeFailedException(ProbeFailedException.Classify(e.SocketErrorCode), remote, $"UDP request from {ns.Name} failed: {e.SocketErrorCode} ({e.Message})", e);
        }
    }
}
