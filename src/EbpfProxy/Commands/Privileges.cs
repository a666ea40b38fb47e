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
    private const int CapPerfmon = 38;
    private const int CapBpf = 39;

    /// <summary>bpf(2) itself: CAP_BPF, or CAP_SYS_ADMIN on kernels before 5.8.</summary>
    private static readonly (string Name, Func<bool> Granted) Bpf = ("CAP_BPF (or CAP_SYS_ADMIN)", () => Has(CapBpf) || Has(CapSysAdmin));

    /// <summary>tc qdiscs and filters over rtnetlink, and loading networking program types (sched_cls, cgroup sock_addr).</summary>
    private static readonly (string Name, Func<bool> Granted) NetAdmin = ("CAP_NET_ADMIN", () => Has(CapNetAdmin));

    /// <summary>
    /// Loading the datapath: without CAP_PERFMON the verifier applies the unprivileged rules (no pointer
    /// leaks or comparisons, speculative-execution sanitizing), which refuse pod.bpf.o's programs with EACCES.
    /// </summary>
    private static readonly (string Name, Func<bool> Granted) Perfmon = ("CAP_PERFMON (or CAP_SYS_ADMIN)", () => Has(CapPerfmon) || Has(CapSysAdmin));

    /// <summary>Reading or writing pinned maps and running programs: CAP_BPF, or CAP_SYS_ADMIN on older kernels.</summary>
    public static bool RequireBpf(string command) => Require(command, "to open ebpf-proxy's pinned maps", Bpf);

    /// <summary>Detaching programs, changing tc filters, removing pins: CAP_BPF or CAP_SYS_ADMIN, and CAP_NET_ADMIN.</summary>
    public static bool RequireAdmin(string command) => Require(command, "to change programs, tc filters and pins", Bpf, NetAdmin);

    /// <summary>
    /// The daemon: loading and attaching the datapath needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (the chart's
    /// capability set; CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON on older kernels).
    /// </summary>
    public static bool RequireLoader(string command) => Require(command, "to load and attach the datapath", Bpf, NetAdmin, Perfmon);

    private static bool Require(string command, string what, params (string Name, Func<bool> Granted)[] needs)
    {
        var missing = needs.Where(n => !n.Granted()).Select(n => n.Name).ToList();
        if (missing.Count == 0)
            return true;
        Console.Error.WriteLine(
            $"error: ebpf-proxy {command} needs root ({string.Join(" and ", needs.Select(n => n.Name))} {what}); " +
            $"missing: {string.Join(", ", missing)}; run it with sudo, or as root in the node's namespace");
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
