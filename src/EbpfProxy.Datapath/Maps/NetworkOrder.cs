using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace EbpfProxy.Datapath.Maps;

/// <summary>A 16-bit value stored in network byte order (C: __be16). Distinct from ushort on purpose.</summary>
public readonly record struct Be16
{
    private readonly ushort _raw;

    private Be16(ushort raw) => _raw = raw;

    public static Be16 FromHost(ushort value) =>
        new(BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(value) : value);

    /// <summary>The value as it lies in memory, already in network order (a field that held a __be16 under another type).</summary>
    public static Be16 FromRaw(ushort raw) => new(raw);

    public ushort ToHost() => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(_raw) : _raw;

    public override string ToString() => ToHost().ToString();
}

/// <summary>An IPv4 address as the kernel stores it (C: __be32): the four bytes in wire order.</summary>
public readonly record struct Be32Address
{
    private readonly uint _raw;

    private Be32Address(uint raw) => _raw = raw;

    public static Be32Address FromAddress(IPAddress address)
    {
        if (address.AddressFamily != AddressFamily.InterNetwork)
            throw new ArgumentException($"'{address}' is not an IPv4 address", nameof(address));
        Span<byte> b = stackalloc byte[4];
        address.TryWriteBytes(b, out _);
        return new Be32Address(BitConverter.ToUInt32(b));
    }

    /// <summary>The four bytes as they lie in memory, already in wire order (a field that held a __be32 under another type).</summary>
    public static Be32Address FromRaw(uint raw) => new(raw);

    public IPAddress ToAddress()
    {
        Span<byte> b = stackalloc byte[4];
        BitConverter.TryWriteBytes(b, _raw);
        return new IPAddress(b);
    }

    public override string ToString() => ToAddress().ToString();
}
