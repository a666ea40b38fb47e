using System.CommandLine;

namespace EbpfProxy.Commands;

/// <summary>Options shared by the daemon and the operator commands.</summary>
internal static class CommonOptions
{
    public static Option<string> BpfFs() => new("--bpffs")
    {
        Description = "bpffs mount holding ebpf-proxy's pinned maps",
        DefaultValueFactory = _ => "/sys/fs/bpf",
    };

    public static Option<string> Output() => new Option<string>("--output", "-o")
    {
        Description = "output format: table or json",
        DefaultValueFactory = _ => "table",
    }.AcceptOnlyFromAmong("table", "json");
}
