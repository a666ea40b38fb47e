namespace LibBpf.Net;

/// <summary>
/// A map of a <see cref="BpfObject"/> (<c>struct bpf_map</c>): configurable before
/// <see cref="BpfObject.Load"/>, usable through <see cref="Map"/> after it. A borrowed view: valid while
/// the object is open.
/// </summary>
public sealed class BpfObjectMap
{
    private readonly BpfObject _object;
    private readonly nint _map;
    private BpfMap? _loaded;

    internal BpfObjectMap(BpfObject obj, nint map)
    {
        _object = obj;
        _map = map;
        Name = Interop.LibBpf.MapName(map);
    }

    /// <summary>The object this map belongs to.</summary>
    public BpfObject Object => _object;

    /// <summary>The map's name in the object (not truncated to the kernel's 15 characters).</summary>
    public string Name { get; }

    /// <summary>Map type.</summary>
    public BpfMapType Type
    {
        get
        {
            using var lease = new HandleLease(_object.Handle);
            return Interop.LibBpf.MapType(_map);
        }
    }

    /// <summary>Key size in bytes.</summary>
    public uint KeySize
    {
        get
        {
            using var lease = new HandleLease(_object.Handle);
            return Interop.LibBpf.MapKeySize(_map);
        }
    }

    /// <summary>Value size in bytes (per CPU for per-CPU maps).</summary>
    public uint ValueSize
    {
        get
        {
            using var lease = new HandleLease(_object.Handle);
            return Interop.LibBpf.MapValueSize(_map);
        }
    }

    /// <summary>Maximum number of entries (as configured; see <see cref="SetMaxEntries"/>).</summary>
    public uint MaxEntries
    {
        get
        {
            using var lease = new HandleLease(_object.Handle);
            return Interop.LibBpf.MapMaxEntries(_map);
        }
    }

    /// <summary>BPF_F_* creation flags.</summary>
    public uint Flags
    {
        get
        {
            using var lease = new HandleLease(_object.Handle);
            return Interop.LibBpf.MapFlags(_map);
        }
    }

    /// <summary>True for maps libbpf creates for global data (.data, .rodata, .bss, .kconfig).</summary>
    public bool IsInternal
    {
        get
        {
            using var lease = new HandleLease(_object.Handle);
            return Interop.LibBpf.MapIsInternal(_map);
        }
    }

    /// <summary>Whether <see cref="BpfObject.Load"/> creates this map.</summary>
    public bool AutoCreate
    {
        get
        {
            using var lease = new HandleLease(_object.Handle);
            return Interop.LibBpf.MapAutoCreate(_map);
        }
    }

    /// <summary>The path the map is (to be) pinned at, or null.</summary>
    public string? PinPath
    {
        get
        {
            using var lease = new HandleLease(_object.Handle);
            return Interop.LibBpf.MapPinPath(_map);
        }
    }

    /// <summary>True once the map is pinned (or was reused from its pin path).</summary>
    public bool IsPinned
    {
        get
        {
            using var lease = new HandleLease(_object.Handle);
            return Interop.LibBpf.MapIsPinned(_map);
        }
    }

    /// <summary>
    /// The loaded map (fd borrowed from the object; disposing it is a no-op). Available after
    /// <see cref="BpfObject.Load"/>.
    /// </summary>
    /// <exception cref="BpfException">The map has not been created (not loaded, or <see cref="AutoCreate"/> off).</exception>
    public BpfMap Map
    {
        get
        {
            BpfMap? map = _loaded;
            if (map is not null)
            {
                ObjectDisposedException.ThrowIf(map.Fd.IsClosed, _object);
                return map;
            }

            using var lease = new HandleLease(_object.Handle);
            int fd = Interop.LibBpf.MapFd(_map);
            if (fd < 0)
            {
                throw new BpfException(-fd, "bpf_map__fd", "map", Name, detail: "the map does not exist before BpfObject.Load, or when AutoCreate is off");
            }
            var handle = new SafeBpfFdHandle(fd, _object.Handle);
            try
            {
                map = new BpfMap(handle, ownsHandle: false, Name);
            }
            catch
            {
                handle.Dispose();
                throw;
            }
            BpfMap? raced = Interlocked.CompareExchange(ref _loaded, map, null);
            if (raced is not null)
            {
                handle.Dispose();
                return raced;
            }
            return map;
        }
    }

