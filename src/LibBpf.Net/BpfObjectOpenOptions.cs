namespace LibBpf.Net;

/// <summary>Options of <see cref="BpfObject.Open"/> (<c>struct bpf_object_open_opts</c>).</summary>
public sealed class BpfObjectOpenOptions
{
    /// <summary>
    /// Directory (on a bpffs) where maps declared with <c>__uint(pinning, LIBBPF_PIN_BY_NAME)</c> are pinned
    /// as <c>PinRootPath/map_name</c>. At load, a map already pinned there is reused (its type, key/value
    /// size, max_entries and flags must match, else the load fails with EINVAL); otherwise it is created and
    /// pinned. libbpf's default is /sys/fs/bpf.
    /// </summary>
    public string? PinRootPath { get; init; }

    /// <summary>Overrides the object name (default: the file's base name).</summary>
    public string? ObjectName { get; init; }

    /// <summary>
    /// Kernel (verifier) log level for every program load: 0 = log only on failure (default), 1 = always log,
    /// 2 = verbose. With a non-zero level the log of successful loads is kept in <see cref="BpfObject.LoadLog"/>.
    /// </summary>
    public uint KernelLogLevel { get; init; }

    /// <summary>Custom BTF used for CO-RE relocations instead of /sys/kernel/btf/vmlinux.</summary>
    public string? BtfCustomPath { get; init; }
}
