using System.Net;
using System.Net.Sockets;

namespace EbpfProxy.Testing;

/// <summary>Why a <see cref="TcpProbe"/> or <see cref="UdpProbe"/> request failed.</summary>
public enum ProbeFailure
{
    /// <summary>The peer answered the SYN with a RST (ECONNREFUSED).</summary>
    Refused,

    /// <summary>No answer (connect or reply) within the timeout.</summary>
    Timeout,

    /// <summary>The connection was reset (ECONNRESET / ECONNABORTED) after it was established.</summary>
    Reset,

    /// <summary>The peer closed the connection (EOF) before a full reply line arrived.</summary>
    Closed,

    /// <summary>No route / host unreachable (EHOSTUNREACH, ENETUNREACH).</summary>
    Unreachable,

    /// <summary>Any other socket error.</summary>
    Other,
}

/// <summary>A probe request failed; <see cref="Failure"/> tells how.</summary>
public sealed class ProbeFailedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ProbeFailedException(ProbeFailure failure, EndPoint? destination, string message, Exception? inner = null)
        : base($"{failure}: {message}" + (destination is null ? "" : $" (destination {destination})"), inner)
    {
        Failure = failure;
        Destination = destination;
    }

    /// <summary>The kind of failure.</summary>
    public ProbeFailure Failure { get; }

    /// <summary>The probed endpoint.</summary>
    public EndPoint? Destination { get; }

    /// <summary>The socket error behind the failure, if any.</summary>
    public SocketError? SocketError => (InnerException as SocketException)?.SocketErrorCode;

    internal static ProbeFailure Classify(SocketError error) => error switch
    {
        System.Net.Sockets.SocketError.ConnectionRefused => ProbeFailure.Refused,
        System.Net.Sockets.SocketError.ConnectionReset or System.Net.Sockets.SocketError.ConnectionAborted => ProbeFailure.Reset,
        System.Net.Sockets.SocketError.TimedOut => ProbeFailure.Timeout,
        System.Net.Sockets.SocketError.HostUnreachable or System.Net.Sockets.SocketError.NetworkUnreachable
            or System.Net.Sockets.SocketError.HostDown or System.Net.Sockets.SocketError.NetworkDown => ProbeFailure.Unreachable,
        _ => ProbeFailure.Other,
    };
}
