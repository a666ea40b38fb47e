using System.CommandLine;
using EbpfProxy.Commands;

namespace EbpfProxy;

public static class Program
{
    public static Task<int> Main(string[] args)
    {
        var root = new RootCommand("ebpf-proxy: a kube-proxy replacement with an eBPF datapath")
        {
            RunCommand.Create(),
            LbCommands.Create(),
            PolicyCommands.CreatePolicy(),
            PolicyCommands.CreateIpcache(),
            TraceCommand.Create(),
            CleanupCommand.Create(),
            ObserveCommand.Create(),
            StatusCommand.Create(),
            MapsCommand.Create(),
        };
        return root.Parse(args).InvokeAsync();
    }
}
