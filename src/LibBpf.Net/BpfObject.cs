namespace LibBpf.Net;

/// <summary>
/// An ELF BPF object opened by libbpf (<c>struct bpf_object</c>). Configure its <see cref="Maps"/> and
/// <see cref="Programs"/>, then <see cref="Load"/> it. Disposing closes the object: its programs are
/// unloaded and its maps freed unless pinned or referenced elsewhere (tc/XDP attachments keep their
/// programs alive in the kernel).
/// </summary>
public sealed class BpfObject : IDisposable
{
    private readonly SafeBpfObjectHandle _handle;
    private readonly BpfObjectMap[] _maps;
    private readonly BpfProgram[] _programs;
    private readonly uint _kernelLogLevel;

    private BpfObject(SafeBpfObjectHandle handle, uint kernelLogLevel)
    {
        _handle = handle;
        _kernelLogLevel = kernelLogLevel;
        Name = Interop.LibBpf.ObjectName(handle);

        var maps = new List<BpfObjectMap>();
        for (nint map = Interop.LibBpf.ObjectNextMap(handle, 0); map != 0; map = Interop.LibBpf.ObjectNextMap(handle, map))
        {
            maps.Add(new BpfObjectMap(this, map));
        }
        _maps = [.. maps];

        var programs = new List<BpfProgram>();
        for (nint prog = Interop.LibBpf.ObjectNextProgram(handle, 0); prog != 0; prog = Interop.LibBpf.ObjectNextProgram(handle, prog))
        {
            programs.Add(new BpfProgram(this, prog));
        }
        _programs = [.. programs];
    }

    /// <summary>The object's name (file base name unless overridden).</summary>
    public string Name { get; }

    /// <summary>True after a successful <see cref="Load"/>.</summary>
    public bool IsLoaded { get; private set; }

    /// <summary>libbpf's output during <see cref="Load"/> (warnings; with <see cref="BpfObjectOpenOptions.KernelLogLevel"/> &gt; 0 also the verifier logs).</summary>
    public string? LoadLog { get; private set; }

    /// <summary>All maps, including internal ones (.rodata, .bss, .data...).</summary>
    public IReadOnlyList<BpfObjectMap> Maps => _maps;

    /// <summary>All programs.</summary>
    public IReadOnlyList<BpfProgram> Programs => _programs;

    /// <summary>The native handle.</summary>
    public SafeBpfObjectHandle Handle => _handle;

    /// <summary>Opens (parses, does not load) a BPF ELF object file (<c>bpf_object__open_file</c>).</summary>
    /// <exception cref="BpfException">The file is missing or not a valid BPF object (message includes libbpf's output).</exception>
    public static BpfObject Open(string path, BpfObjectOpenOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= new BpfObjectOpenOptions();
        using var capture = LibBpfLog.BeginCapture(LibBpfLogLevel.Info);
        SafeBpfObjectHandle handle;
        try
        {
            handle = Interop.LibBpf.ObjectOpenFile(path, options.ObjectName, options.PinRootPath, options.BtfCustomPath, options.KernelLogLevel);
        }
        catch (BpfException e)
        {
            throw new BpfException(e.Errno, e.Operation, e.ObjectKind, e.ObjectName, log: capture.GetText());
        }
        try
        {
            return new BpfObject(handle, options.KernelLogLevel);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Returns the map named <paramref name="name"/>.</summary>
    /// <exception cref="BpfException">ENOENT: no such map (the message lists the object's maps).</exception>
    public BpfObjectMap GetMap(string name) =>
        TryGetMap(name, out BpfObjectMap? map) ? map : throw new BpfException(Interop.ENOENT, "bpf_object__find_map_by_name", "map", name,
            detail: $"object '{Name}' has maps: {string.Join(", ", _maps.Select(m => m.Name))}");

    /// <summary>Looks a map up by name.</summary>
    public bool TryGetMap(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out BpfObjectMap? map)
    {
        map = Array.Find(_maps, m => m.Name == name);
        return map is not null;
    }

    /// <summary>Returns the program (function name) named <paramref name="name"/>.</summary>
    /// <exception cref="BpfException">ENOENT: no such program (the message lists the object's programs).</exception>
    public BpfProgram GetProgram(string name) =>
        TryGetProgram(name, out BpfProgram? prog) ? prog : throw new BpfException(Interop.ENOENT, "bpf_object__find_program_by_name", "program", name,
            detail: $"object '{Name}' has programs: {string.Join(", ", _programs.Select(p => p.Name))}");

    /// <summary>Looks a program up by (function) name.</summary>
    public bool TryGetProgram(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out BpfProgram? program)
    {
        program = Array.Find(_programs, p => p.Name == name);
        return program is not null;
    }

    /// <summary>
    /// Creates (or reuses pinned) maps, loads the programs with <see cref="BpfProgram.Autoload"/> set, and
    /// pins maps that ask for it (<c>bpf_object__load</c>). Can be attempted once.
    /// </summary>
    /// <exception cref="BpfException">With the captured libbpf log, including the verifier output of a rejected program.</exception>
    public void Load()
    {
        LibBpfLogLevel level = _kernelLogLevel > 0 ? LibBpfLogLevel.Debug : LibBpfLogLevel.Info;
        int rc;
        string? log;
        using (var capture = LibBpfLog.BeginCapture(level))
        {
            rc = Interop.LibBpf.ObjectLoad(_handle);
            log = capture.GetText();
        }
        LoadLog = log;
        if (rc < 0)
        {
            throw new BpfException(-rc, "bpf_object__load", "object", Name, log: log);
        }
        IsLoaded = true;
    }

    /// <summary>Closes the object (<c>bpf_object__close</c>) once no call through its maps/programs is in flight.</summary>
    public void Dispose()
    {
        foreach (BpfObjectMap map in _maps)
        {
            map.Release();
        }
        foreach (BpfProgram program in _programs)
        {
            program.ReleaseBorrowedFd();
        }
        _handle.Dispose();
    }
}
