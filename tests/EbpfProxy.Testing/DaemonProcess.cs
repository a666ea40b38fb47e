using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using EbpfProxy.Testing.Native;
using Xunit.Abstractions;

namespace EbpfProxy.Testing;

/// <summary>
/// A long-running process (typically the ebpf-proxy daemon) started inside a namespace with
/// <c>setsid ip netns exec NAME file args…</c>. Both <c>setsid</c> (our child is not a group leader) and
/// <c>ip netns exec</c> exec in place, so <see cref="Pid"/> is the daemon's own PID, and it leads a new
/// process group (pgid = PID) holding only the processes it starts. stdout and stderr are captured line by
/// line into a thread-safe buffer.
/// </summary>
/// <remarks>
/// <para>Always dispose it (<c>await using</c>): <see cref="DisposeAsync"/> calls <see cref="StopAsync"/>.
/// A process left running would keep its namespace alive after <c>ip netns delete</c>.</para>
/// <para>Signals from <see cref="StopAsync"/> go to the daemon's process group (<c>kill(-PID, sig)</c>), so helper
/// children it spawned (e.g. a shell script's <c>sleep</c>) do not outlive it; <see cref="SendSignal"/> targets the PID only.</para>
/// </remarks>
public sealed class DaemonProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Lock _gate = new();
    private readonly List<string> _lines = [];
    private TaskCompletionSource _changed = NewSignal();
    private int _disposed;
    private bool _ownsGroup;

    private const string SetsidPath = "/usr/bin/setsid";

    private DaemonProcess(NetNs ns, Process process, string commandLine)
    {
        Ns = ns;
        _process = process;
        CommandLine = commandLine;
    }

    /// <summary>The namespace the process runs in.</summary>
    public NetNs Ns { get; }

    /// <summary>The process id (the daemon itself, not a wrapper).</summary>
    public int Pid { get; private set; }

    /// <summary>The command line, for messages.</summary>
    public string CommandLine { get; }

    /// <summary>True once the process has exited.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>The exit code once exited (128 + signal when killed by a signal), otherwise null.</summary>
    public int? ExitCode => _process.HasExited ? _process.ExitCode : null;

    /// <summary>A snapshot of all captured stdout and stderr lines, in arrival order.</summary>
    public IReadOnlyList<string> Output
    {
        get
        {
            lock (_gate)
            {
                return _lines.ToArray();
            }
        }
    }

    /// <summary>All captured output joined with newlines.</summary>
    public string OutputText => string.Join('\n', Output);

    /// <summary>
    /// Starts <paramref name="fileName"/> with <paramref name="args"/> inside <paramref name="ns"/>.
    /// <paramref name="env"/> entries are added to (or override) the inherited environment.
    /// </summary>
    public static DaemonProcess Start(NetNs ns, string fileName, IEnumerable<string> args, IDictionary<string, string>? env = null)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentException.ThrowIfNullOrEmpty(fileName);
        bool useSetsid = File.Exists(SetsidPath);
        string[] argv = useSetsid
            ? ["ip", "netns", "exec", ns.Name, fileName, .. args]
            : ["netns", "exec", ns.Name, fileName, .. args];
        var psi = new ProcessStartInfo(useSetsid ? SetsidPath : "ip")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (string a in argv)
        {
            psi.ArgumentList.Add(a);
        }
        if (env is not null)
        {
            foreach ((string key, string value) in env)
            {
                psi.Environment[key] = value;
            }
        }

        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        var daemon = new DaemonProcess(ns, process, Cmd.FormatCommandLine(psi.FileName, argv)) { _ownsGroup = useSetsid };
        process.OutputDataReceived += (_, e) => daemon.Append(e.Data);
        process.ErrorDataReceived += (_, e) => daemon.Append(e.Data);
        process.Exited += (_, _) => daemon.Signal();
        process.Start();
        daemon.Pid = process.Id;
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return daemon;
    }

    /// <summary>Waits until at least <paramref name="count"/> captured lines contain <paramref name="text"/>.</summary>
    /// <exception cref="TimeoutException">Fewer in time; the message contains the captured output.</exception>
    public async Task WaitForLinesAsync(string text, int count, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(text);
        var sw = Stopwatch.StartNew();
        while (Output.Count(l => l.Contains(text, StringComparison.Ordinal)) < count)
        {
            if (sw.Elapsed > timeout)
                throw new TimeoutException($"fewer than {count} lines with '{text}' within {timeout}\n{FormatOutput()}");
            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Waits until a captured line matches <paramref name="pattern"/> (lines already captured count) and
    /// returns the match.
    /// </summary>
    /// <exception cref="TimeoutException">No match in time; the message contains the captured output.</exception>
    /// <exception cref="InvalidOperationException">The process exited without printing a match; the message contains the output.</exception>
    public async Task<Match> WaitForOutputAsync(Regex pattern, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        var deadline = Stopwatch.StartNew();
        int checkedLines = 0;
        while (true)
        {
            Task changed;
            string[] lines;
            lock (_gate)
            {
                changed = _changed.Task;
                lines = _lines.ToArray();
            }
            for (; checkedLines < lines.Length; checkedLines++)
            {
                Match m = pattern.Match(lines[checkedLines]);
                if (m.Success)
                {
                    return m;
                }
            }
            if (_process.HasExited)
            {
                // Let the output readers drain, then look one last time.
                await DrainAsync().ConfigureAwait(false);
                lines = Output.ToArray();
                for (; checkedLines < lines.Length; checkedLines++)
                {
                    Match m = pattern.Match(lines[checkedLines]);
                    if (m.Success)
                    {
                        return m;
                    }
                }
                throw new InvalidOperationException(
                    $"{CommandLine} (pid {Pid}) exited with code {_process.ExitCode} before printing /{pattern}/.\n{FormatOutput()}");
            }
            TimeSpan remaining = timeout - deadline.Elapsed;
            if (remaining <= TimeSpan.Zero)
            {
                throw new TimeoutException(
                    $"{CommandLine} (pid {Pid}) did not print /{pattern}/ within {timeout.TotalSeconds:0.###} s.\n{FormatOutput()}");
            }
            try
            {
                await changed.WaitAsync(remaining, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // loop once more, then throw with the output
            }
        }
    }

    /// <summary>Waits for the process to exit on its own; returns its exit code.</summary>
    /// <exception cref="TimeoutException">Still running after <paramref name="timeout"/>.</exception>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"{CommandLine} (pid {Pid}) still running after {timeout.TotalSeconds:0.###} s.\n{FormatOutput()}");
        }
        return _process.ExitCode;
    }

    /// <summary>
    /// Stops the process: SIGTERM to <see cref="Pid"/> (and its process group), then SIGKILL if it is still
    /// running after <paramref name="grace"/>; finally SIGKILL to whatever is left of its process group.
    /// Returns the exit code (128 + signal when it died of a signal).
    /// </summary>
    public async Task<int> StopAsync(TimeSpan grace)
    {
        if (!_process.HasExited)
        {
            SignalGroup(Libc.SIGTERM);
            if (!await TryWaitAsync(grace).ConfigureAwait(false))
            {
                SignalGroup(Libc.SIGKILL);
                if (!await TryWaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false))
                {
                    throw new InvalidOperationException($"{CommandLine} (pid {Pid}) survived SIGKILL for 10 s.");
                }
            }
        }
        // Leftover children in the daemon's own group (never anything else: the group was created for it).
        if (_ownsGroup)
        {
            Libc.Kill(-Pid, Libc.SIGKILL);
        }
        await DrainAsync().ConfigureAwait(false);
        return _process.ExitCode;
    }

    private void SignalGroup(int signal)
    {
        if (_ownsGroup && Libc.Kill(-Pid, signal) == 0)
        {
            return;
        }
        SendSignal(signal);
    }

    // After exit, let the async readers deliver the last lines (bounded: a background child could hold the pipes).
    private async Task DrainAsync()
    {
        try
        {
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }
    }

    /// <summary>Sends <paramref name="signal"/> (e.g. 1 = SIGHUP) to <see cref="Pid"/>; false when the process is already gone.</summary>
    public bool SendSignal(int signal)
    {
        if (_process.HasExited)
        {
            return false;
        }
        if (Libc.Kill(Pid, signal) == 0)
        {
            return true;
        }
        int errno = Marshal.GetLastPInvokeError();
        if (errno == Libc.ESRCH)
        {
            return false;
        }
        throw Libc.LastError($"kill({Pid}, {signal})");
    }

    /// <summary>Writes the command line, state and captured output to an xunit output helper (e.g. on failure).</summary>
    public void WriteOutputTo(ITestOutputHelper output, string? title = null)
    {
        ArgumentNullException.ThrowIfNull(output);
        output.WriteLine(FormatOutput(title));
    }

    /// <summary>The command line, state and captured output as one block of text.</summary>
    public string FormatOutput(string? title = null)
    {
        var sb = new StringBuilder();
        sb.Append("----- ").Append(title ?? "daemon").Append(": ").Append(CommandLine).Append(" (pid ").Append(Pid).Append(", ")
          .Append(_process.HasExited ? $"exited {_process.ExitCode}" : "running").AppendLine(") -----");
        foreach (string line in Output)
        {
            sb.AppendLine(line);
        }
        sb.Append("----- end -----");
        return sb.ToString();
    }

    /// <summary>Stops the process if still running (SIGTERM, SIGKILL after 5 s) and releases it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        try
        {
            await StopAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        finally
        {
            _process.Dispose();
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"{CommandLine} (pid {Pid})";

    private async Task<bool> TryWaitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return _process.HasExited;
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return; // end of stream
        }
        lock (_gate)
        {
            _lines.Add(line);
        }
        Signal();
    }

    private void Signal()
    {
        TaskCompletionSource previous;
        lock (_gate)
        {
            previous = _changed;
            _changed = NewSignal();
        }
        previous.TrySetResult();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
