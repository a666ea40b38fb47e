using System.Text;

namespace LibBpf.Net;

/// <summary>
/// A BPF program: either a program of a <see cref="BpfObject"/> (a borrowed view, configurable before
/// load, its <see cref="Fd"/> owned by the object), or a loaded program reached by pin or id
/// (<see cref="OpenPinned"/>, <see cref="FromId"/>), which owns its fd until disposed.
/// </summary>
public sealed class BpfProgram : IDisposable
{
    private readonly BpfObject? _object;
    private readonly nint _prog;
    private readonly BpfProgramType _type;
    private SafeBpfFdHandle? _fd;

    internal BpfProgram(BpfObject obj, nint prog)
    {
        _object = obj;
        _prog = prog;
        Name = Interop.LibBpf.ProgramName(prog);
        SectionName = Interop.LibBpf.ProgramSectionName(prog);
    }

    private BpfProgram(SafeBpfFdHandle fd)
    {
        BpfProgramInfo info = BpfProgramInfo.Read(fd, null);
        _fd = fd;
        _type = info.Type;
        Name = info.Name;
    }

    /// <summary>The object this program belongs to; null for a program opened by pin or id.</summary>
    public BpfObject? Object => _object;

    /// <summary>Function name (for programs opened by pin or id: the kernel's name, truncated to 15 characters).</summary>
    public string Name { get; }

    /// <summary>ELF section, e.g. "tc" or "xdp"; null for programs opened by pin or id.</summary>
    public string? SectionName { get; }

    /// <summary>Program type.</summary>
    public BpfProgramType Type
    {
        get
        {
            if (_object is null)
            {
                return _type;
            }
            using var lease = new HandleLease(_object.Handle);
            return Interop.LibBpf.ProgramType(_prog);
        }
    }

    /// <summary>Whether <see cref="BpfObject.Load"/> loads this program.</summary>
    public bool Autoload
    {
        get
        {
            if (_object is null)
            {
                return false;
            }
            using var lease = new HandleLease(_object.Handle);
            return Interop.LibBpf.ProgramAutoload(_prog);
        }
    }

    /// <summary>
    /// The program fd: owned by the object for object programs (valid after load, while the object is
    /// open; do not dispose it), owned by this instance otherwise.
    /// </summary>
    /// <exception cref="BpfException">The program is not loaded.</exception>
    public SafeBpfFdHandle Fd
    {
        get
        {
            SafeBpfFdHandle? fd = _fd;
            if (fd is not null)
            {
                ObjectDisposedException.ThrowIf(fd.IsClosed, this);
                return fd;
            }

            using var lease = new HandleLease(_object!.Handle);
            int raw = Interop.LibBpf.ProgramFd(_prog);
            if (raw < 0)
            {
                throw new BpfException(-raw, "bpf_program__fd", "program", Name, detail: "the program is loaded by BpfObject.Load when Autoload is set");
            }
            fd = new SafeBpfFdHandle(raw, _object.Handle);
            SafeBpfFdHandle? raced = Interlocked.CompareExchange(ref _fd, fd, null);
            if (raced is not null)
            {
                fd.Dispose();
                return raced;
            }
            return fd;
        }
    }

    /// <summary>Opens a pinned program (<c>bpf_obj_get</c>).</summary>
    public static BpfProgram OpenPinned(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return Own(Interop.LibBpf.ObjGet(path));
    }

    /// <summary>Opens a loaded program by kernel id (<c>bpf_prog_get_fd_by_id</c>).</summary>
    public static BpfProgram FromId(uint id) => Own(Interop.LibBpf.ProgGetFdById(id));

    /// <summary>Wraps a program fd; the returned program owns (disposes) it.</summary>
    public static BpfProgram FromFd(SafeBpfFdHandle fd)
    {
        ArgumentNullException.ThrowIfNull(fd);
        return new BpfProgram(fd);
    }

