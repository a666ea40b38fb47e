using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace EbpfProxy.Datapath.Sync;

/// <summary>
/// The IPv4 addresses of this network namespace's interfaces: an input of the sync (the node's
/// identity for NetworkPolicy, --nodeport-addresses, the masquerade fallback). <see cref="Changed"/>
/// fires when they may have changed; the sync then reads them again.
/// </summary>
public interface ILocalAddresses
{
    /// <summary>The current addresses (loopback excluded), in a stable order.</summary>
    IReadOnlyList<IPAddress> Read();

    event Action? Changed;
}

/// <summary>The addresses as .NET lists them, with no change events (the sync re-reads them on full passes).</summary>
public sealed class InterfaceAddresses : ILocalAddresses
{
    public IReadOnlyList<IPAddress> Read() =>
        [.. NetworkInterface.GetAllNetworkInterfaces()
            .SelectMany(i => i.GetIPProperties().UnicastAddresses)
            .Select(u => u.Address)
            .Where(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a))];

    public event Action? Changed
    {
        add { }
        remove { }
    }
}
