using System.Runtime.CompilerServices;

namespace LibBpf.Net;

/// <summary>
/// Typed access to a (non per-CPU) map whose key and value are the unmanaged structs
/// <typeparamref name="TKey"/> and <typeparamref name="TValue"/>, laid out exactly as in the BPF program.
/// A view over <see cref="Map"/>, which owns the fd. Lookups and updates do not allocate.
/// </summary>
public sealed class BpfMap<TKey, TValue>
    where TKey : unmanaged
    where TValue : unmanaged
{
    private const int DefaultBatchSize = 256;
    private int _batchSupport; // 0 unknown, 1 supported, -1 unsupported

    /// <summary>Creates the view, checking sizeof(TKey) and sizeof(TValue) against the map.</summary>
    /// <exception cref="ArgumentException">Size mismatch, or a per-CPU map (use <see cref="BpfPerCpuMap{TKey, TValue}"/>).</exception>
    public BpfMap(BpfMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        if (map.IsPerCpu)
        {
            throw new ArgumentException($"map '{map.Name}' is a per-CPU map ({map.Type}): use BpfPerCpuMap<{typeof(TKey).Name}, {typeof(TValue).Name}>", nameof(map));
        }
        MapSizes.Check(map, Unsafe.SizeOf<TKey>(), typeof(TKey), Unsafe.SizeOf<TValue>(), typeof(TValue));
        Map = map;
    }

    /// <summary>The underlying map.</summary>
    public BpfMap Map { get; }

    /// <summary>Looks <paramref name="key"/> up (<c>bpf_map_lookup_elem</c>).</summary>
    /// <returns>False when the key does not exist.</returns>
    public unsafe bool TryLookup(in TKey key, out TValue value)
    {
        value = default;
        fixed (TKey* k = &key)
        fixed (TValue* v = &value)
        {
            return Interop.LibBpf.MapLookupElem(Map.Fd, k, v, Map.Name);
        }
    }

    /// <summary>Creates or updates an element (<c>bpf_map_update_elem</c>).</summary>
    /// <exception cref="BpfException">E.g. E2BIG when the map is full, EEXIST/ENOENT with NoExist/Exist.</exception>
    public unsafe void Update(in TKey key, in TValue value, BpfMapUpdateFlags flags = BpfMapUpdateFlags.Any)
    {
        fixed (TKey* k = &key)
        fixed (TValue* v = &value)
        {
            Interop.LibBpf.MapUpdateElem(Map.Fd, k, v, (ulong)flags, Map.Name);
        }
    }

    /// <summary>Deletes a key (<c>bpf_map_delete_elem</c>).</summary>
    /// <returns>False when the key did not exist.</returns>
    public unsafe bool Delete(in TKey key)
    {
        fixed (TKey* k = &key)
        {
            return Interop.LibBpf.MapDeleteElem(Map.Fd, k, Map.Name);
        }
    }

    /// <summary>Enumerates the keys with <c>bpf_map_get_next_key</c> (lazily, from the live map).</summary>
    public IEnumerable<TKey> Keys() => MapKeys<TKey>.Enumerate(Map);

    /// <summary>
    /// Enumerates the entries: with <c>bpf_map_lookup_batch</c> when the map supports it (hash, LRU and array
    /// maps), else key by key, skipping keys deleted between the key walk and their lookup.
    /// </summary>
    public IEnumerable<KeyValuePair<TKey, TValue>> Entries() =>
        Volatile.Read(ref _batchSupport) >= 0 ? EntriesBatched() : EntriesByKey();

    /// <summary>
    /// Reads the next batch of entries (<c>bpf_map_lookup_batch</c>) into <paramref name="keys"/> and
    /// <paramref name="values"/>, continuing from <paramref name="cursor"/>. Returns the number of entries
    /// read; 0 with <see cref="BpfMapBatchCursor.IsComplete"/> set at the end.
    /// </summary>
    /// <exception cref="BpfException">EINVAL/ENOTSUPP when the map type has no batch support; ENOSPC when a
    /// hash bucket holds more entries than the buffers.</exception>
    public unsafe int LookupBatch(BpfMapBatchCursor cursor, Span<TKey> keys, Span<TValue> values)
    {
        int rc = TryLookupBatch(cursor, keys, values, out int count);
        if (rc < 0)
        {
            throw new BpfException(-rc, "bpf_map_lookup_batch", "map", Map.Name);
        }
        return count;
    }

    /// <summary>Creates or updates all elements in one call (<c>bpf_map_update_batch</c>).</summary>
    /// <exception cref="BpfException">The message tells how many elements were updated before the failure.</exception>
    public unsafe void UpdateBatch(ReadOnlySpan<TKey> keys, ReadOnlySpan<TValue> values, BpfMapUpdateFlags flags = BpfMapUpdateFlags.Any)
    {
        if (keys.Length != values.Length)
        {
            throw new ArgumentException($"{keys.Length} keys but {values.Length} values", nameof(values));
        }
        if (keys.IsEmpty)
        {
            return;
        }
        uint count = (uint)keys.Length;
        int rc;
        fixed (TKey* k = keys)
        fixed (TValue* v = values)
        {
            rc = Interop.LibBpf.MapUpdateBatch(Map.Fd, k, v, ref count, (ulong)flags);
        }
        if (rc < 0)
        {
            throw new BpfException(-rc, "bpf_map_update_batch", "map", Map.Name, detail: $"{count} of {keys.Length} elements updated");
        }
    }

    /// <summary>Deletes the given keys (<c>bpf_map_delete_batch</c>), skipping keys that do not exist.</summary>
    /// <returns>The number of keys deleted.</returns>
    public unsafe int DeleteBatch(ReadOnlySpan<TKey> keys)
    {
        int deleted = 0;
        while (!keys.IsEmpty)
        {
            uint count = (uint)keys.Length;
            int rc;
            fixed (TKey* k = keys)
            {
                rc = Interop.LibBpf.MapDeleteBatch(Map.Fd, k, ref count);
            }
            count = Math.Min(count, (uint)keys.Length);
            deleted += (int)count;
            if (rc == -Interop.ENOENT && count < keys.Length)
            {
                keys = keys[((int)count + 1)..]; // the kernel stops at the first missing key: skip it
                continue;
            }
            if (rc < 0)
            {
                throw new BpfException(-rc, "bpf_map_delete_batch", "map", Map.Name, detail: $"{deleted} keys deleted");
            }
            break;
        }
        return deleted;
    }

    /// <inheritdoc />
    public override string ToString() => Map.ToString();

    /// <summary>Returns 0 or -errno; treats the end of the map (-ENOENT) as success.</summary>
    private unsafe int TryLookupBatch(BpfMapBatchCursor cursor, Span<TKey> keys, Span<TValue> values, out int count)
    {
        ArgumentNullException.ThrowIfNull(cursor);
        count = 0;
        int capacity = Math.Min(keys.Length, values.Length);
        if (cursor.IsComplete || capacity == 0)
        {
            return 0;
        }
        byte[] token = cursor.GetToken((int)Map.KeySize);
        uint n = (uint)capacity;
        int rc;
        fixed (byte* t = token)
        fixed (TKey* k = keys)
        fixed (TValue* v = values)
        {
            rc = Interop.LibBpf.MapLookupBatch(Map.Fd, cursor.Started ? t : null, t, k, v, ref n);
        }
        if (rc == -Interop.ENOENT)
        {
            cursor.IsComplete = true;
            rc = 0;
        }
        else if (rc < 0)
        {
            return rc;
        }
        cursor.Started = true;
        count = (int)Math.Min(n, (uint)capacity);
        return rc;
    }

    private IEnumerable<KeyValuePair<TKey, TValue>> EntriesBatched()
    {
        int size = (int)Math.Clamp(Map.MaxEntries, 1, DefaultBatchSize);
        var keys = new TKey[size];
        var values = new TValue[size];
        var cursor = new BpfMapBatchCursor();
        while (!cursor.IsComplete)
        {
            int rc = TryLookupBatch(cursor, keys, values, out int count);
            if (rc is -Interop.EINVAL or -Interop.ENOTSUPP or -Interop.EOPNOTSUPP && !cursor.Started)
            {
                Volatile.Write(ref _batchSupport, -1);
                break;
            }
            if (rc == -Interop.ENOSPC && size < Map.MaxEntries)
            {
                // A hash bucket has more entries than the buffers: grow and retry from the same position.
                size = (int)Math.Min((long)size * 2, Map.MaxEntries);
                keys = new TKey[size];
                values = new TValue[size];
                continue;
            }
            if (rc < 0)
            {
                throw new BpfException(-rc, "bpf_map_lookup_batch", "map", Map.Name);
            }
            Volatile.Write(ref _batchSupport, 1);
            for (int i = 0; i < count; i++)
            {
                yield return new KeyValuePair<TKey, TValue>(keys[i], values[i]);
            }
        }
        if (Volatile.Read(ref _batchSupport) < 0)
        {
            foreach (KeyValuePair<TKey, TValue> entry in EntriesByKey())
            {
                yield return entry;
            }
        }
    }

    private IEnumerable<KeyValuePair<TKey, TValue>> EntriesByKey()
    {
        foreach (TKey key in Keys())
        {
            if (TryLookup(key, out TValue value))
            {
                yield return new KeyValuePair<TKey, TValue>(key, value);
            }
        }
    }
}

