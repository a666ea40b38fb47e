using System.Diagnostics;
using System.Text;

namespace EbpfProxy.Testing;

/// <summary>
/// Runs short-lived helper processes (<c>ip</c>, <c>sysctl</c>, <c>tc</c>, <c>bpftool</c>, …) with an
/// argument array (no shell), capturing stdout and stderr.
/// </summary>
/// <remarks>
/// <see cref="Run"/> and <see cref="RunAsync"/> throw <see cref="CommandFailedException"/> on a non-zero exit;
/// <see cref="TryRun"/> and <see cref="TryRunAsync"/> return the result instead. A command that exceeds its
/// timeout is killed (by PID, it is our own child) and <see cref="CommandTimeoutException"/> is thrown.
/// </remarks>
public static class Cmd
{
    /// <summary>Timeout used by the synchronous overloads.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Runs <paramref name="fileName"/> and throws <see cref="CommandFailedException"/> unless it exits 0.</summary>
    public static CommandResult Run(string fileName, params string[] args) =>
        RunAsync(fileName, args, DefaultTimeout).GetAwaiter().GetResult();

    /// <summary>Runs <paramref name="fileName"/> and returns its result whatever the exit code.</summary>
    public static CommandResult TryRun(string fileName, params string[] args) =>
        TryRunAsync(fileName, args, DefaultTimeout).GetAwaiter().GetResult();

    /// <summary>Runs <paramref name="fileName"/> with a timeout; throws on non-zero exit or timeout.</summary>
    public static async Task<CommandResult> RunAsync(
        string fileName, IEnumerable<string> args, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        CommandResult result = await TryRunAsync(fileName, args, timeout, cancellationToken).ConfigureAwait(false);
        return result.EnsureSuccess();
    }

    /// <summary>Runs <paramref name="fileName"/> with a timeout; returns the result whatever the exit code, throws on timeout.</summary>
    public static async Task<CommandResult> TryRunAsync(
        string fileName, IEnumerable<string> args, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(fileName);
        string[] argv = args.ToArray();
        TimeSpan limit = timeout ?? DefaultTimeout;

        var psi = new ProcessStartInfo(fileName)
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

        using var process = new Process { StartInfo = psi };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new CommandFailedException(FormatCommandLine(fileName, argv), -1, "", $"cannot start: {e.Message}");
        }
        process.StandardInput.Close();

        Task<string> stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        Task<string> stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(limit);
        try
        {
            await process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            try
            {
                process.Kill(entireProcessTree: false);
            }
            catch (InvalidOperationException)
            {
                // already exited
            }
            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            throw new CommandTimeoutException(
                FormatCommandLine(fileName, argv), limit,
                await DrainAsync(stdout, TimeSpan.FromSeconds(1)).ConfigureAwait(false),
                await DrainAsync(stderr, TimeSpan.FromSeconds(1)).ConfigureAwait(false));
        }

        // A backgrounded grandchild may keep the pipes open after the process exited: bound the wait.
        try
        {
            await Task.WhenAll(stdout, stderr).WaitAsync(limit, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new CommandTimeoutException(FormatCommandLine(fileName, argv), limit, "", "(process exited but its output pipes stayed open: a background child still holds them)");
        }

        return new CommandResult(
            FormatCommandLine(fileName, argv),
            process.ExitCode,
            await stdout.ConfigureAwait(false),
            await stderr.ConfigureAwait(false));
    }

    private static async Task<string> DrainAsync(Task<string> output, TimeSpan wait)
    {
        try
        {
            return await output.WaitAsync(wait).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return "";
        }
    }

    /// <summary>Formats a command line for messages, quoting arguments that contain spaces.</summary>
    public static string FormatCommandLine(string fileName, IEnumerable<string> args) =>
        string.Join(' ', new[] { fileName }.Concat(args).Select(a => a.Length == 0 || a.Any(char.IsWhiteSpace) || a.Contains('\'') ? "'" + a.Replace("'", "'\\''") + "'" : a));
}

/// <summary>The outcome of a <see cref="Cmd"/> invocation.</summary>
/// <param name="CommandLine">The command line, for messages.</param>
/// <param name="ExitCode">The process exit code.</param>
/// <param name="Stdout">Everything written to standard output.</param>
/// <param name="Stderr">Everything written to standard error.</param>
public sealed record CommandResult(string CommandLine, int ExitCode, string Stdout, string Stderr)
{
    /// <summary>True when the exit code is 0.</summary>
    public bool Succeeded => ExitCode == 0;

    /// <summary>Returns this result, or throws <see cref="CommandFailedException"/> when the exit code is not 0.</summary>
    public CommandResult EnsureSuccess() =>
        Succeeded ? this : throw new CommandFailedException(CommandLine, ExitCode, Stdout, Stderr);
}

/// <summary>A command exited with a non-zero code (or could not be started: exit code -1).</summary>
public class CommandFailedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public CommandFailedException(string commandLine, int exitCode, string stdout, string stderr)
        : base(BuildMessage(commandLine, exitCode, stdout, stderr))
    {
        CommandLine = commandLine;
        ExitCode = exitCode;
        Stdout = stdout;
        Stderr = stderr;
    }

    /// <summary>Creates the exception with a custom message.</summary>
    protected CommandFailedException(string message, string commandLine, int exitCode, string stdout, string stderr)
        : base(message)
    {
        CommandLine = commandLine;
        ExitCode = exitCode;
        Stdout = stdout;
        Stderr = stderr;
    }

    /// <summary>The command line that failed.</summary>
    public string CommandLine { get; }

    /// <summary>The exit code (-1 when the process could not be started or was killed on timeout).</summary>
    public int ExitCode { get; }

    /// <summary>Captured standard output.</summary>
    public string Stdout { get; }

    /// <summary>Captured standard error.</summary>
    public string Stderr { get; }

    private static string BuildMessage(string commandLine, int exitCode, string stdout, string stderr)
    {
        var sb = new StringBuilder($"Command failed with exit code {exitCode}: {commandLine}");
        if (!string.IsNullOrWhiteSpace(stderr))
        {
            sb.Append("\nstderr: ").Append(stderr.TrimEnd());
        }
        if (!string.IsNullOrWhiteSpace(stdout))
        {
            sb.Append("\nstdout: ").Append(stdout.TrimEnd());
        }
        return sb.ToString();
    }
}

/// <summary>A command did not finish within its timeout and was killed.</summary>
public sealed class CommandTimeoutException : CommandFailedException
{
    /// <summary>Creates the exception.</summary>
    public CommandTimeoutException(string commandLine, TimeSpan timeout, string stdout, string stderr)
        : base($"Command timed out after {timeout.TotalSeconds:0.###} s and was killed: {commandLine}" +
               (string.IsNullOrWhiteSpace(stderr) ? "" : "\nstderr: " + stderr.TrimEnd()),
               commandLine, -1, stdout, stderr)
    {
        Timeout = timeout;
    }

    /// <summary>The timeout that elapsed.</summary>
    public TimeSpan Timeout { get; }
}
