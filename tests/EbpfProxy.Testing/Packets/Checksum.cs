using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace EbpfProxy.Testing.Packets;

/// <summary>
/// The Internet checksum (RFC 1071): the 16-bit ones' complement of the ones' complement sum of the data
/// taken as big-endian 16-bit words (an odd trailing byte is padded with zero).
/// </summary>
/// <remarks>
/// <para>To verify, sum everything <em>including</em> the checksum field: the data is valid when
/// <see cref="Fold"/> of the sum is <c>0xFFFF</c> (see <see cref="IsValid"/>).</para>
/// <para>When chaining <see cref="Add(ReadOnlySpan{byte}, ulong)"/> over several spans, all but the last must have even length.</para>
/// </remarks>
public static class Checksum
{
    /// <summary>Adds the big-endian 16-bit words of <paramref name="data"/> to <paramref name="sum"/> (no folding).</summary>
    public static ulong Add(ReadOnlySpan<byte> data, ulong sum = 0)
    {
        int i = 0;
        for (; i + 1 < data.Length; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        }
        if (i < data.Length)
        {
            sum += (ulong)data[i] << 8;
        }
        return sum;
    }

    /// <summary>Adds one 16-bit value to <paramref name="sum"/>.</summary>
    public static ulong Add(ushort value, ulong sum) => sum + value;

    /// <summary>Folds the carries of a running sum into 16 bits (the ones' complement sum, not inverted).</summary>
    public static ushort Fold(ulong sum)
    {
        while (sum >> 16 != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        return (ushort)sum;
    }

    /// <summary>Folds and inverts a running sum: the value to store in a checksum field.</summary>
    public static ushort Finish(ulong sum) => (ushort)~Fold(sum);

    /// <summary>The RFC 1071 checksum of <paramref name="data"/> (whose checksum field, if any, must be zero).</summary>
    public static ushort Compute(ReadOnlySpan<byte> data) => Finish(Add(data));

    /// <summary>True when <paramref name="data"/>, checksum field included, sums to <c>0xFFFF</c>.</summary>
    public static bool IsValid(ReadOnlySpan<byte> data) => Fold(Add(data)) == 0xFFFF;

    /// <summary>
    /// The (unfolded) sum of the TCP/UDP pseudo-header: source and destination address, protocol and L4
    /// length. IPv4 (RFC 793/768) and IPv6 (RFC 8200 §8.1) addresses are supported.
    /// </summary>
    public static ulong PseudoHeaderSum(IPAddress source, IPAddress destination, byte protocol, int l4Length)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        if (source.AddressFamily != destination.AddressFamily)
        {
            throw new ArgumentException("Source and destination must be of the same address family.");
        }
        Span<byte> buffer = stackalloc byte[16];
        ulong sum = 0;
        source.TryWriteBytes(buffer, out int n);
        sum = Add(buffer[..n], sum);
        destination.TryWriteBytes(buffer, out n);
        sum = Add(buffer[..n], sum);
        sum += protocol;
        if (source.AddressFamily == AddressFamily.InterNetworkV6)
        {
            sum += (uint)l4Length >> 16;
        }
        sum += (uint)l4Length & 0xFFFF;
        return sum;
    }

    /// <summary>
    /// The TCP/UDP checksum of <paramref name="segment"/> (L4 header with a zero checksum field, plus payload)
    /// including the pseudo-header. For UDP a result of 0 must be sent as <c>0xFFFF</c>
    /// (<see cref="PacketBuilder"/> does that).
    /// </summary>
    public static ushort ComputeL4(IPAddress source, IPAddress destination, byte protocol, ReadOnlySpan<byte> segment) =>
        Finish(Add(segment, PseudoHeaderSum(source, destination, protocol, segment.Length)));

    /// <summary>True when the TCP/UDP <paramref name="segment"/> (checksum field included) is valid for the pseudo-header.</summary>
    public static bool IsL4Valid(IPAddress source, IPAddress destination, byte protocol, ReadOnlySpan<byte> segment) =>
        Fold(Add(segment, PseudoHeaderSum(source, destination, protocol, segment.Length))) == 0xFFFF;
}