    /// <summary>Typed view of the loaded map (see <see cref="BpfMap{TKey, TValue}"/>).</summary>
    public BpfMap<TKey, TValue> As<TKey, TValue>()
        where TKey : unmanaged
        where TValue : unmanaged => new(Map);

    /// <summary>Typed per-CPU view of the loaded map (see <see cref="BpfPerCpuMap{TKey, TValue}"/>).</summary>
    public BpfPerCpuMap<TKey, TValue> AsPerCpu<TKey, TValue>()
        where TKey : unmanaged
        where TValue : unmanaged => new(Map);

    /// <summary>Sets max_entries before load (<c>bpf_map__set_max_entries</c>).</summary>
    public void SetMaxEntries(uint maxEntries)
    {
        using var lease = new HandleLease(_object.Handle);
        Interop.LibBpf.MapSetMaxEntries(_map, maxEntries, Name);
    }

    /// <summary>Sets the BPF_F_* creation flags before load (<c>bpf_map__set_map_flags</c>).</summary>
    public void SetFlags(uint flags)
    {
        using var lease = new HandleLease(_object.Handle);
        Interop.LibBpf.MapSetFlags(_map, flags, Name);
    }

    /// <summary>Whether <see cref="BpfObject.Load"/> creates this map (<c>bpf_map__set_autocreate</c>).</summary>
    public void SetAutoCreate(bool autoCreate)
    {
        using var lease = new HandleLease(_object.Handle);
        Interop.LibBpf.MapSetAutoCreate(_map, autoCreate, Name);
    }

    /// <summary>
    /// Sets the pin path before load (<c>bpf_map__set_pin_path</c>): at load the map is reused from that
    /// path if pinned there, else created and pinned. Null disables pinning of a LIBBPF_PIN_BY_NAME map.
    /// </summary>
    public void SetPinPath(string? path)
    {
        using var lease = new HandleLease(_object.Handle);
        Interop.LibBpf.MapSetPinPath(_map, path, Name);
    }

    /// <summary>
    /// Makes <see cref="BpfObject.Load"/> use an existing map instead of creating one
    /// (<c>bpf_map__reuse_fd</c>; libbpf duplicates the fd, the caller keeps ownership of <paramref name="fd"/>).
    /// </summary>
    public void ReuseFd(SafeBpfFdHandle fd)
    {
        ArgumentNullException.ThrowIfNull(fd);
        using var lease = new HandleLease(_object.Handle);
        Interop.LibBpf.MapReuseFd(_map, fd, Name);
    }

    /// <summary>Makes <see cref="BpfObject.Load"/> use <paramref name="map"/> instead of creating one.</summary>
    public void ReuseFd(BpfMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        ReuseFd(map.Fd);
    }

    /// <summary>Pins the loaded map at <paramref name="path"/>, or at <see cref="PinPath"/> when null (<c>bpf_map__pin</c>).</summary>
    public void Pin(string? path = null)
    {
        using var lease = new HandleLease(_object.Handle);
        Interop.LibBpf.MapPin(_map, path, Name);
    }

    /// <summary>Removes the pin at <paramref name="path"/>, or at <see cref="PinPath"/> when null (<c>bpf_map__unpin</c>).</summary>
    public void Unpin(string? path = null)
    {
        using var lease = new HandleLease(_object.Handle);
        Interop.LibBpf.MapUnpin(_map, path, Name);
    }

    /// <inheritdoc />
    public override string ToString() => $"map '{Name}'";

    /// <summary>Drops the borrowed fd (called when the object is disposed).</summary>
    internal void Release() => _loaded?.Fd.Dispose();
}
