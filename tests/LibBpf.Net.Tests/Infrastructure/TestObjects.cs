using System.Runtime.InteropServices;

namespace LibBpf.Net.Tests;

/// <summary>The BPF objects compiled from bpf/*.bpf.c by the project build, and their C types.</summary>
internal static class TestObjects
{
    public const uint TcActOk = 0;
    public const uint TcActShot = 2;
    public const uint XdpPass = 2;

    public static string ProgsPath => Path.Combine(AppContext.BaseDirectory, "test_progs.bpf.o");

    public static string BadProgPath => Path.Combine(AppContext.BaseDirectory, "bad_prog.bpf.o");

    /// <summary>Opens test_progs; without a pin root, pinned_hash is not pinned (libbpf would use /sys/fs/bpf).</summary>
    public static BpfObject OpenProgs(string? pinRoot = null)
    {
        BpfObject obj = BpfObject.Open(ProgsPath, new BpfObjectOpenOptions { PinRootPath = pinRoot });
        if (pinRoot is null)
        {
            obj.GetMap("pinned_hash").SetPinPath(null);
        }
        return obj;
    }

    public static BpfObject LoadProgs(string? pinRoot = null)
    {
        BpfObject obj = OpenProgs(pinRoot);
        try
        {
            obj.Load();
            return obj;
        }
        catch
        {
            obj.Dispose();
            throw;
        }
    }

    /// <summary>An Ethernet frame of <paramref name="length"/> bytes: broadcast dst, fixed src, ethertype 0x88b5 (local experimental), counting payload.</summary>
    public static byte[] Frame(int length = 64)
    {
        var frame = new byte[length];
        for (int i = 0; i < length; i++)
        {
            frame[i] = (byte)i;
        }
        frame.AsSpan(0, 6).Fill(0xff);
        frame[6] = 0x02;
        frame[12] = 0x88;
        frame[13] = 0xb5;
        return frame;
    }
}

[StructLayout(LayoutKind.Sequential)]
internal struct TestKey
{
    public uint Addr;
    public ushort Port;
    public byte Proto;
    public byte Pad;

    public TestKey(uint addr, ushort port, byte proto)
    {
        Addr = addr;
        Port = port;
        Proto = proto;
    }
}

[StructLayout(LayoutKind.Sequential)]
internal struct TestValue
{
    public ulong Packets;
    public uint Backend;
    public uint Flags;

    public TestValue(ulong packets, uint backend, uint flags)
    {
        Packets = packets;
        Backend = backend;
        Flags = flags;
    }
}

/// <summary>12 bytes: the kernel's per-CPU slots are 16.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct PcpuValue
{
    public uint Packets;
    public uint Bytes;
    public uint LastLen;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct TestEvent
{
    public uint Len;
    public uint Ifindex;
    public fixed byte Head[8];
}
