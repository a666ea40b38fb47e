using System.Runtime.InteropServices;

namespace LibBpf.Net;

/// <summary>Owns a libbpf <c>struct btf</c>.</summary>
public sealed class SafeBtfHandle : SafeHandle
{
    /// <summary>Creates an invalid handle (used by the marshaller).</summary>
    public SafeBtfHandle()
        : base(0, ownsHandle: true)
    {
    }

    /// <inheritdoc />
    public override bool IsInvalid => handle == 0;

    /// <inheritdoc />
    protected override bool ReleaseHandle()
    {
        Interop.LibBpf.btf__free(handle);
        return true;
    }
}

/// <summary>One member of a BTF struct: name, offset in bits, size in bytes.</summary>
public sealed record BtfMember(string Name, uint BitOffset, long Size)
{
    /// <summary>Offset in bytes (bit offset / 8).</summary>
    public uint ByteOffset => BitOffset / 8;
}

/// <summary>A BTF struct: name, size in bytes, members in declaration order.</summary>
public sealed record BtfStruct(string Name, uint Size, IReadOnlyList<BtfMember> Members);

/// <summary>A BTF enum: name, signedness and its enumerators in declaration order.</summary>
public sealed record BtfEnum(string Name, bool Signed, IReadOnlyList<KeyValuePair<string, long>> Values);

/// <summary>
/// Type information of a compiled BPF object (its .BTF section), read through libbpf. Used to check
/// that user-space mirrors of map structs match the C definitions.
/// </summary>
public sealed class BtfFile : IDisposable
{
    private readonly SafeBtfHandle _handle;

    private BtfFile(SafeBtfHandle handle) => _handle = handle;

    /// <summary>Reads the .BTF section of a BPF ELF object (<c>btf__parse_elf</c>).</summary>
    public static BtfFile ParseElf(string path)
    {
        var handle = Interop.LibBpf.btf__parse_elf(path, 0);
        if (handle.IsInvalid)
        {
            int errno = Marshal.GetLastPInvokeError();
            handle.Dispose();
            throw new BpfException(errno, "btf__parse_elf", "object", path);
        }
        return new BtfFile(handle);
    }

    /// <summary>The struct called <paramref name="name"/>, or null.</summary>
    public unsafe BtfStruct? FindStruct(string name)
    {
        int id = Interop.LibBpf.btf__find_by_name_kind(_handle, name, Interop.LibBpf.BtfKindStruct);
        if (id <= 0)
            return null;
        var t = Interop.LibBpf.btf__type_by_id(_handle, (uint)id);
        int vlen = (int)(t->info & 0xffff);
        bool kflag = (t->info >> 31) != 0;
        var members = (Interop.LibBpf.btf_member*)(t + 1);
        var list = new List<BtfMember>(vlen);
        for (int i = 0; i < vlen; i++)
        {
            var m = members[i];
            uint bitOffset = kflag ? m.offset & 0xffffff : m.offset;
            list.Add(new BtfMember(Name(m.name_off), bitOffset, Interop.LibBpf.btf__resolve_size(_handle, m.type)));
        }
        return new BtfStruct(name, t->size_or_type, list);
    }

    /// <summary>The enum called <paramref name="name"/> (32-bit BTF_KIND_ENUM), or null.</summary>
    public unsafe BtfEnum? FindEnum(string name)
    {
        int id = Interop.LibBpf.btf__find_by_name_kind(_handle, name, Interop.LibBpf.BtfKindEnum);
        if (id <= 0)
            return null;
        var t = Interop.LibBpf.btf__type_by_id(_handle, (uint)id);
        int vlen = (int)(t->info & 0xffff);
        bool signed = (t->info >> 31) != 0; // kind_flag: signed values (BTF since Linux 6.0; older objects leave it 0)
        var values = (Interop.LibBpf.btf_enum*)(t + 1);
        var list = new List<KeyValuePair<string, long>>(vlen);
        for (int i = 0; i < vlen; i++)
            list.Add(new(Name(values[i].name_off), signed ? values[i].val : (uint)values[i].val));
        return new BtfEnum(name, signed, list);
    }

    private unsafe string Name(uint offset) =>
        Marshal.PtrToStringUTF8((nint)Interop.LibBpf.btf__name_by_offset(_handle, offset)) ?? "";

    /// <summary>Frees the BTF (<c>btf__free</c>).</summary>
    public void Dispose() => _handle.Dispose();
}
