using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace LibBpf.Net.Tests;

/// <summary>
/// A throw-away network namespace "lbnet-XXXX" holding a veth pair veth0/veth1 (both up, IPv6 disabled so
/// the kernel sends no router solicitations or MLD reports: the only frames are the test's). Code that touches
/// its interfaces runs through <see cref="Run{T}"/>, on a dedicated thread that entered the namespace.
/// Deleted on dispose. Nothing here touches the root namespace's interfaces.
/// </summary>
internal sealed class NetNs : IDisposable
{
    public NetNs()
    {
        Name = "lbnet-" + Guid.NewGuid().ToString("N")[..8];
        Ip($"netns add {Name}");
        try
        {
            Exec("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
            Ip($"-n {Name} link add veth0 type veth peer name veth1");
            Ip($"-n {Name} link set veth0 up");
            Ip($"-n {Name} link set veth1 up");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Name { get; }

    /// <summary>Runs <paramref name="action"/> on a new thread inside the namespace and returns its result.</summary>
    public T Run<T>(Func<T> action)
    {
        T result = default!;
        ExceptionDispatchInfo? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                TestNative.EnterNetNs($"/var/run/netns/{Name}");
                result = action();
            }
            catch (Exception e)
            {
                error = ExceptionDispatchInfo.Capture(e);
            }
        });
        thread.Start();
        thread.Join();
        error?.Throw();
        return result;
    }

    public void Run(Action action) => Run(() => { action(); return 0; });

    /// <summary>Runs a command inside the namespace (e.g. "tc filter show dev veth0 ingress").</summary>
    public string Exec(string command) => Ip($"netns exec {Name} {command}");

    public void Dispose() => Ip($"netns delete {Name}", check: false);

    internal static string Ip(string arguments, bool check = true)
    {
        var psi = new ProcessStartInfo("ip", arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using Process process = Process.Start(psi)!;
        string stdout = process.StandardOutput.ReadToEnd();
        string stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (check && process.ExitCode != 0)
        {
            throw new InvalidOperationException($"ip {arguments} failed ({process.ExitCode}): {stderr}");
        }
        return stdout;
    }
}
