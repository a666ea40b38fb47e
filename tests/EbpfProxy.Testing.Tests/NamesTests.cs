namespace EbpfProxy.Testing.Tests;

public class NamesTests
{
    [Fact]
    public void Namespace_names_are_unique_prefixed_and_carry_the_pid()
    {
        string a = Names.Namespace("Pod-1 with a very long role name");
        string b = Names.Namespace("Pod-1 with a very long role name");
        Assert.NotEqual(a, b);
        Assert.StartsWith($"{Names.Prefix}-{Names.RunId}-", a);
        Assert.True(a.Length <= 30, a);
        Assert.Matches("^epx-[0-9a-z]+-[0-9a-z]+-[0-9a-z]{1,12}$", a);
        Assert.True(Names.TryGetOwnerPid(a, out int pid));
        Assert.Equal(Environment.ProcessId, pid);
        Assert.True(Names.IsIssuedByThisProcess(a));
    }

    [Fact]
    public void Interface_names_fit_ifnamsiz()
    {
        for (int i = 0; i < 100; i++)
        {
            string name = Names.Interface("veth");
            Assert.StartsWith("veth", name);
            Assert.True(name.Length <= Names.MaxInterfaceNameLength, name);
        }
        Assert.Throws<ArgumentException>(() => Names.Interface("averyverylongstem"));
    }

    [Fact]
    public void Temp_paths_are_under_tmp_and_parse()
    {
        string path = Names.TempPath("bpffs");
        Assert.StartsWith($"/tmp/epx-{Names.RunId}-bpffs-", path);
        Assert.True(Names.TryGetOwnerPid(Path.GetFileName(path), out int pid));
        Assert.Equal(Environment.ProcessId, pid);
    }

    [Theory]
    [InlineData("epx-2s-1-node", 100)]
    [InlineData("epx-rs-a-pod1", 1000)]
    [InlineData("epx-1-bpffs-3", 1)]
    public void Owner_pid_parses(string name, int expected)
    {
        Assert.True(Names.TryGetOwnerPid(name, out int pid));
        Assert.Equal(expected, pid);
    }

    [Theory]
    [InlineData("cni-1234")]
    [InlineData("epx")]
    [InlineData("epx-2s")]
    [InlineData("epx-2s-1")]
    [InlineData("epx-ZZ-1-node")]
    [InlineData("epx--1-node")]
    [InlineData("epxx-2s-1-node")]
    [InlineData("epx-0-1-node")]
    public void Foreign_names_do_not_parse(string name)
    {
        Assert.False(Names.TryGetOwnerPid(name, out _));
    }

    [Fact]
    public void Base36()
    {
        Assert.Equal("0", Names.ToBase36(0));
        Assert.Equal("z", Names.ToBase36(35));
        Assert.Equal("10", Names.ToBase36(36));
        Assert.Equal("2s", Names.ToBase36(100));
    }

    [Fact]
    public void Stale_detection_is_conservative()
    {
        Assert.False(StaleCleanup.IsStale("cni-abc"));
        Assert.False(StaleCleanup.IsStale(Names.Namespace("live"))); // ours, issued by this process
        Assert.True(StaleCleanup.IsStale($"epx-{Names.RunId}-zzzz-notissued")); // our pid, but not from this process
        Assert.True(StaleCleanup.IsProcessAlive(Environment.ProcessId));
        Assert.True(StaleCleanup.IsProcessAlive(1));
    }
}

public class PrivilegedTests
{
    [Theory]
    [InlineData(true, null, false)]
    [InlineData(true, "1", false)]
    [InlineData(false, null, true)]
    [InlineData(false, "0", true)]
    [InlineData(false, "1", false)] // required: run (and fail) rather than skip
    public void Skip_decision(bool isRoot, string? env, bool skipped)
    {
        string? reason = Privileged.GetSkipReason(isRoot, env);
        Assert.Equal(skipped, reason is not null);
        if (skipped)
        {
            Assert.Equal("requires root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)", reason);
        }
    }

    [Fact]
    public void Attributes_follow_the_current_process()
    {
        string? expected = Privileged.GetSkipReason();
        Assert.Equal(expected, new PrivilegedFactAttribute().Skip);
        Assert.Equal(expected, new PrivilegedTheoryAttribute().Skip);
    }

    [Fact]
    public void EnsureRoot_matches_IsRoot()
    {
        if (Privileged.IsRoot)
        {
            Privileged.EnsureRoot();
        }
        else
        {
            var e = Assert.Throws<InvalidOperationException>(Privileged.EnsureRoot);
            Assert.Contains("root", e.Message);
        }
    }
}

public class CmdTests
{
    [Fact]
    public void Captures_stdout()
    {
        CommandResult r = Cmd.Run("echo", "hello", "world");
        Assert.Equal("hello world\n", r.Stdout);
        Assert.Equal(0, r.ExitCode);
    }

    [Fact]
    public void Non_zero_exit_throws_with_details()
    {
        var e = Assert.Throws<CommandFailedException>(() => Cmd.Run("sh", "-c", "echo out; echo oops >&2; exit 3"));
        Assert.Equal(3, e.ExitCode);
        Assert.Equal("oops\n", e.Stderr);
        Assert.Contains("exit code 3", e.Message);
        Assert.Contains("sh -c 'echo out; echo oops >&2; exit 3'", e.Message);
        Assert.Contains("oops", e.Message);
    }

    [Fact]
    public void TryRun_does_not_throw()
    {
        CommandResult r = Cmd.TryRun("sh", "-c", "exit 4");
        Assert.False(r.Succeeded);
        Assert.Equal(4, r.ExitCode);
        Assert.Throws<CommandFailedException>(() => r.EnsureSuccess());
    }

    [Fact]
    public void Missing_program_throws_command_failed()
    {
        var e = Assert.Throws<CommandFailedException>(() => Cmd.Run("/nonexistent/epx-program"));
        Assert.Equal(-1, e.ExitCode);
    }

    [Fact]
    public async Task Async_timeout_kills_the_process()
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<CommandTimeoutException>(() => Cmd.RunAsync("sleep", ["30"], TimeSpan.FromMilliseconds(300)));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10));
        Assert.Contains("sleep 30", e.Message);
    }
}