    private static BpfProgram Own(SafeBpfFdHandle fd)
    {
        try
        {
            return new BpfProgram(fd);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>Chooses whether <see cref="BpfObject.Load"/> loads this program (<c>bpf_program__set_autoload</c>).</summary>
    public void SetAutoload(bool autoload)
    {
        using var lease = new HandleLease(ObjectOrThrow().Handle);
        Interop.LibBpf.ProgramSetAutoload(_prog, autoload, Name);
    }

    /// <summary>Overrides the program type before load (<c>bpf_program__set_type</c>).</summary>
    public void SetType(BpfProgramType type)
    {
        using var lease = new HandleLease(ObjectOrThrow().Handle);
        Interop.LibBpf.ProgramSetType(_prog, type, Name);
    }

    /// <summary>Kernel information (<c>bpf_obj_get_info_by_fd</c>): id, tag, type, name...</summary>
    public BpfProgramInfo GetInfo() => BpfProgramInfo.Read(Fd, Name);

    /// <summary>Pins the loaded program at <paramref name="path"/> on a bpffs (<c>bpf_obj_pin</c>).</summary>
    public void Pin(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Interop.LibBpf.ObjPin(Fd, path, "program", Name);
    }

    /// <summary>Removes a pin (<c>unlink</c>).</summary>
    public void Unpin(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Interop.Libc.Unlink(path);
    }

    /// <summary>Runs the program on a packet in the kernel (<c>BPF_PROG_TEST_RUN</c>), see <see cref="TestRun(SafeBpfFdHandle, ReadOnlySpan{byte}, Span{byte}, int, string?)"/>.</summary>
    public TestRunResult TestRun(ReadOnlySpan<byte> packetIn, Span<byte> packetOut, int repeat = 1) =>
        TestRun(Fd, packetIn, packetOut, repeat, Name);

    /// <summary>
    /// Runs a loaded program (tc, XDP, socket filter...) on <paramref name="packetIn"/>
    /// (<c>bpf_prog_test_run_opts</c>), <paramref name="repeat"/> times.
    /// </summary>
    /// <param name="programFd">The program fd.</param>
    /// <param name="packetIn">Input packet, starting at the Ethernet header.</param>
    /// <param name="packetOut">Receives the packet as left by the program; may be empty to skip the copy.</param>
    /// <param name="repeat">Number of runs (the duration is the average).</param>
    /// <param name="programName">Name for error messages.</param>
    /// <exception cref="BpfException">ENOSPC when <paramref name="packetOut"/> is smaller than the output packet.</exception>
    public static TestRunResult TestRun(SafeBpfFdHandle programFd, ReadOnlySpan<byte> packetIn, Span<byte> packetOut, int repeat = 1, string? programName = null) =>
        TestRun(programFd, packetIn, packetOut, ReadOnlySpan<byte>.Empty, repeat, programName);

    /// <summary>
    /// As <see cref="TestRun(SafeBpfFdHandle, ReadOnlySpan{byte}, Span{byte}, int, string?)"/>, with a
    /// program context (<c>ctx_in</c>): for tc programs a <c>struct __sk_buff</c> of which the kernel
    /// accepts a few fields (mark, priority, ifindex, cb, tstamp...), the rest zero.
    /// </summary>
    public static unsafe TestRunResult TestRun(SafeBpfFdHandle programFd, ReadOnlySpan<byte> packetIn, Span<byte> packetOut, ReadOnlySpan<byte> contextIn, int repeat = 1, string? programName = null)
    {
        ArgumentNullException.ThrowIfNull(programFd);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(repeat);
        if (packetIn.IsEmpty)
        {
            throw new ArgumentException("the input packet is empty", nameof(packetIn));
        }

        fixed (byte* pIn = packetIn)
        fixed (byte* pOut = packetOut)
        fixed (byte* pCtx = contextIn)
        {
            var opts = new Interop.LibBpf.BpfTestRunOpts
            {
                sz = (nuint)sizeof(Interop.LibBpf.BpfTestRunOpts),
                data_in = pIn,
                data_size_in = (uint)packetIn.Length,
                ctx_in = contextIn.IsEmpty ? null : pCtx,
                ctx_size_in = (uint)contextIn.Length,
                // data_size_out == 0 means "unbounded" to the kernel: never pass a buffer with it.
                data_out = packetOut.IsEmpty ? null : pOut,
                data_size_out = (uint)packetOut.Length,
                repeat = repeat,
            };
            int rc = Interop.LibBpf.ProgTestRun(programFd, ref opts);
            if (rc < 0)
            {
                string? detail = rc == -Interop.ENOSPC
                    ? $"the output packet is {opts.data_size_out} bytes, the buffer {packetOut.Length}"
                    : null;
                throw new BpfException(-rc, "bpf_prog_test_run_opts", "program", programName ?? DescribeFd(programFd), detail);
            }
            return new TestRunResult(opts.retval, (int)opts.data_size_out, opts.duration);
        }
    }

    /// <summary>Disposes the fd of a program opened by pin or id (no-op for object programs).</summary>
    public void Dispose()
    {
        if (_object is null)
        {
            _fd?.Dispose();
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"program '{Name}'";

    internal void ReleaseBorrowedFd()
    {
        if (_object is not null)
        {
            _fd?.Dispose();
        }
    }

    private BpfObject ObjectOrThrow() =>
        _object ?? throw new InvalidOperationException($"program '{Name}' was opened by pin or id: it is already loaded");

    private static string DescribeFd(SafeBpfFdHandle fd) =>
        "fd " + fd.DangerousGetFd().ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>Outcome of <see cref="BpfProgram.TestRun(ReadOnlySpan{byte}, Span{byte}, int)"/>.</summary>
/// <param name="ReturnValue">The program's return value (e.g. TC_ACT_OK, XDP_PASS).</param>
/// <param name="DataSizeOut">Length of the output packet (bytes written to the output buffer).</param>
/// <param name="DurationNs">Average duration of one run in nanoseconds.</param>
public readonly record struct TestRunResult(uint ReturnValue, int DataSizeOut, uint DurationNs);

/// <summary>Kernel information about a loaded program (<c>struct bpf_prog_info</c>).</summary>
public sealed record BpfProgramInfo
{
    /// <summary>Kernel program id.</summary>
    public required uint Id { get; init; }

    /// <summary>Program type.</summary>
    public required BpfProgramType Type { get; init; }

    /// <summary>Kernel name (truncated to 15 characters).</summary>
    public required string Name { get; init; }

    /// <summary>Program tag (hash of the instructions) as 16 lowercase hex digits, as bpftool shows it.</summary>
    public required string Tag { get; init; }

    /// <summary>Translated (post-verifier) program length in bytes.</summary>
    public uint XlatedProgramLength { get; init; }

    /// <summary>JIT-compiled length in bytes (0 without JIT, or without permission to see it).</summary>
    public uint JitedProgramLength { get; init; }

    /// <summary>Load time in nanoseconds since boot.</summary>
    public ulong LoadTimeNs { get; init; }

    /// <summary>UID of the loader.</summary>
    public uint CreatedByUid { get; init; }

    /// <summary>Number of maps the program uses.</summary>
    public uint MapCount { get; init; }

    /// <summary>BTF object id, 0 without BTF.</summary>
    public uint BtfId { get; init; }

    /// <summary>Instructions processed by the verifier.</summary>
    public uint VerifiedInstructions { get; init; }

    internal static unsafe BpfProgramInfo Read(SafeBpfFdHandle fd, string? name)
    {
        Interop.LibBpf.BpfProgInfo info = Interop.LibBpf.GetProgInfo(fd, name);
        return new BpfProgramInfo
        {
            Id = info.id,
            Type = (BpfProgramType)info.type,
            Name = Encoding.UTF8.GetString(new ReadOnlySpan<byte>(info.name, 16)).TrimEnd('\0'),
            Tag = Convert.ToHexStringLower(new ReadOnlySpan<byte>(info.tag, 8)),
            XlatedProgramLength = info.xlated_prog_len,
            JitedProgramLength = info.jited_prog_len,
            LoadTimeNs = info.load_time,
            CreatedByUid = info.created_by_uid,
            MapCount = info.nr_map_ids,
            BtfId = info.btf_id,
            VerifiedInstructions = info.verified_insns,
        };
    }
}
