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
            CtCommands.Create(),
            PolicyCommands.CreatePolicy(),
            PolicyCommands.CreateIpcache(),
            TraceCommand.Create(),
            CleanupCommand.Create(),
            ObserveCommand.Create(),
            StatusCommand.Create(),
            MetricsCommand.Create(),
            MapsCommand.Create(),
        };
        return InvokeAsync(root, args);
    }

    /// <summary>
    /// Any failure a command did not handle ends in one line naming it, not a stack trace
    /// (issue 14 item 8); the type is there for a bug report.
    /// </summary>
    private static async Task<int> InvokeAsync(RootCommand root, string[] args)
    {
        try
        {
            return await root.Parse(args).InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return 130;
        }
        catch (Exception ex)
        {
            await Console.Error.WriteLineAsync($"error: {ex.Message} ({ex.GetType().Name})").ConfigureAwait(false);
            return 1;
        }
    }
}
