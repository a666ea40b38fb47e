using System.Runtime.ExceptionServices;
using EbpfProxy.Testing.Native;

namespace EbpfProxy.Testing;

/// <summary>
/// A named network namespace (<c>ip netns add</c>) owned by the test, deleted on <see cref="Dispose"/>.
/// </summary>
/// <remarks>
/// <para>Three ways to act inside it:</para>
/// <list type="bullet">
/// <item><see cref="Ip"/>: <c>ip -n NAME …</c> (cheapest; no extra process setup).</item>
/// <item><see cref="Exec"/>: <c>ip netns exec NAME …</c> for any other program. Note that <c>ip netns exec</c>
/// remounts <c>/sys</c> for the child, so <c>/sys/fs/bpf</c> is empty there; use <see cref="BpfFsMount"/>.</item>
/// <item><see cref="Run{T}"/>: runs managed code on a fresh thread that joined the namespace with <c>setns(2)</c>.
/// Sockets created there belong to the namespace for life and can then be used from any thread.</item>
/// </list>
/// </remarks>
public sealed class NetNs : IDisposable
{
    private int _disposed;

    private NetNs(string name, string role)
    {
        Name = name;
        Role = role;
    }

    /// <summary>The namespace name (as shown by <c>ip netns list</c>).</summary>
    public string Name { get; }

    /// <summary>The role given at creation (e.g. <c>node</c>, <c>pod1</c>), for messages.</summary>
    public string Role { get; }

    /// <summary>The bind-mounted namespace file, <c>/var/run/netns/NAME</c>.</summary>
    public string Path => System.IO.Path.Combine(StaleCleanup.NetNsDirectory, Name);

    /// <summary>True once <see cref="Dispose"/> ran.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>
    /// Creates a new namespace with a unique name derived from <paramref name="role"/> and brings <c>lo</c> up.
    /// </summary>
    public static NetNs Create(string role)
    {
        StaleCleanup.EnsureRanOnce();
        string name = Names.Namespace(role);
        Cmd.Run("ip", "netns", "add", name);
        var ns = new NetNs(name, role);
        try
        {
            ns.Ip("link", "set", "lo", "up");
        }
        catch
        {
            ns.Dispose();
            throw;
        }
        return ns;
    }

    /// <summary>Runs <c>ip -n NAME args…</c>; throws <see cref="CommandFailedException"/> on failure.</summary>
    public CommandResult Ip(params string[] args) => Cmd.Run("ip", ["-n", Name, .. args]);

    /// <summary>Runs <c>ip netns exec NAME args…</c>; throws <see cref="CommandFailedException"/> on failure.</summary>
    public CommandResult Exec(params string[] args) => Cmd.Run("ip", ["netns", "exec", Name, .. args]);

    /// <summary>Runs <c>ip netns exec NAME args…</c> with a timeout; throws on failure or timeout.</summary>
    public Task<CommandResult> ExecAsync(IEnumerable<string> args, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        Cmd.RunAsync("ip", ["netns", "exec", Name, .. args], timeout, cancellationToken);

    /// <summary>Runs <c>ip netns exec NAME args…</c> and returns the result whatever the exit code.</summary>
    public CommandResult TryExec(params string[] args) => Cmd.TryRun("ip", ["netns", "exec", Name, .. args]);

    /// <summary>Sets a sysctl inside the namespace (<c>ip netns exec NAME sysctl -w key=value</c>).</summary>
    public void Sysctl(string key, string value) => Exec("sysctl", "-q", "-w", $"{key}={value}");

    /// <summary>Reads a sysctl inside the namespace (<c>sysctl -n key</c>).</summary>
    public string GetSysctl(string key) => Exec("sysctl", "-n", key).Stdout.Trim();

    /// <summary>The ifindex of <paramref name="interfaceName"/> inside this namespace.</summary>
    public int GetIfIndex(string interfaceName)
    {
        // "12: veth3k1@if2: <BROADCAST,...> ..."
        string line = Ip("-o", "link", "show", "dev", interfaceName).Stdout;
        int colon = line.IndexOf(':');
        if (colon <= 0 || !int.TryParse(line.AsSpan(0, colon).Trim(), out int index))
        {
            throw new FormatException($"Cannot parse ifindex of {interfaceName} in {Name} from: {line}");
        }
        return index;
    }

    /// <summary>
    /// Runs <paramref name="action"/> on a new dedicated thread that first joined this namespace with
    /// <c>setns(open("/var/run/netns/NAME"), CLONE_NEWNET)</c>, waits for it and returns its result
    /// (exceptions are rethrown with their original stack). The thread ends afterwards; sockets created
    /// by <paramref name="action"/> stay in this namespace and may be used asynchronously from anywhere.
    /// </summary>
    /// <remarks>Do not <c>await</c> inside <paramref name="action"/>: continuations run on pool threads of the root namespace.</remarks>
    public T Run<T>(Func<T> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        T result = default!;
        ExceptionDispatchInfo? error = null;
        string path = Path;
        var thread = new Thread(() =>
        {
            try
            {
                Enter(path);
                result = action();
            }
            catch (Exception e)
            {
                error = ExceptionDispatchInfo.Capture(e);
            }
        })
        {
            IsBackground = true,
            Name = $"netns {Name}",
        };
        thread.Start();
        thread.Join();
        error?.Throw();
        return result;
    }

    /// <summary>Runs <paramref name="action"/> inside the namespace; see <see cref="Run{T}"/>.</summary>
    public void Run(Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        Run<object?>(() =>
        {
            action();
            return null;
        });
    }

    /// <summary>
    /// Deletes the namespace (<c>ip netns delete</c>); its interfaces go with it once nothing else holds it
    /// (open sockets or processes keep the kernel object alive, but the name is gone). Idempotent; tolerates
    /// a namespace that was already deleted.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        CommandResult r = Cmd.TryRun("ip", "netns", "delete", Name);
        if (!r.Succeeded && File.Exists(Path))
        {
            Console.Error.WriteLine($"[EbpfProxy.Testing] failed to delete netns {Name}: {r.Stderr.Trim()}");
        }
    }

    /// <inheritdoc/>
    public override string ToString() => Name;

    private static void Enter(string path)
    {
        int fd = Libc.Open(path, Libc.O_RDONLY | Libc.O_CLOEXEC);
        if (fd < 0)
        {
            throw Libc.LastError($"open({path})");
        }
        try
        {
            if (Libc.SetNs(fd, Libc.CLONE_NEWNET) != 0)
            {
                throw Libc.LastError($"setns({path}, CLONE_NEWNET)");
            }
        }
        finally
        {
            Libc.Close(fd);
        }
    }
}
