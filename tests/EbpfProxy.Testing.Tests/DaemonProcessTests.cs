using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace EbpfProxy.Testing.Tests;

public class DaemonProcessTests(ITestOutputHelper output)
{
    [PrivilegedFact]
    public async Task Stop_kills_by_pid_and_the_pid_is_the_program_itself()
    {
        Privileged.EnsureRoot();
        using NetNs ns = NetNs.Create("daemon");
        await using DaemonProcess sleep = DaemonProcess.Start(ns, "sleep", ["30"]);
        Assert.False(sleep.HasExited);
        Assert.Null(sleep.ExitCode);

        // ip netns exec execs in place: /proc/PID/comm is "sleep", and the process is in the namespace.
        await WaitUntilAsync(() => File.ReadAllText($"/proc/{sleep.Pid}/comm").Trim() == "sleep");
        string nsInode = Cmd.Run("stat", "-L", "-c", "%i", ns.Path).Stdout.Trim();
        Assert.Equal($"net:[{nsInode}]", new FileInfo($"/proc/{sleep.Pid}/ns/net").LinkTarget);

        var sw = Stopwatch.StartNew();
        int code = await sleep.StopAsync(TimeSpan.FromSeconds(5));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(4), $"SIGTERM should stop sleep promptly, took {sw.Elapsed}");
        Assert.Equal(128 + 15, code);
        Assert.True(sleep.HasExited);
        Assert.False(Directory.Exists($"/proc/{sleep.Pid}"));
    }

    [PrivilegedFact]
    public async Task Sigkill_after_grace_when_sigterm_is_ignored()
    {
        Privileged.EnsureRoot();
        using NetNs ns = NetNs.Create("stubborn");
        await using DaemonProcess d = DaemonProcess.Start(ns, "sh", ["-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"]);
        await d.WaitForOutputAsync(new Regex("^ready$"), TimeSpan.FromSeconds(5));
        int code = await d.StopAsync(TimeSpan.FromMilliseconds(300));
        Assert.Equal(128 + 9, code);
    }

    [PrivilegedFact]
    public async Task Runs_inside_the_pod_namespace_and_captures_output()
    {
        Privileged.EnsureRoot();
        using Topology topo = Topology.Create();
        Pod pod = topo.AddNode("node").AddPod("pod", IPAddress.Parse("10.244.0.5"));

        await using DaemonProcess ipLink = DaemonProcess.Start(pod.Ns, "sh",
            ["-c", "ip -o addr show dev eth0; echo to-stderr >&2; echo \"env=$EPX_TEST_VAR\""],
            new Dictionary<string, string> { ["EPX_TEST_VAR"] = "42" });
        Match m = await ipLink.WaitForOutputAsync(new Regex(@"inet (\S+)"), TimeSpan.FromSeconds(5));
        Assert.Equal("10.244.0.5/32", m.Groups[1].Value);
        await ipLink.WaitForOutputAsync(new Regex("^env=42$"), TimeSpan.FromSeconds(5));
        await ipLink.WaitForOutputAsync(new Regex("^to-stderr$"), TimeSpan.FromSeconds(5));
        Assert.Equal(0, await ipLink.WaitForExitAsync(TimeSpan.FromSeconds(5)));
        ipLink.WriteOutputTo(output, "ip addr");
    }

    [PrivilegedFact]
    public async Task WaitForOutput_reports_timeout_and_early_exit_with_output()
    {
        Privileged.EnsureRoot();
        using NetNs ns = NetNs.Create("wait");

        await using (DaemonProcess quiet = DaemonProcess.Start(ns, "sh", ["-c", "echo starting; sleep 30"]))
        {
            var e = await Assert.ThrowsAsync<TimeoutException>(() => quiet.WaitForOutputAsync(new Regex("never"), TimeSpan.FromMilliseconds(500)));
            Assert.Contains("starting", e.Message);
        }

        await using (DaemonProcess dies = DaemonProcess.Start(ns, "sh", ["-c", "echo bye; exit 7"]))
        {
            var e = await Assert.ThrowsAsync<InvalidOperationException>(() => dies.WaitForOutputAsync(new Regex("never"), TimeSpan.FromSeconds(10)));
            Assert.Contains("bye", e.Message);
            Assert.Contains("code 7", e.Message);
            Assert.Equal(7, dies.ExitCode);
        }
    }

    [PrivilegedFact]
    public async Task Stop_also_ends_children_of_the_daemon()
    {
        Privileged.EnsureRoot();
        using NetNs ns = NetNs.Create("children");
        await using DaemonProcess d = DaemonProcess.Start(ns, "sh", ["-c", "sleep 30 & echo child $!; wait"]);
        Match m = await d.WaitForOutputAsync(new Regex(@"^child (\d+)$"), TimeSpan.FromSeconds(5));
        int child = int.Parse(m.Groups[1].Value);
        Assert.Equal(d.Pid, ProcessGroupOf(d.Pid)); // setsid: the daemon leads its own group
        Assert.Equal(d.Pid, ProcessGroupOf(child));

        var sw = Stopwatch.StartNew();
        await d.StopAsync(TimeSpan.FromSeconds(5));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(4), $"took {sw.Elapsed}");
        await WaitUntilAsync(() => !Directory.Exists($"/proc/{child}"));
    }

    private static int ProcessGroupOf(int pid)
    {
        // /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may contain spaces, so split after ')'.
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return int.Parse(fields[2]);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), "condition not met in 5 s");
            await Task.Delay(20);
        }
    }
}
