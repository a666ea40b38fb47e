using System.Runtime.CompilerServices;
using EbpfProxy.Datapath.Maps;

namespace EbpfProxy.Datapath;

/// <summary>
/// Default sizes of the maps that hold one entry per connection (service conntrack, masquerade,
/// NetworkPolicy conntrack, host-socket reverse translation, session affinity), from the node's
/// memory, the way Cilium sizes its conntrack, NAT and neighbour maps (pkg/maps/mapsize,
/// <c>--bpf-map-dynamic-size-ratio</c>, default 0.0025): a share of the node's total memory is
/// spread over those maps in proportion to their fixed defaults' footprint (entries x (key +
/// value)), each clamped to a minimum and to 16Mi entries. So a 4 GiB node gets about half the
/// fixed defaults (10 MiB of entries) and a 16 GiB node about twice them. A size given on the
/// command line wins over the computed one. The service, backend, frontend-id, source-range,
/// policy and event maps hold configuration, not connections: their defaults are fixed (Cilium
/// does the same with --bpf-lb-map-max and --bpf-policy-map-max).
/// </summary>
public static class MapSizing
{
    /// <summary>Cilium's default share of the node's memory for the connection maps.</summary>
    public const double DefaultRatio = 0.0025;

    /// <summary>No map is sized above this (Cilium's LimitTableMax, 16Mi entries).</summary>
    public const uint MaxEntries = 1 << 24;

    /// <summary>One connection map: its fixed default (the share's unit), its floor, and where its size lives in the options.</summary>
    public sealed record Dynamic(string Map, uint Default, uint Minimum, int EntryBytes, Func<DatapathOptions, uint> Get, Action<DatapathOptions, uint> Set);

    /// <summary>The maps sized from memory. Floors as Cilium's (128Ki conntrack and NAT, 64Ki the rest) where one exists.</summary>
    public static IReadOnlyList<Dynamic> DynamicMaps { get; } =
    [
        new(LbMaps.Conntrack, 524288, 131072, Unsafe.SizeOf<Ct4Key>() + Unsafe.SizeOf<CtEntry>(), o => o.ConntrackMax, (o, v) => o.ConntrackMax = v),
        new(LbMaps.SnatMap, 262144, 131072, Unsafe.SizeOf<Ct4Key>() + Unsafe.SizeOf<Snat4Entry>(), o => o.MasqueradeMax, (o, v) => o.MasqueradeMax = v),
        new(PolicyMaps.ConntrackMap, 262144, 65536, Unsafe.SizeOf<Ct4Key>() + Unsafe.SizeOf<PolCtEntry>(), o => o.PolicyConntrackMax, (o, v) => o.PolicyConntrackMax = v),
        new(LbMaps.SockRevNatMap, 65536, 65536, Unsafe.SizeOf<Lb4SockKey>() + Unsafe.SizeOf<Lb4SockValue>(), o => o.SockRevNatMax, (o, v) => o.SockRevNatMax = v),
        new(LbMaps.AffinityMap, 65536, 16384, Unsafe.SizeOf<Lb4AffinityKey>() + Unsafe.SizeOf<LbAffinityValue>(), o => o.AffinityMax, (o, v) => o.AffinityMax = v),
    ];

    /// <summary>
    /// Sets every connection map whose size is 0 in <paramref name="options"/> (not given) from
    /// <paramref name="totalMemoryBytes"/> x <paramref name="ratio"/>; a ratio of 0 keeps the fixed
    /// defaults. Returns what was computed, by map, for the start-up log.
    /// </summary>
    public static IReadOnlyList<(string Map, uint Entries)> Apply(DatapathOptions options, ulong totalMemoryBytes, double ratio)
    {
        if (ratio is < 0 or > 1 || double.IsNaN(ratio))
            throw new ArgumentException($"--map-dynamic-size-ratio {ratio} must be within 0..1 (0: fixed defaults)");
        double defaultBytes = DynamicMaps.Sum(m => (double)m.Default * m.EntryBytes);
        double available = totalMemoryBytes * ratio;
        var computed = new List<(string, uint)>();
        foreach (var m in DynamicMaps)
        {
            if (m.Get(options) != 0)
                continue;
            uint entries = ratio == 0 || totalMemoryBytes == 0
                ? m.Default
                : (uint)Math.Clamp(m.Default * available / defaultBytes, m.Minimum, MaxEntries);
            m.Set(options, entries);
            computed.Add((m.Map, entries));
        }
        return computed;
    }

    /// <summary>MemTotal of /proc/meminfo in bytes (0 when unreadable).</summary>
    public static ulong TotalMemory(string meminfo = "/proc/meminfo")
    {
        try
        {
            foreach (var line in File.ReadLines(meminfo))
            {
                if (!line.StartsWith("MemTotal:", StringComparison.Ordinal))
                    continue;
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return parts.Length >= 2 && ulong.TryParse(parts[1], out var kb) ? kb * 1024 : 0;
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return 0;
    }
}