/// <summary>Position of a <see cref="BpfMap{TKey, TValue}.LookupBatch"/> walk (an opaque kernel token).</summary>
public sealed class BpfMapBatchCursor
{
    private byte[]? _token;

    /// <summary>True once the whole map has been read.</summary>
    public bool IsComplete { get; internal set; }

    internal bool Started { get; set; }

    /// <summary>Restarts from the beginning of the map.</summary>
    public void Reset()
    {
        IsComplete = false;
        Started = false;
    }

    // Hash maps use a 4-byte bucket index, array maps a key.
    internal byte[] GetToken(int keySize) =>
        _token is { } t && t.Length >= keySize ? t : _token = new byte[Math.Max(keySize, 8)];
}

/// <summary>Key enumeration shared by the typed views.</summary>
internal static class MapKeys<TKey>
    where TKey : unmanaged
{
    internal static IEnumerable<TKey> Enumerate(BpfMap map)
    {
        TKey key = default;
        bool first = true;
        while (Next(map, first, ref key))
        {
            first = false;
            yield return key;
        }
    }

    private static unsafe bool Next(BpfMap map, bool first, ref TKey key)
    {
        TKey next = default;
        bool found;
        fixed (TKey* k = &key)
        {
            found = Interop.LibBpf.MapGetNextKey(map.Fd, first ? null : k, &next, map.Name);
        }
        if (found)
        {
            key = next;
        }
        return found;
    }
}

/// <summary>sizeof validation shared by the typed views.</summary>
internal static class MapSizes
{
    internal static void Check(BpfMap map, int keySize, Type keyType, int valueSize, Type valueType)
    {
        if (keySize != map.KeySize)
        {
            throw new ArgumentException(
                $"map '{map.Name}' has {map.KeySize}-byte keys but {keyType.Name} is {keySize} bytes (check the struct layout and padding against the BPF program)", "TKey");
        }
        if (valueSize != map.ValueSize)
        {
            throw new ArgumentException(
                $"map '{map.Name}' has {map.ValueSize}-byte values but {valueType.Name} is {valueSize} bytes (check the struct layout and padding against the BPF program)", "TValue");
        }
    }
}
