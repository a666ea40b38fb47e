using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Metrics;
using EbpfProxy.Kubernetes.Api;
using EbpfProxy.Testing.KubeApi;
using k8s;
using k8s.Models;
using Xunit.Abstractions;

namespace EbpfProxy.Kubernetes.Tests.Api;

/// <summary>
/// A fake API server, a real KubernetesClient pointed at it, a store, metrics and a logger; runs
/// informers and stops them (checking they ended cleanly) on dispose, then prints the log.
/// </summary>
internal sealed class ApiHarness : IAsyncDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<(IResourceInformer Informer, Task Run)> _runs = [];

    private ApiHarness(ITestOutputHelper output, FakeKubeApiServer server)
    {
        _output = output;
        Server = server;
        Client = server.CreateClient();
        Recorder = new MetricsRecorder(Metrics);
    }

    public FakeKubeApiServer Server { get; }
    public IKubernetes Client { get; }
    public ClusterStore Store { get; } = new();
    public ProxyMetrics Metrics { get; } = new();
    public MetricsRecorder Recorder { get; }
    public ListLogger Logger { get; } = new();
    public CancellationToken Stopping => _stop.Token;

    public static async Task<ApiHarness> StartAsync(ITestOutputHelper output) =>
        new(output, await FakeKubeApiServer.StartAsync());

    /// <summary>Options for tests: quick backoff, and timeouts long enough never to fire unless a test wants them to.</summary>
    public static ResourceInformerOptions Options(Action<ResourceInformerOptions>? configure = null)
    {
        var options = new ResourceInformerOptions
        {
            InitialBackoff = TimeSpan.FromMilliseconds(100),
            MaxBackoff = TimeSpan.FromSeconds(1),
            SilentWatchGrace = TimeSpan.FromSeconds(30),
            WatchTimeout = TimeSpan.FromMinutes(5),
            ListRequestTimeout = TimeSpan.FromSeconds(10),
        };
        configure?.Invoke(options);
        return options;
    }

    public ResourceInformer<V1Service, V1ServiceList> Services(ResourceInformerOptions? options = null, TimeProvider? time = null) =>
        new(KubernetesResources.Services, Client, Store, Metrics, Logger, time ?? TimeProvider.System, options ?? Options());

    /// <summary>Starts <paramref name="informer"/>'s run loop; stopped on dispose.</summary>
    public T Run<T>(T informer) where T : IResourceInformer
    {
        _runs.Add((informer, Task.Run(() => informer.RunAsync(_stop.Token))));
        return informer;
    }

    /// <summary>Runs a services informer and waits for its first list.</summary>
    public async Task<ResourceInformer<V1Service, V1ServiceList>> RunSyncedServicesAsync(ResourceInformerOptions? options = null)
    {
        var informer = Run(Services(options));
        await Eventually.ThatAsync(() => informer.HasSynced, "the services informer listed");
        return informer;
    }

    public static V1Service Service(string name, string clusterIp = "10.96.0.10") =>
        WithClusterIp(K8s.Service(name, K8s.Labels("app=" + name), K8s.Port("http", 80)), clusterIp);

    public static V1Service WithClusterIp(V1Service service, string clusterIp)
    {
        service.Spec.ClusterIP = clusterIp;
        return service;
    }

    public ISet<string> ServiceKeys() => Store.Snapshot().Services.Keys.ToHashSet();

    public Task ServicesAreAsync(params string[] names) =>
        Eventually.ThatAsync(() => ServiceKeys().SetEquals(names.Select(n => "default/" + n)),
            () => $"the store holds exactly services {string.Join(", ", names)} (has {string.Join(", ", ServiceKeys())})");

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            foreach (var (informer, run) in _runs)
            {
                // RunAsync never throws, and stops promptly when cancelled.
                await run.WaitAsync(TimeSpan.FromSeconds(10));
                Assert.True(run.IsCompletedSuccessfully, $"the {informer.Resource} informer ended with {run.Status}");
            }
        }
        finally
        {
            foreach (var line in Logger.Timeline)
                _output.WriteLine(line);
            Recorder.Dispose();
            Metrics.Dispose();
            Client.Dispose();
            await Server.DisposeAsync();
            _stop.Dispose();
        }
    }
}

/// <summary>Records the watch counters of one <see cref="ProxyMetrics"/> instance.</summary>
internal sealed class MetricsRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentQueue<(string Instrument, long Value, Dictionary<string, string?> Tags)> _measurements = new();

    public MetricsRecorder(ProxyMetrics metrics)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            // Other tests' ProxyMetrics share the meter name: follow only this instance's counters.
            if (ReferenceEquals(instrument, metrics.WatchRestarts) || ReferenceEquals(instrument, metrics.WatchErrors))
                listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            var map = new Dictionary<string, string?>(StringComparer.Ordinal);
            foreach (var tag in tags)
                map[tag.Key] = tag.Value?.ToString();
            _measurements.Enqueue((instrument.Name, value, map));
        });
        _listener.Start();
    }

    public long Restarts(string resource, string reason) => Sum("ebpfproxy_watch_restarts_total",
        t => t.GetValueOrDefault("resource") == resource && t.GetValueOrDefault("reason") == reason);

    public long Errors(string resource) => Sum("ebpfproxy_watch_errors_total", t => t.GetValueOrDefault("resource") == resource);

    public string Describe() => string.Join("; ", _measurements
        .GroupBy(m => $"{m.Instrument}{{{string.Join(",", m.Tags.OrderBy(t => t.Key).Select(t => $"{t.Key}={t.Value}"))}}}")
        .Select(g => $"{g.Key}={g.Sum(m => m.Value)}"));

    private long Sum(string instrument, Func<Dictionary<string, string?>, bool> match) =>
        _measurements.Where(m => m.Instrument == instrument && match(m.Tags)).Sum(m => m.Value);

    public void Dispose() => _listener.Dispose();
}

internal static class Eventually
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(15);

    /// <summary>Polls <paramref name="condition"/> until it holds; fails with <paramref name="what"/> after the deadline.</summary>
    public static Task ThatAsync(Func<bool> condition, string what, TimeSpan? timeout = null) =>
        ThatAsync(condition, () => what, timeout);

    /// <summary>As above, with a description computed at failure time (so it can show the last state).</summary>
    public static async Task ThatAsync(Func<bool> condition, Func<string> what, TimeSpan? timeout = null)
    {
        var deadline = timeout ?? DefaultTimeout;
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > deadline)
                Assert.Fail($"expected within {deadline}: {what()}");
            await Task.Delay(10);
        }
    }
}
