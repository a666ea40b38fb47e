using System.Net;
using System.Net.Http;
using System.Net.Sockets;
using k8s;

namespace EbpfProxy.Testing.KubeApi;

/// <summary>
/// Makes in-process HTTP clients (including KubernetesClient) connect from inside a network namespace: every
/// connection's socket is created by <see cref="NetNs.Run{T}"/> and then used asynchronously from anywhere.
/// </summary>
/// <remarks>Hosts must be IP literals (no name resolution is done inside the namespace).</remarks>
public static class NetNsHttp
{
    /// <summary>A <see cref="SocketsHttpHandler.ConnectCallback"/> that connects from inside <paramref name="ns"/>.</summary>
    public static Func<SocketsHttpConnectionContext, CancellationToken, ValueTask<Stream>> ConnectCallback(NetNs ns)
    {
        ArgumentNullException.ThrowIfNull(ns);
        return async (context, cancellationToken) =>
        {
            if (!IPAddress.TryParse(context.DnsEndPoint.Host.Trim('[', ']'), out IPAddress? address))
            {
                throw new HttpRequestException($"NetNsHttp needs an IP literal host, got '{context.DnsEndPoint.Host}'.");
            }
            Socket socket = ns.Run(() => new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true });
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, context.DnsEndPoint.Port), cancellationToken).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        };
    }

    /// <summary>A <see cref="SocketsHttpHandler"/> whose connections are made from inside <paramref name="ns"/>.</summary>
    public static SocketsHttpHandler CreateHandler(NetNs ns) => new() { ConnectCallback = ConnectCallback(ns) };

    /// <summary>
    /// Makes a <see cref="KubernetesClientConfiguration"/> connect from inside <paramref name="ns"/> (through
    /// <see cref="KubernetesClientConfiguration.FirstMessageHandlerSetup"/>); returns it for chaining.
    /// </summary>
    public static KubernetesClientConfiguration UseNetNs(this KubernetesClientConfiguration configuration, NetNs ns)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var callback = ConnectCallback(ns);
        configuration.FirstMessageHandlerSetup = handler =>
        {
            if (handler is not SocketsHttpHandler sockets)
            {
                throw new NotSupportedException($"KubernetesClient's primary handler is {handler.GetType()}, not SocketsHttpHandler.");
            }
            sockets.ConnectCallback = callback;
        };
        return configuration;
    }
}
