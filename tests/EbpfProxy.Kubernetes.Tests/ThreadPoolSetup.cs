using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace EbpfProxy.Kubernetes.Tests;

internal static class ThreadPoolSetup
{
    /// <summary>
    /// The test host (vstest + xunit) keeps a few thread-pool threads blocked. On a two-core
    /// machine that starves the pool, and timer callbacks and continuations wait for thread
    /// injection (about half a second each), which the latency tests would measure instead of
    /// the source. Give the pool room up front.
    /// </summary>
    [ModuleInitializer]
    internal static void Init()
    {
        ThreadPool.GetMinThreads(out var workers, out var completionPorts);
        ThreadPool.SetMinThreads(Math.Max(workers, 16), Math.Max(completionPorts, 16));
    }
}

internal static partial class Posix
{
    /// <summary>rename(2): replaces <paramref name="to"/> atomically, even a symlink to a directory (File.Move will not).</summary>
    public static void Rename(string from, string to)
    {
        if (rename(from, to) != 0)
            throw new IOException($"rename {from} -> {to} failed: errno {Marshal.GetLastPInvokeError()}");
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int rename(string from, string to);
}
