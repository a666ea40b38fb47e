using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace LibBpf.Net;

/// <summary>
/// Typed access to a per-CPU map (PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH): each key has one
/// <typeparamref name="TValue"/> per possible CPU. The kernel exchanges them as
/// <see cref="Libbpf.NumPossibleCpus"/> slots of sizeof(TValue) rounded up to 8 bytes; this view handles
/// that stride.
/// </summary>
public sealed class BpfPerCpuMap<TKey, TValue>
    where TKey : unmanaged
    where TValue : unmanaged
{
    private const int StackBufferLimit = 1024;
    private readonly int _stride;

    /// <summary>Creates the view, checking sizeof(TKey) and sizeof(TValue) against the map.</summary>
    /// <exception cref="ArgumentException">Size mismatch, or not a per-CPU map.</exception>
    public BpfPerCpuMap(BpfMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        if (!map.IsPerCpu)
        {
            throw new ArgumentException($"map '{map.Name}' is not a per-CPU map ({map.Type}): use BpfMap<{typeof(TKey).Name}, {typeof(TValue).Name}>", nameof(map));
        }
        MapSizes.Check(map, Unsafe.SizeOf<TKey>(), typeof(TKey), Unsafe.SizeOf<TValue>(), typeof(TValue));
        Map = map;
        CpuCount = Libbpf.NumPossibleCpus;
        _stride = (Unsafe.SizeOf<TValue>() + 7) & ~7;
    }

    /// <summary>The underlying map.</summary>
    public BpfMap Map { get; }

    /// <summary>Number of values per key (<see cref="Libbpf.NumPossibleCpus"/>).</summary>
    public int CpuCount { get; }

    /// <summary>Reads every CPU's value of <paramref name="key"/> into <paramref name="values"/> (at least <see cref="CpuCount"/> long).</summary>
    /// <returns>False when the key does not exist.</returns>
    public unsafe bool TryLookup(in TKey key, Span<TValue> values)
    {
        if (values.Length < CpuCount)
        {
            throw new ArgumentException($"map '{Map.Name}' has {CpuCount} per-CPU values, the span holds {values.Length}", nameof(values));
        }
        values = values[..CpuCount];
        if (_stride == Unsafe.SizeOf<TValue>())
        {
            fixed (TKey* k = &key)
            fixed (TValue* v = values)
            {
                return Interop.LibBpf.MapLookupElem(Map.Fd, k, v, Map.Name);
            }
        }

        int size = _stride * CpuCount;
        byte[]? rented = null;
        Span<byte> buffer = size <= StackBufferLimit ? stackalloc byte[StackBufferLimit] : (rented = ArrayPool<byte>.Shared.Rent(size));
        try
        {
            bool found;
            fixed (TKey* k = &key)
            fixed (byte* b = buffer)
            {
                found = Interop.LibBpf.MapLookupElem(Map.Fd, k, b, Map.Name);
            }
            if (found)
            {
                for (int cpu = 0; cpu < values.Length; cpu++)
                {
                    values[cpu] = MemoryMarshal.Read<TValue>(buffer.Slice(cpu * _stride));
                }
            }
            return found;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Returns every CPU's value of <paramref name="key"/>, or null when the key does not exist.</summary>
    public TValue[]? Lookup(in TKey key)
    {
        var values = new TValue[CpuCount];
        return TryLookup(key, values) ? values : null;
    }

    /// <summary>Sets every CPU's value of <paramref name="key"/> (<paramref name="values"/> holds <see cref="CpuCount"/> values).</summary>
    public unsafe void Update(in TKey key, ReadOnlySpan<TValue> values, BpfMapUpdateFlags flags = BpfMapUpdateFlags.Any)
    {
        if (values.Length != CpuCount)
        {
            throw new ArgumentException($"map '{Map.Name}' needs {CpuCount} per-CPU values, got {values.Length}", nameof(values));
        }
        if (_stride == Unsafe.SizeOf<TValue>())
        {
            fixed (TKey* k = &key)
            fixed (TValue* v = values)
            {
                Interop.LibBpf.MapUpdateElem(Map.Fd, k, v, (ulong)flags, Map.Name);
            }
            return;
        }

        int size = _stride * CpuCount;
        byte[]? rented = null;
        Span<byte> buffer = size <= StackBufferLimit ? stackalloc byte[StackBufferLimit] : (rented = ArrayPool<byte>.Shared.Rent(size));
        try
        {
            buffer[..size].Clear();
            for (int cpu = 0; cpu < values.Length; cpu++)
            {
                MemoryMarshal.Write(buffer.Slice(cpu * _stride), in values[cpu]);
            }
            fixed (TKey* k = &key)
            fixed (byte* b = buffer)
            {
                Interop.LibBpf.MapUpdateElem(Map.Fd, k, b, (ulong)flags, Map.Name);
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Deletes a key (not supported by per-CPU arrays: EINVAL).</summary>
    /// <returns>False when the key did not exist.</returns>
    public unsafe bool Delete(in TKey key)
    {
        fixed (TKey* k = &key)
        {
            return Interop.LibBpf.MapDeleteElem(Map.Fd, k, Map.Name);
        }
    }

    /// <summary>Enumerates the keys with <c>bpf_map_get_next_key</c>.</summary>
    public IEnumerable<TKey> Keys() => MapKeys<TKey>.Enumerate(Map);

    /// <summary>Enumerates the entries key by key, skipping keys deleted during the walk.</summary>
    public IEnumerable<KeyValuePair<TKey, TValue[]>> Entries()
    {
        foreach (TKey key in Keys())
        {
            TValue[]? values = Lookup(key);
            if (values is not null)
            {
                yield return new KeyValuePair<TKey, TValue[]>(key, values);
            }
        }
    }

    /// <inheritdoc />
    public override string ToString() => Map.ToString();
}
