using System.Text;

namespace LibBpf.Net;

/// <summary>
/// A kernel map reached through a file descriptor: from a loaded <see cref="BpfObject"/>
/// (<see cref="BpfObjectMap.Map"/>, fd borrowed), a pin (<see cref="OpenPinned"/>) or an id
/// (<see cref="FromId"/>). Untyped byte-span operations; use <see cref="As{TKey, TValue}"/> or
/// <see cref="AsPerCpu{TKey, TValue}"/> for typed access. Thread-safe.
/// </summary>
public sealed class BpfMap : IDisposable
{
    private readonly bool _ownsHandle;

    /// <summary>Wraps a map fd, reading its properties with <c>bpf_obj_get_info_by_fd</c>.</summary>
    /// <param name="fd">A map fd.</param>
    /// <param name="ownsHandle">Whether <see cref="Dispose"/> disposes <paramref name="fd"/>.</param>
    public BpfMap(SafeBpfFdHandle fd, bool ownsHandle = true)
        : this(fd, ownsHandle, null)
    {
    }

    internal unsafe BpfMap(SafeBpfFdHandle fd, bool ownsHandle, string? name)
    {
        ArgumentNullException.ThrowIfNull(fd);
        Interop.LibBpf.BpfMapInfo info = Interop.LibBpf.GetMapInfo(fd, name);
        Fd = fd;
        _ownsHandle = ownsHandle;
        Name = name ?? Encoding.UTF8.GetString(new ReadOnlySpan<byte>(info.name, 16)).TrimEnd('\0');
        Type = (BpfMapType)info.type;
        Id = info.id;
        KeySize = info.key_size;
        ValueSize = info.value_size;
        MaxEntries = info.max_entries;
        Flags = info.map_flags;
        IsPerCpu = Type is BpfMapType.PerCpuHash or BpfMapType.PerCpuArray or BpfMapType.LruPerCpuHash or BpfMapType.PerCpuCgroupStorage;
        ValueBufferSize = IsPerCpu ? checked((int)((ValueSize + 7) & ~7u) * Libbpf.NumPossibleCpus) : (int)ValueSize;
    }

    /// <summary>The map fd.</summary>
    public SafeBpfFdHandle Fd { get; }

    /// <summary>Name (from the object, or the kernel's name truncated to 15 characters).</summary>
    public string Name { get; }

    /// <summary>Map type.</summary>
    public BpfMapType Type { get; }

    /// <summary>Kernel map id.</summary>
    public uint Id { get; }

    /// <summary>Key size in bytes.</summary>
    public uint KeySize { get; }

    /// <summary>Value size in bytes (of one CPU's value for per-CPU maps).</summary>
    public uint ValueSize { get; }

    /// <summary>Maximum number of entries.</summary>
    public uint MaxEntries { get; }

    /// <summary>BPF_F_* creation flags.</summary>
    public uint Flags { get; }

    /// <summary>True for per-CPU hash/array/LRU maps, whose values are one slot per possible CPU.</summary>
    public bool IsPerCpu { get; }

    /// <summary>
    /// Size of the value buffer of lookups and updates: <see cref="ValueSize"/>, or for per-CPU maps
    /// <see cref="Libbpf.NumPossibleCpus"/> slots of <see cref="ValueSize"/> rounded up to 8 bytes.
    /// </summary>
    public int ValueBufferSize { get; }

    /// <summary>Opens a pinned map (<c>bpf_obj_get</c>); the returned map owns its fd.</summary>
    public static BpfMap OpenPinned(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return Own(Interop.LibBpf.ObjGet(path));
    }

    /// <summary>Opens a map by kernel id (<c>bpf_map_get_fd_by_id</c>); the returned map owns its fd.</summary>
    public static BpfMap FromId(uint id) => Own(Interop.LibBpf.MapGetFdById(id));

    private static BpfMap Own(SafeBpfFdHandle fd)
    {
        try
        {
            return new BpfMap(fd, ownsHandle: true, null);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>Typed view; validates the key and value sizes.</summary>
    public BpfMap<TKey, TValue> As<TKey, TValue>()
        where TKey : unmanaged
        where TValue : unmanaged => new(this);

    /// <summary>Typed per-CPU view; validates the key and value sizes.</summary>
    public BpfPerCpuMap<TKey, TValue> AsPerCpu<TKey, TValue>()
        where TKey : unmanaged
        where TValue : unmanaged => new(this);

    /// <summary>Pins the map at <paramref name="path"/> on a bpffs (<c>bpf_obj_pin</c>).</summary>
    public void Pin(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Interop.LibBpf.ObjPin(Fd, path, "map", Name);
    }

    /// <summary>Removes a pin (<c>unlink</c>); the map lives on while referenced.</summary>
    public void Unpin(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Interop.Libc.Unlink(path);
    }

    /// <summary>Looks a key up (<c>bpf_map_lookup_elem</c>). <paramref name="value"/> must hold <see cref="ValueBufferSize"/> bytes.</summary>
    /// <returns>False when the key does not exist.</returns>
    public unsafe bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        CheckKey(key.Length);
        CheckValue(value.Length);
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            return Interop.LibBpf.MapLookupElem(Fd, k, v, Name);
        }
    }

