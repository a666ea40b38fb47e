using System.Globalization;

namespace EbpfProxy.Commands;

/// <summary>
/// Checks, before a command touches the kernel, that the process has the capabilities it needs,
/// so a user without them reads one line saying so instead of a stack trace from the first
/// failing bpf() or netlink call (issue 14 item 8).
/// </summary>
internal static class Privileges
{
    private const int CapNetAdmin = 12;
    private const int CapSysAdmin = 21;
    private const int CapBpf = 39;

    /// <summary>Reading or writing pinned maps and running programs: CAP_BPF, or CAP_SYS_ADMIN on older kernels.</summary>
    public static bool RequireBpf(string command) =>
        Require(command, Has(CapSysAdmin) || Has(CapBpf), "CAP_BPF (or CAP_SYS_ADMIN) to open ebpf-proxy's pinned maps");

    /// <summary>Loading and attaching programs, changing tc filters: CAP_BPF or CAP_SYS_ADMIN, and CAP_NET_ADMIN.</summary>
    public static bool RequireAdmin(string command) =>
        Require(command, (Has(CapSysAdmin) || Has(CapBpf)) && Has(CapNetAdmin),
            "CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN to change programs, tc filters and pins");

    private static bool Require(string command, bool granted, string what)
    {
        if (granted)
            return true;
        Console.Error.WriteLine($"error: ebpf-proxy {command} needs root ({what}); run it with sudo, or as root in the node's namespace");
        return false;
    }

    private static ulong? s_effective;

    /// <summary>The effective capability set from /proc/self/status (CapEff).</summary>
    private static bool Has(int capability)
    {
        s_effective ??= ReadEffective();
        return (s_effective.Value & (1UL << capability)) != 0;
    }

    private static ulong ReadEffective()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("CapEff:", StringComparison.Ordinal))
                    return ulong.Parse(line.AsSpan("CapEff:".Length).Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            }
        }
        catch (IOException)
        {
        }
        // No procfs: assume root can, others cannot.
        return Environment.UserName == "root" ? ulong.MaxValue : 0;
    }
}
