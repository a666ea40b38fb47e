using LibBpf.Net;

namespace EbpfProxy.Datapath.Maps;

/// <summary>How full one pinned map is: entries in use (null for arrays and ring buffers, whose size is fixed) and its capacity.</summary>
public sealed record MapFill(string Name, BpfMapType Type, long? Entries, uint MaxEntries)
{
    /// <summary>Entries / capacity, 0..1; null when not counted.</summary>
    public double? Use => Entries is { } n && MaxEntries > 0 ? (double)n / MaxEntries : null;

    /// <summary>LRU maps evict their oldest entries when full (conntrack, fragments); others refuse writes.</summary>
    public bool Evicts => Type is BpfMapType.LruHash or BpfMapType.LruPerCpuHash;
}

/// <summary>
/// Map pressure for `ebpf-proxy maps`: every map pinned in the pin folder, with the number of
/// entries (walked key by key, so it costs one syscall per entry; meant for operators, not for
/// the sync loop) against its capacity. A conntrack map near its size means new flows evict old
/// ones (ct4: a service flow loses its backend; pol_ct4: an admitted connection's replies are
/// judged again).
/// </summary>
public static class MapPressure
{
    public static IReadOnlyList<MapFill> Read(string pinPath)
    {
        var result = new List<MapFill>();
        foreach (var path in Directory.EnumerateFiles(pinPath).Order(StringComparer.Ordinal))
        {
            BpfMap map;
            try
            {
                map = BpfMap.OpenPinned(path);
            }
            catch (BpfException)
            {
                continue; // not a map
            }
            using (map)
                result.Add(new MapFill(Path.GetFileName(path), map.Type, Count(map), map.MaxEntries));
        }
        return result;
    }

    private static long? Count(BpfMap map)
    {
        if (map.Type is not (BpfMapType.Hash or BpfMapType.LruHash or BpfMapType.PerCpuHash or BpfMapType.LruPerCpuHash or BpfMapType.LpmTrie))
            return null;
        Span<byte> key = new byte[map.KeySize];
        Span<byte> next = new byte[map.KeySize];
        long n = 0;
        bool first = true;
        while (first ? map.TryGetNextKey(default, next) : map.TryGetNextKey(key, next))
        {
            first = false;
            n++;
            next.CopyTo(key);
        }
        return n;
    }
}