    /// <summary>Creates or updates an element (<c>bpf_map_update_elem</c>). <paramref name="value"/> must hold <see cref="ValueBufferSize"/> bytes.</summary>
    public unsafe void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, BpfMapUpdateFlags flags = BpfMapUpdateFlags.Any)
    {
        CheckKey(key.Length);
        CheckValue(value.Length);
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            Interop.LibBpf.MapUpdateElem(Fd, k, v, (ulong)flags, Name);
        }
    }

    /// <summary>Deletes a key (<c>bpf_map_delete_elem</c>).</summary>
    /// <returns>False when the key did not exist.</returns>
    public unsafe bool Delete(ReadOnlySpan<byte> key)
    {
        CheckKey(key.Length);
        fixed (byte* k = key)
        {
            return Interop.LibBpf.MapDeleteElem(Fd, k, Name);
        }
    }

    /// <summary>
    /// Gets the key following <paramref name="key"/>, or the first key when <paramref name="key"/> is empty
    /// (<c>bpf_map_get_next_key</c>). A key that is no longer in a hash map restarts from the first key.
    /// </summary>
    /// <returns>False at the end of the map.</returns>
    public unsafe bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey)
    {
        if (!key.IsEmpty)
        {
            CheckKey(key.Length);
        }
        CheckKey(nextKey.Length);
        fixed (byte* k = key)
        fixed (byte* n = nextKey)
        {
            return Interop.LibBpf.MapGetNextKey(Fd, key.IsEmpty ? null : k, n, Name);
        }
    }

    /// <summary>
    /// Counts the entries of a map whose layout the caller need not know (for usage gauges): arrays
    /// are always full (<see cref="MaxEntries"/>); hash and LRU maps are read in batches
    /// (<c>bpf_map_lookup_batch</c>, <paramref name="batchSize"/> entries per call), other types
    /// (LPM tries) and kernels without batch support key by key. Entries added or removed during
    /// the walk may or may not be counted; a hash map walk never counts one twice.
    /// </summary>
    public long CountEntries(int batchSize = 4096)
    {
        if (Type is BpfMapType.Array or BpfMapType.PerCpuArray)
            return MaxEntries;
        if (Type is BpfMapType.Hash or BpfMapType.LruHash or BpfMapType.PerCpuHash or BpfMapType.LruPerCpuHash
            && TryCountBatched(Math.Clamp(batchSize, 1, (int)Math.Max(1, MaxEntries))) is long batched)
            return batched;
        long n = 0;
        var key = new byte[KeySize];
        var next = new byte[KeySize];
        bool first = true;
        while (TryGetNextKey(first ? ReadOnlySpan<byte>.Empty : key, next))
        {
            first = false;
            n++;
            (key, next) = (next, key);
        }
        return n;
    }

    /// <summary>Null when the kernel has no batch lookup for this map.</summary>
    private unsafe long? TryCountBatched(int size)
    {
        var keys = new byte[(long)KeySize * size];
        var values = new byte[(long)ValueBufferSize * size];
        var token = new byte[Math.Max(KeySize, 8)];
        long total = 0;
        bool started = false;
        while (true)
        {
            uint count = (uint)size;
            int rc;
            fixed (byte* t = token)
            fixed (byte* k = keys)
            fixed (byte* v = values)
            {
                rc = Interop.LibBpf.MapLookupBatch(Fd, started ? t : null, t, k, v, ref count);
            }
            if (rc == -Interop.ENOENT)
                return total + count;
            if (rc == -Interop.ENOSPC && size < MaxEntries)
            {
                // A bucket holds more entries than the buffers: grow and retry from the same position.
                size = (int)Math.Min((long)size * 2, MaxEntries);
                keys = new byte[(long)KeySize * size];
                values = new byte[(long)ValueBufferSize * size];
                continue;
            }
            if (rc is -Interop.EINVAL or -Interop.ENOTSUPP or -Interop.EOPNOTSUPP && !started)
                return null;
            if (rc < 0)
                throw new BpfException(-rc, "bpf_map_lookup_batch", "map", Name);
            total += count;
            started = true;
        }
    }

    /// <summary>Disposes the fd when this map owns it (not for maps borrowed from a <see cref="BpfObject"/>).</summary>
    public void Dispose()
    {
        if (_ownsHandle)
        {
            Fd.Dispose();
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"map '{Name}' (id {Id}, {Type}, key {KeySize}, value {ValueSize}, max {MaxEntries})";

    private void CheckKey(int length)
    {
        if (length != KeySize)
        {
            throw new ArgumentException($"map '{Name}' has {KeySize}-byte keys, got {length} bytes", "key");
        }
    }

    private void CheckValue(int length)
    {
        if (length < ValueBufferSize)
        {
            throw new ArgumentException($"map '{Name}' needs a {ValueBufferSize}-byte value buffer, got {length} bytes", "value");
        }
    }
}
