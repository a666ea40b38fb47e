using System.Runtime.InteropServices;

namespace LibBpf.Net;

/// <summary>
/// Converts <c>bpf_ktime_get_ns()</c> stamps (CLOCK_MONOTONIC: nanoseconds since boot, not counting
/// suspend) to wall-clock time. The offset between the two clocks is sampled when asked (the wall clock
/// may be stepped by NTP), reading the monotonic clock on both sides of the wall clock and taking the
/// midpoint, so one conversion is off by at most the time of those three reads.
/// </summary>
public static partial class KernelClock
{
    private const int CLOCK_REALTIME = 0, CLOCK_MONOTONIC = 1;

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Sec;
        public long Nsec;
    }

    [LibraryImport(Interop.Libraries.Libc, EntryPoint = "clock_gettime")]
    private static partial int clock_gettime(int clock, out Timespec ts);

    private static long Read(int clock)
    {
        if (clock_gettime(clock, out var ts) != 0)
            throw new InvalidOperationException($"clock_gettime({clock}) failed");
        return ts.Sec * 1_000_000_000 + ts.Nsec;
    }

    /// <summary>The current <c>bpf_ktime_get_ns()</c> value (CLOCK_MONOTONIC).</summary>
    public static ulong NowNs() => (ulong)Read(CLOCK_MONOTONIC);

    /// <summary>Wall clock minus monotonic clock, in nanoseconds, sampled now.</summary>
    public static long WallOffsetNs()
    {
        long before = Read(CLOCK_MONOTONIC);
        long wall = Read(CLOCK_REALTIME);
        long after = Read(CLOCK_MONOTONIC);
        return wall - (before + (after - before) / 2);
    }

    /// <summary>The wall-clock time of a <c>bpf_ktime_get_ns()</c> stamp, with an offset from <see cref="WallOffsetNs"/>.</summary>
    public static DateTimeOffset ToWallClock(ulong ktimeNs, long wallOffsetNs)
    {
        long unixNs = (long)ktimeNs + wallOffsetNs;
        return DateTimeOffset.UnixEpoch.AddTicks(unixNs / 100);
    }

    /// <summary>The wall-clock time of a <c>bpf_ktime_get_ns()</c> stamp, with the offset sampled now.</summary>
    public static DateTimeOffset ToWallClock(ulong ktimeNs) => ToWallClock(ktimeNs, WallOffsetNs());
}
