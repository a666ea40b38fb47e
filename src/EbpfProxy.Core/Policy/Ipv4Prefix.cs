using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace EbpfProxy.Core.Policy;

/// <summary>An IPv4 prefix as numbers (host order, bits beyond the length cleared): what the policy computation works on.</summary>
internal readonly record struct Ipv4Prefix(uint Address, byte Length) : IComparable<Ipv4Prefix>
{
    public static Ipv4Prefix Host(uint address) => new(address, 32);

    public static Ipv4Prefix Of(uint address, int length) => new(address & Mask(length), (byte)length);

    public static uint Mask(int length) => length <= 0 ? 0u : uint.MaxValue << (32 - length);

    /// <summary>Whether <paramref name="other"/> lies entirely inside this prefix.</summary>
    public bool Contains(Ipv4Prefix other) => other.Length >= Length && (other.Address & Mask(Length)) == Address;

    public bool Contains(uint address) => (address & Mask(Length)) == Address;

    public IPNetwork ToNetwork() => new(ToAddress(Address), Length);

    public int CompareTo(Ipv4Prefix other)
    {
        int c = Address.CompareTo(other.Address);
        return c != 0 ? c : Length.CompareTo(other.Length);
    }

    public override string ToString() => $"{ToAddress(Address)}/{Length}";

    public static IPAddress ToAddress(uint address)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, address);
        return new IPAddress(b);
    }

    public static bool TryGetV4(IPAddress address, out uint value)
    {
        if (address.IsIPv4MappedToIPv6)
            address = address.MapToIPv4();
        if (address.AddressFamily != AddressFamily.InterNetwork)
        {
            value = 0;
            return false;
        }
        Span<byte> b = stackalloc byte[4];
        address.TryWriteBytes(b, out _);
        value = BinaryPrimitives.ReadUInt32BigEndian(b);
        return true;
    }

    /// <summary>
    /// Parses "a.b.c.d/n" (host bits beyond the length are cleared, as the API's CIDR parsing
    /// allows them). False for text that is not a CIDR; <paramref name="isV4"/> tells an IPv6
    /// prefix (valid, but outside this IPv4 datapath) from garbage.
    /// </summary>
    public static bool TryParse(string? text, out Ipv4Prefix prefix, out bool isV4)
    {
        prefix = default;
        isV4 = false;
        var t = text?.Trim();
        int slash = t?.IndexOf('/') ?? -1;
        if (t is null || slash <= 0
            || !IPAddress.TryParse(t.AsSpan(0, slash), out var ip)
            || !int.TryParse(t.AsSpan(slash + 1), System.Globalization.NumberStyles.None, null, out int len))
            return false;
        if (ip.AddressFamily == AddressFamily.InterNetworkV6)
            return len <= 128;
        if (ip.AddressFamily != AddressFamily.InterNetwork || len > 32)
            return false;
        isV4 = true;
        TryGetV4(ip, out var a);
        prefix = Of(a, len);
        return true;
    }
}
