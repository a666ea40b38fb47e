using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Testing.KubeApi;

/// <summary>
/// An in-process Kubernetes API server (plain HTTP, Kestrel) serving services, endpointslices, networkpolicies,
/// pods, namespaces and nodes with the real wire format: lists with a resourceVersion, label/field selectors,
/// limit/continue pagination, chunked watch streams (ADDED/MODIFIED/DELETED/BOOKMARK/ERROR), 410 Expired after
/// <see cref="Compact"/>, and fault injection (dropped and stalled watches, failing requests, server down).
/// </summary>
/// <remarks>
/// <para>State is a fake etcd: one global resource version counter; every <see cref="Upsert{T}"/> or
/// <see cref="Delete{T}(string?, string)"/> takes the next one and is appended to the resource's history, from which
/// watches resume. All members are thread-safe. See <c>KubeApi/README.md</c> for the exact semantics and for how
/// KubernetesClient surfaces each fault.</para>
/// <para>Start it in the root namespace with <see cref="StartAsync"/> (for in-process clients) or inside a test
/// namespace with <see cref="StartInNamespaceAsync"/> (for the daemon running there).</para>
/// </remarks>
public sealed partial class FakeKubeApiServer : IAsyncDisposable
{
    /// <summary>The bearer token written by <see cref="WriteKubeconfig"/>.</summary>
    public const string Token = "fake-token";

    private readonly ObjectStore _store = new();
    private readonly Lock _watchGate = new();
    private readonly HashSet<WatchSession> _watches = [];
    private readonly ConcurrentQueue<KubeApiRequest> _log = new();
    private readonly Lock _faultGate = new();
    private readonly Queue<int> _faults = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Socket _listenSocket;
    private readonly ILogger? _logger;
    private WebApplication? _app;
    private bool _down;
    private bool _stalled;
    private long _bookmarkIntervalTicks = TimeSpan.FromSeconds(1).Ticks;
    private long _defaultWatchTimeoutTicks;
    private int _disposed;

    private FakeKubeApiServer(Socket listenSocket, NetNs? ns, ILogger? logger)
    {
        _listenSocket = listenSocket;
        Namespace = ns;
        _logger = logger;
        EndPoint = (IPEndPoint)listenSocket.LocalEndPoint!;
        IPAddress host = EndPoint.Address.Equals(IPAddress.Any) ? IPAddress.Loopback
            : EndPoint.Address.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback
            : EndPoint.Address;
        BaseAddress = new UriBuilder(Uri.UriSchemeHttp, host.ToString(), EndPoint.Port).Uri;
    }

    /// <summary>
    /// The address clients use, e.g. <c>http://127.0.0.1:41234/</c>. When bound to 0.0.0.0 (or ::) it names the
    /// loopback address, which is reachable only from the namespace the server lives in.
    /// </summary>
    public Uri BaseAddress { get; }

    /// <summary>The bound endpoint (the actual port when 0 was requested).</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>The namespace the listening socket lives in; null for the root namespace (<see cref="StartAsync"/>).</summary>
    public NetNs? Namespace { get; }

    /// <summary>The current (latest) global resource version.</summary>
    public long ResourceVersion => _store.ResourceVersion;

    /// <summary>The compaction horizon: watches from an older resource version get 410 Expired. Starts at 100.</summary>
    public long CompactedResourceVersion => _store.CompactedResourceVersion;

