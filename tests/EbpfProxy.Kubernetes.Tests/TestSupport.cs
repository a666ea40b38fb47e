using System.Diagnostics;
using EbpfProxy.Core.Cluster;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Kubernetes.Tests;

/// <summary>Builders for API objects as the API server would hand them out (namespace set).</summary>
internal static class K8s
{
    public static V1Service Service(string name, IDictionary<string, string>? selector, params V1ServicePort[] ports) => new()
    {
        ApiVersion = "v1",
        Kind = "Service",
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = "default" },
        Spec = new V1ServiceSpec { ClusterIP = "10.96.0.42", Selector = selector, Ports = ports.ToList() },
    };

    public static V1ServicePort Port(string? name, int port, IntOrString? targetPort = null, string? protocol = "TCP") =>
        new() { Name = name, Port = port, TargetPort = targetPort, Protocol = protocol };

    public static Dictionary<string, string> Labels(params string[] pairs) =>
        pairs.Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);

    public static V1Pod Pod(string name, string? ip, bool ready = true, string labels = "app=echo", string node = "node-1") => new()
    {
        ApiVersion = "v1",
        Kind = "Pod",
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = "default", Labels = Labels(labels.Split(',')), Uid = "uid-" + name },
        Spec = new V1PodSpec
        {
            NodeName = node,
            Containers = [new V1Container { Name = "main", Image = "echo" }],
        },
        Status = new V1PodStatus
        {
            Phase = "Running",
            PodIP = ip,
            Conditions = [new V1PodCondition { Type = "Ready", Status = ready ? "True" : "False" }],
        },
    };

    public static V1Pod WithPorts(this V1Pod pod, params V1ContainerPort[] ports)
    {
        pod.Spec.Containers[0].Ports = ports.ToList();
        return pod;
    }

    public static V1ContainerPort ContainerPort(string name, int port, string? protocol = null) =>
        new() { Name = name, ContainerPort = port, Protocol = protocol };
}

/// <summary>A directory under the temp path, removed on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "ebpf-proxy-manifests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Writes through a temporary dotfile and a rename, as careful tools do.</summary>
    public void WriteAtomically(string name, string content)
    {
        var temp = File("." + name + ".tmp");
        System.IO.File.WriteAllText(temp, content);
        System.IO.File.Move(temp, File(name), overwrite: true);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Keeps every log line, for assertions on what an operator would read.</summary>
internal sealed class ListLogger : ILogger
{
    private readonly List<(LogLevel Level, EventId Id, string Message)> _entries = [];
    private readonly List<string> _timeline = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    /// <summary>Every line with milliseconds since the logger was created, for test output.</summary>
    public IReadOnlyList<string> Timeline
    {
        get
        {
            lock (_entries)
                return _timeline.ToList();
        }
    }

    public IReadOnlyList<(LogLevel Level, EventId Id, string Message)> Entries
    {
        get
        {
            lock (_entries)
                return _entries.ToList();
        }
    }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (_entries)
        {
            _entries.Add((logLevel, eventId, formatter(state, exception)));
            _timeline.Add($"{_clock.Elapsed.TotalMilliseconds,8:F1} ms {logLevel} {eventId.Id} {formatter(state, exception)}");
        }
    }
}

internal static class Wait
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Runs <paramref name="change"/> and returns how long it took until the store satisfied
    /// <paramref name="condition"/>; fails after <see cref="Timeout"/>.
    /// </summary>
    public static async Task<TimeSpan> ForStoreAsync(ClusterStore store, Action change, Func<ClusterSnapshot, bool> condition)
    {
        var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void Check()
        {
            if (condition(store.Snapshot()))
                reached.TrySetResult();
        }
        store.Changed += Check;
        try
        {
            var clock = Stopwatch.StartNew();
            change();
            Check();
            try
            {
                await reached.Task.WaitAsync(Timeout);
            }
            catch (TimeoutException)
            {
                Assert.Fail($"the store did not reach the expected state within {Timeout}");
            }
            return clock.Elapsed;
        }
        finally
        {
            store.Changed -= Check;
        }
    }

    /// <summary>Polls a condition that has no event (e.g. a read counter).</summary>
    public static async Task UntilAsync(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > Timeout)
                Assert.Fail($"{what} did not happen within {Timeout}");
            await Task.Delay(10);
        }
    }
}
