namespace LibBpf.Net.Tests;

/// <summary>
/// A kernel test: needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN for mounts and namespaces).
/// Skipped when not root, unless EBPF_PROXY_REQUIRE_PRIVILEGED=1, in which case it runs (and fails).
/// </summary>
public sealed class PrivilegedFactAttribute : FactAttribute
{
    public PrivilegedFactAttribute()
    {
        if (!IsRoot && Environment.GetEnvironmentVariable("EBPF_PROXY_REQUIRE_PRIVILEGED") != "1")
        {
            Skip = "requires root (CAP_BPF, CAP_NET_ADMIN)";
        }
    }

    public static bool IsRoot => TestNative.GetEuid() == 0;
}