    /// <summary>Interval of BOOKMARK events on watches that asked for them (<c>allowWatchBookmarks</c>). Default 1 s.</summary>
    public TimeSpan BookmarkInterval
    {
        get => TimeSpan.FromTicks(Interlocked.Read(ref _bookmarkIntervalTicks));
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(value, TimeSpan.Zero);
            Interlocked.Exchange(ref _bookmarkIntervalTicks, value.Ticks);
        }
    }

    /// <summary>
    /// Server-side end of watch streams that did not send <c>timeoutSeconds</c>; null (default) = never.
    /// </summary>
    public TimeSpan? DefaultWatchTimeout
    {
        get => Interlocked.Read(ref _defaultWatchTimeoutTicks) is > 0 and long t ? TimeSpan.FromTicks(t) : null;
        set => Interlocked.Exchange(ref _defaultWatchTimeoutTicks, value is { } v && v > TimeSpan.Zero ? v.Ticks : 0);
    }

    /// <summary>True while <see cref="SetDown"/>(true) is in effect.</summary>
    public bool IsDown => Volatile.Read(ref _down);

    /// <summary>True while <see cref="StallWatches"/>(true) is in effect.</summary>
    public bool IsStalled => Volatile.Read(ref _stalled);

    /// <summary>Every request answered so far, in order (a snapshot).</summary>
    public IReadOnlyList<KubeApiRequest> RequestLog => _log.ToArray();

    /// <summary>Starts a server on 127.0.0.1 with an ephemeral port, in the root namespace.</summary>
    /// <param name="logger">Optional sink for Kestrel's and the server's own logs; none by default.</param>
    public static Task<FakeKubeApiServer> StartAsync(ILogger? logger = null)
    {
        Socket socket = CreateListenSocket(IPAddress.Loopback, 0);
        return StartCoreAsync(socket, null, logger);
    }

    /// <summary>
    /// Starts a server whose listening socket is created inside <paramref name="ns"/> (bound to
    /// <paramref name="bindAddress"/>:<paramref name="port"/>, 0 = ephemeral) and handed to Kestrel by file
    /// handle, so it is reachable only from that namespace (and whatever routes into it), never from the root one.
    /// </summary>
    /// <param name="ns">The namespace (e.g. a <see cref="Topology"/> node).</param>
    /// <param name="bindAddress">Address to bind, e.g. <see cref="IPAddress.Any"/>.</param>
    /// <param name="port">Port, or 0.</param>
    /// <param name="logger">Optional sink for Kestrel's and the server's own logs; none by default.</param>
    public static Task<FakeKubeApiServer> StartInNamespaceAsync(NetNs ns, IPAddress bindAddress, int port, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentNullException.ThrowIfNull(bindAddress);
        Socket socket = ns.Run(() => CreateListenSocket(bindAddress, port));
        return StartCoreAsync(socket, ns, logger);
    }

    /// <summary>
    /// Writes a kubeconfig (server = <see cref="BaseAddress"/>, <c>insecure-skip-tls-verify</c>, token
    /// <see cref="Token"/>, context namespace <c>default</c>) loadable by
    /// <see cref="KubernetesClientConfiguration.BuildConfigFromConfigFile(string, string, string, bool)"/>; returns the full path.
    /// </summary>
    public string WriteKubeconfig(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string server = BaseAddress.ToString().TrimEnd('/');
        string yaml = $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: fake
              cluster:
                server: {server}
                insecure-skip-tls-verify: true
            users:
            - name: fake
              user:
                token: {Token}
            contexts:
            - name: fake
              context:
                cluster: fake
                user: fake
                namespace: default
            current-context: fake

            """;
        string full = System.IO.Path.GetFullPath(path);
        File.WriteAllText(full, yaml);
        return full;
    }

    /// <summary>A client configuration for <see cref="BaseAddress"/> (usable from the namespace the server lives in;
    /// add <see cref="NetNsHttp.UseNetNs"/> to connect from another namespace).</summary>
    public KubernetesClientConfiguration CreateClientConfiguration() => new() { Host = BaseAddress.ToString() };

    /// <summary>A KubernetesClient for <see cref="BaseAddress"/> (see <see cref="CreateClientConfiguration"/>).</summary>
    public Kubernetes CreateClient() => new(CreateClientConfiguration());

    // ------------------------------------------------------------------ state

    /// <summary>
    /// Creates or replaces an object (keyed by resource, namespace, name) and emits ADDED or MODIFIED. Sets
    /// <c>apiVersion</c>, <c>kind</c>, <c>metadata.resourceVersion</c> (next global RV), <c>uid</c> and
    /// <c>creationTimestamp</c> (kept from the stored object on update), and <c>namespace</c> <c>default</c> for
    /// namespaced kinds. <paramref name="obj"/> is not modified; returns the stored copy.
    /// </summary>
    public T Upsert<T>(T obj) where T : IKubernetesObject<V1ObjectMeta>
    {
        ArgumentNullException.ThrowIfNull(obj);
        KubeResource resource = ResourceOf(obj.GetType());
        JsonObject json = JsonNode.Parse(KubernetesJson.Serialize(obj))!.AsObject();
        StoredObject stored = _store.Upsert(resource, json);
        return KubernetesJson.Deserialize<T>(stored.JsonText);
    }

    /// <summary>Deletes an object and emits DELETED (the last state with a new resource version). False if absent.</summary>
    /// <param name="ns">Namespace (null or empty = <c>default</c>); ignored for cluster-scoped kinds.</param>
    /// <param name="name">Object name.</param>
    public bool Delete<T>(string? ns, string name) where T : IKubernetesObject<V1ObjectMeta>
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return _store.Delete(ResourceOf(typeof(T)), ns, name) is not null;
    }

    /// <summary>Deletes the object with <paramref name="obj"/>'s kind, namespace and name; see <see cref="Delete{T}(string?, string)"/>.</summary>
    public bool Delete<T>(T obj) where T : IKubernetesObject<V1ObjectMeta>
    {
        ArgumentNullException.ThrowIfNull(obj);
        return _store.Delete(ResourceOf(obj.GetType()), obj.Metadata?.NamespaceProperty, obj.Metadata?.Name
            ?? throw new ArgumentException("metadata.name is missing", nameof(obj))) is not null;
    }

    /// <summary>A copy of the stored object, or null. <paramref name="ns"/> is ignored for cluster-scoped kinds.</summary>
    public T? Get<T>(string? ns, string name) where T : class, IKubernetesObject<V1ObjectMeta>
    {
        StoredObject? stored = _store.Get(ResourceOf(typeof(T)), ns, name);
        return stored is null ? null : KubernetesJson.Deserialize<T>(stored.JsonText);
    }

    /// <summary>Copies of all stored objects of a kind (optionally of one namespace), in key order.</summary>
    public IReadOnlyList<T> List<T>(string? ns = null) where T : IKubernetesObject<V1ObjectMeta>
    {
        return _store.List(ResourceOf(typeof(T))).Items
            .Where(o => ns is null || o.Namespace == ns)
            .Select(o => KubernetesJson.Deserialize<T>(o.JsonText))
            .ToArray();
    }

    /// <summary>
    /// Advances the compaction horizon to the current resource version and drops the history: watches from an
    /// older resource version, and continue tokens of older lists, now get 410 Expired. Open watches are unaffected.
    /// </summary>
    public void Compact() => _store.Compact();

    // ------------------------------------------------------------------ faults

    /// <summary>
    /// Aborts every open watch connection (no terminating chunk: the client sees a broken stream). They no longer
    /// count in <see cref="OpenWatchCount"/> when this returns.
    /// </summary>
    public void DropWatches()
    {
        // Under the lock: a session still in the set has not left its request handler, so aborting its HttpContext
        // cannot hit a later request that reuses the connection (HttpContext objects are pooled per connection).
        lock (_watchGate)
        {
            WatchSession[] sessions = [.. _watches];
            _watches.Clear();
            foreach (WatchSession s in sessions)
            {
                s.Abort();
            }
        }
    }

    /// <summary>
    /// True: every open watch, and every watch opened while stalled, goes silent: headers are sent but then no
    /// event, bookmark, error or end of stream, ever (also after <c>StallWatches(false)</c> and past
    /// <c>timeoutSeconds</c>); the changes it missed are only recoverable by a new watch or list. Such streams end
    /// only when the client closes them, on <see cref="DropWatches"/>, <see cref="SetDown"/>(true) or disposal.
    /// False: watches opened from now on behave normally. Lists and GETs are never affected.
    /// </summary>
    public void StallWatches(bool stalled)
    {
        lock (_watchGate)
        {
            _stalled = stalled;
            if (stalled)
            {
                foreach (WatchSession s in _watches)
                {
                    s.Mute();
                }
            }
        }
    }

    /// <summary>
    /// The next <paramref name="count"/> requests (any path, watches included) get <paramref name="statusCode"/>
    /// with a <c>Status</c> body instead of being served. Calls queue up.
    /// </summary>
    public void FailNextRequests(int count, int statusCode = 500)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(statusCode, 400);
        EnqueueFaults(count, statusCode);
    }

    /// <summary>The next <paramref name="count"/> requests are answered by closing the connection (no response).</summary>
    public void DropNextRequests(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        EnqueueFaults(count, 0);
    }

    /// <summary>
    /// True: every request gets 503 ServiceUnavailable with a <c>Status</c> body, and every open watch is aborted
    /// as by <see cref="DropWatches"/>. False: back to normal.
    /// </summary>
    public void SetDown(bool down)
    {
        lock (_watchGate)
        {
            _down = down;
        }
        if (down)
        {
            DropWatches();
        }
    }

    /// <summary>Forgets the requests logged so far.</summary>
    public void ClearRequestLog() => _log.Clear();

    /// <summary>Number of LIST requests (any outcome) for a resource (plural such as <c>services</c>, or kind).</summary>
    public int ListCount(string resource) => CountRequests(resource, "list");

    /// <summary>Number of WATCH requests (any outcome) for a resource (plural such as <c>services</c>, or kind).</summary>
    public int WatchCount(string resource) => CountRequests(resource, "watch");

    /// <summary>Number of watch streams currently open, for one resource or (null) all.</summary>
    public int OpenWatchCount(string? resource = null)
    {
        KubeResource? r = resource is null ? null : KubeResource.ForName(resource);
        lock (_watchGate)
        {
            return _watches.Count(s => r is null || s.Resource == r);
        }
    }

    /// <summary>Waits until at least <paramref name="count"/> watch streams of <paramref name="resource"/> are open; throws <see cref="TimeoutException"/>.</summary>
    public async Task WaitForWatchesAsync(string resource, int count = 1, TimeSpan? timeout = null)
    {
        DateTime deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (OpenWatchCount(resource) < count)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Expected {count} open watch(es) of {resource}, have {OpenWatchCount(resource)}.");
            }
            await Task.Delay(10).ConfigureAwait(false);
        }
    }

    /// <summary>Stops Kestrel (open watch streams end cleanly), then closes the listening socket. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_app is not null)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await _app.StopAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
            }
            await _app.DisposeAsync().ConfigureAwait(false);
        }
        _listenSocket.Dispose();
        _stopping.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() => $"FakeKubeApiServer {BaseAddress} ({Namespace?.Name ?? "root netns"})";

    // ------------------------------------------------------------------ internals

    private static Socket CreateListenSocket(IPAddress bindAddress, int port)
    {
        var socket = new Socket(bindAddress.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(new IPEndPoint(bindAddress, port));
            socket.Listen(512);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static async Task<FakeKubeApiServer> StartCoreAsync(Socket socket, NetNs? ns, ILogger? logger)
    {
        var server = new FakeKubeApiServer(socket, ns, logger);
        try
        {
            await server.StartKestrelAsync().ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task StartKestrelAsync()
    {
        WebApplicationBuilder builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions
        {
            ApplicationName = "EbpfProxy.Testing.FakeKubeApiServer",
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Services.AddLogging();
        // The default ConsoleLifetime would hook SIGINT/SIGTERM of the whole (test) process; this server is stopped by DisposeAsync only.
        builder.Services.AddSingleton<IHostLifetime, NoSignalsLifetime>();
        builder.Logging.ClearProviders();
        if (_logger is not null)
        {
            builder.Logging.AddProvider(new ForwardingLoggerProvider(_logger));
            builder.Logging.SetMinimumLevel(LogLevel.Trace); // the target logger's IsEnabled decides
        }
        builder.WebHost.UseKestrelCore();
        builder.WebHost.UseShutdownTimeout(TimeSpan.FromSeconds(3));
        builder.WebHost.ConfigureKestrel(options =>
        {
            options.AddServerHeader = false;
            // The socket was created (possibly inside another network namespace) and bound by us; Kestrel wraps the
            // descriptor without owning it (ownsHandle: false), so _listenSocket must stay alive until Kestrel stopped.
            options.ListenHandle((ulong)_listenSocket.Handle, listen => listen.Protocols = HttpProtocols.Http1);
        });
        _app = builder.Build();
        _app.Run(HandleAsync);
        await _app.StartAsync(_stopping.Token).ConfigureAwait(false);
    }

    private void EnqueueFaults(int count, int statusCode)
    {
        lock (_faultGate)
        {
            for (int i = 0; i < count; i++)
            {
                _faults.Enqueue(statusCode);
            }
        }
    }

    private int? TakeFault()
    {
        lock (_faultGate)
        {
            return _faults.TryDequeue(out int code) ? code : null;
        }
    }

    private int CountRequests(string resource, string verb)
    {
        string plural = KubeResource.ForName(resource).Plural;
        return _log.Count(r => r.Verb == verb && r.Resource == plural);
    }

    private static KubeResource ResourceOf(Type type) => KubeResource.ForModel(type)
        ?? throw new ArgumentException($"{type.Name} is not served by FakeKubeApiServer (served: {string.Join(", ", KubeResource.All.Select(r => r.ModelType.Name))}).");

    private sealed class NoSignalsLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class ForwardingLoggerProvider(ILogger target) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => target;

        public void Dispose()
        {
        }
    }
}
