using System.Buffers.Binary;
using System.Net;
using EbpfProxy.Core.Model;

namespace EbpfProxy.Datapath.Tracing;

/// <summary>
/// Builds the synthetic frame `ebpf-proxy trace` feeds to a program: Ethernet + IPv4 + a TCP SYN
/// or a UDP datagram, with valid checksums, as a pod would send it.
/// </summary>
public static class TracePacket
{
    public static byte[] Build(IPAddress src, ushort sport, IPAddress dst, ushort dport, L4Protocol proto)
    {
        int l4Len = proto == L4Protocol.Udp ? 8 : 20;
        var f = new byte[14 + 20 + l4Len];
        f[0] = 0x02; f[5] = 0x02; // destination MAC 02:00:00:00:00:02
        f[6] = 0x02; f[11] = 0x01; // source MAC 02:00:00:00:00:01
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), 0x0800);
        var ip = f.AsSpan(14, 20);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + l4Len));
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], 0x4000); // DF
        ip[8] = 64;
        ip[9] = (byte)proto;
        src.TryWriteBytes(ip[12..16], out _);
        dst.TryWriteBytes(ip[16..20], out _);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum(ip, 0));

        var l4 = f.AsSpan(34, l4Len);
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4[2..], dport);
        int csumOffset;
        if (proto == L4Protocol.Udp)
        {
            BinaryPrimitives.WriteUInt16BigEndian(l4[4..], (ushort)l4Len);
            csumOffset = 6;
        }
        else
        {
            BinaryPrimitives.WriteUInt32BigEndian(l4[4..], 1); // sequence number
            l4[12] = 5 << 4; // data offset
            l4[13] = 0x02; // SYN
            BinaryPrimitives.WriteUInt16BigEndian(l4[14..], 65535);
            csumOffset = 16;
        }
        // Pseudo-header: addresses, protocol, L4 length.
        uint pseudo = Sum(ip[12..20]) + (uint)proto + (uint)l4Len;
        BinaryPrimitives.WriteUInt16BigEndian(l4[csumOffset..], Checksum(l4, pseudo));
        return f;
    }

    private static uint Sum(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        for (int i = 0; i + 1 < data.Length; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if ((data.Length & 1) != 0)
            sum += (uint)data[^1] << 8;
        return sum;
    }

    private static ushort Checksum(ReadOnlySpan<byte> data, uint initial)
    {
        uint sum = initial + Sum(data);
        while ((sum >> 16) != 0)
            sum = (sum & 0xffff) + (sum >> 16);
        var c = (ushort)~sum;
        return c == 0 ? (ushort)0xffff : c;
    }
}
