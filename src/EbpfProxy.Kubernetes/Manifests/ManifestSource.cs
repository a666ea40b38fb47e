using System.Collections.Immutable;
using System.Runtime.InteropServices;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Health;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Kubernetes.Manifests;

/// <summary>
/// Feeds the <see cref="ClusterStore"/> from a directory of Kubernetes manifests: the standalone
/// mode's source of Services, EndpointSlices, Pods, NetworkPolicies and Namespaces, and the demo's and tests'.
/// </summary>
/// <remarks>
/// <para>
/// Reads every <c>*.yaml</c>, <c>*.yml</c> and <c>*.json</c> file directly in the directory
/// (not in subdirectories; dotfiles are skipped) with <see cref="ManifestParser"/>, derives
/// EndpointSlices for selector Services that have none with <see cref="EndpointSliceSynthesizer"/>,
/// and hands the full set to <see cref="ClusterStore.ReplaceAll"/>, which drops unchanged
/// objects. Registers as source <see cref="SourceName"/> when constructed and marks it synced
/// after the first complete read of the directory (one that found the directory; files with
/// errors do not hold the sync back, they are reported).
/// </para>
/// <para>
/// Follows edits without a restart: a FileSystemWatcher pokes a read after a short quiet period,
/// and a poll compares the listing (names, sizes, times, symlink targets) every
/// <see cref="ManifestSourceOptions.PollInterval"/>, because watchers miss events (editors that
/// write a temporary file and rename it, ConfigMap volumes that swap a symlink).
/// </para>
/// <para>
/// Bad input only affects itself: a file that does not parse keeps its last good content, an
/// invalid object is skipped, and both appear in <see cref="Errors"/> until fixed. A directory
/// that disappears keeps the objects last read from it (an unmounted volume should not read as
/// "no services"); delete the files to remove objects.
/// </para>
/// </remarks>
public sealed partial class ManifestSource : BackgroundService
{
    /// <summary>The name this source registers with the store.</summary>
    public const string SourceName = "manifests";

    private readonly ClusterStore _store;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ManifestSourceOptions _options;
    private readonly ProxyStatus? _status;

    // Everything below the gate is owned by whoever holds it: one read at a time.
    private readonly Lock _readGate = new();
    private SortedDictionary<string, FileEntry> _files = new(StringComparer.Ordinal);
    private string? _lastFingerprint;
    private long _lastReadTimestamp;
    private bool _synced;
    private bool _directoryProblemReported;
    private long? _firstReadStarted;
    private readonly Dictionary<string, string> _owners = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Task<(string Content, (ManifestFile? File, ManifestError? Error)? Parsed)>> _slowReads = new(StringComparer.Ordinal);

    private volatile ManifestError[] _errors = [];
    private long _readCount;
    private long _lastReadAtTicks;

    // Poked by watcher callbacks, consumed by the loop. Replaced, never reset.
    private TaskCompletionSource _poke = NewPoke();

    // Owned by the loop.
    private FileSystemWatcher? _watcher;
    private volatile bool _watcherBroken;
    private bool _watcherFailureReported;

    /// <param name="directory">The manifest directory; need not exist yet.</param>
    /// <param name="store">The store to feed; this source registers with it here.</param>
    /// <param name="logger">Logger for read results and manifest errors.</param>
    /// <param name="timeProvider">Clock for polling and debouncing.</param>
    /// <param name="options">Timing; defaults when null. Validated here.</param>
    /// <param name="status">Where `ebpf-proxy status` reads the manifest errors; none when null.</param>
    public ManifestSource(string directory, ClusterStore store, ILogger logger, TimeProvider timeProvider, ManifestSourceOptions? options = null, ProxyStatus? status = null)
    {
        _status = status;
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentNullException.ThrowIfNull(timeProvider);
        options ??= new ManifestSourceOptions();
        options.Validate();

        Directory = Path.GetFullPath(directory);
        _store = store;
        _logger = logger;
        _time = timeProvider;
        _options = options;
        _store.RegisterSource(SourceName);
    }

    /// <summary>Full path of the manifest directory.</summary>
    public string Directory { get; }

    /// <summary>The problems of the last read: files that do not parse, invalid objects, conflicts.</summary>
    public ImmutableArray<ManifestError> Errors => ImmutableCollectionsMarshal.AsImmutableArray(_errors);

    /// <summary>How many times the directory has been read, whether or not anything changed.</summary>
    public long ReadCount => Interlocked.Read(ref _readCount);

    /// <summary>When the directory was last read, or null before the first read.</summary>
    public DateTimeOffset? LastReadAt => Interlocked.Read(ref _lastReadAtTicks) is var ticks and not 0
        ? new DateTimeOffset(ticks, TimeSpan.Zero)
        : null;

    /// <summary>
    /// Reads the directory now and applies it to the store. The background loop calls this; it is
    /// public for one-shot use (a CLI that only wants the objects) and for tests.
    /// </summary>
    public void ReadNow()
    {
        lock (_readGate)
            ReadLocked();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        Log.Starting(_logger, Directory, _options.PollInterval, _options.UseFileSystemWatcher);
        try
        {
            // Watch before the first read, so nothing written in between goes unnoticed.
            UpdateWatcher();
            SafeRead();
            while (true)
            {
                if (await WaitForPokeAsync(_options.PollInterval, stoppingToken).ConfigureAwait(false))
                {
                    await DebounceAsync(stoppingToken).ConfigureAwait(false);
                    SafeRead();
                    continue;
                }
                UpdateWatcher();
                SafePollRead();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            _watcher?.Dispose();
            _watcher = null;
        }
    }

    private void SafeRead()
    {
        try
        {
            ReadNow();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.ReadFailed(_logger, Directory, ex);
        }
    }

    private void SafePollRead()
    {
        try
        {
            lock (_readGate)
            {
                var due = _time.GetElapsedTime(_lastReadTimestamp) >= _options.FullReadInterval;
                if (due || SettleDue() || DirectoryFingerprint.Compute(Directory) != _lastFingerprint)
                    ReadLocked();
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.ReadFailed(_logger, Directory, ex);
        }
    }

    private void ReadLocked()
    {
        var started = _time.GetTimestamp();
        // Taken before the files are read: a change during the read shows up at the next poll.
        var fingerprint = DirectoryFingerprint.Compute(Directory);

        List<string> paths;
        try
        {
            paths = System.IO.Directory.EnumerateFiles(Directory)
                .Where(path => ManifestParser.IsManifestFileName(Path.GetFileName(path)))
                .Order(StringComparer.Ordinal)
                .ToList();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            FinishRead(fingerprint);
            var missing = ex is DirectoryNotFoundException;
            if (!_directoryProblemReported)
            {
                _directoryProblemReported = true;
                if (missing)
                    Log.DirectoryMissing(_logger, Directory, _synced);
                else
                    Log.DirectoryUnreadable(_logger, Directory, ex);
            }
            var reason = missing ? "directory does not exist" : $"cannot list the directory: {ex.Message}";
            PublishErrors([new ManifestError(Directory, null, null, _synced
                ? $"{reason}; keeping the objects read from it before"
                : $"{reason}; nothing is read until it can be")]);
            return;
        }
        _directoryProblemReported = false;

        var next = new SortedDictionary<string, FileEntry>(StringComparer.Ordinal);
        foreach (var path in paths)
        {
            _files.TryGetValue(path, out var previous);
            var outcome = ReadAndParse(path, previous);
            if (outcome is null)
                continue; // removed since the listing (or a dangling symlink): as if deleted
            next[path] = outcome;
        }
        foreach (var path in _slowReads.Keys.Where(p => !next.ContainsKey(p) && _slowReads[p].IsCompleted).ToList())
            _slowReads.Remove(path);
        _files = next;
        Apply(started);
        FinishRead(fingerprint);
    }

    /// <summary>
    /// Reads and parses one file within the limits and the time bound, and decides what it now
    /// contributes. Null when the file is gone.
    /// </summary>
    private FileEntry? ReadAndParse(string path, FileEntry? previous)
    {
        if (_slowReads.TryGetValue(path, out var slow))
        {
            if (!slow.IsCompleted)
                return Failed(previous, new ManifestError(path, null, null,
                    $"still being read after more than {_options.FileReadTimeout.TotalSeconds:0.#} s{Kept(previous?.Good)}"));
            _slowReads.Remove(path);
        }

        // Read and parse off the loop's thread: a file on a stalled file system, or one that is
        // slow to parse within the limits, costs this file a timeout, not the folder its reads.
        var previousContent = previous?.Content;
        // A thread of its own, not the pool's: this thread blocks on it, and pool threads that
        // wait for pool work starve when many do (tests in parallel, a busy node).
        var work = Task.Factory.StartNew<(string Content, (ManifestFile? File, ManifestError? Error)? Parsed)>(() =>
        {
            var content = ManifestFileReader.Read(path, _options.Limits);
            return content == previousContent ? (content, null) : (content, ParseOrError(path, content));
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            if (!work.Wait(_options.FileReadTimeout))
            {
                _slowReads[path] = work;
                _ = work.ContinueWith(_ => Poke(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                return Failed(previous, new ManifestError(path, null, null,
                    $"reading and parsing took longer than {_options.FileReadTimeout.TotalSeconds:0.#} s{Kept(previous?.Good)}"));
            }
        }
        catch (AggregateException)
        {
        }

        if (work.Exception?.InnerException is { } ex)
        {
            return ex switch
            {
                FileNotFoundException or DirectoryNotFoundException => null,
                ManifestReadException => Failed(previous, new ManifestError(path, null, null, ex.Message + Kept(previous?.Good))),
                IOException or UnauthorizedAccessException => Failed(previous, new ManifestError(path, null, null,
                    $"cannot read the file: {ex.Message}{Kept(previous?.Good)}")),
                _ => Failed(previous, new ManifestError(path, null, null, $"unexpected failure reading the file: {ex.Message}{Kept(previous?.Good)}")),
            };
        }

        var (text, parsed) = work.Result;
        if (parsed is null)
        {
            // Same text as the last read. A drop of objects waiting to settle applies once the
            // text has stayed the same for the settle time.
            var same = previous! with { ReadFailure = null };
            if (same.Pending is { } pending && _time.GetElapsedTime(pending.Since) >= _options.SettleTime)
                same = same with { Good = pending.File, Pending = null };
            return same;
        }
        if (parsed.Value.Error is { } parseFailure)
            return new FileEntry(text, previous?.Good, parseFailure with { Message = parseFailure.Message + Kept(previous?.Good) }, null);

        var file = parsed.Value.File!;
        foreach (var ignored in file.Ignored)
            Log.IgnoredKind(_logger, ignored.Kind, ignored.ApiVersion, ignored.Name ?? "", path, ignored.Document);
        if (previous?.Good is { } good && _options.SettleTime > TimeSpan.Zero && Suspect(good, file))
        {
            // Truncated or half-written: the objects it no longer has stay until the new text
            // has been stable for the settle time (issue 14 item 5: a file truncated and
            // rewritten 0.3 s later must not delete its Service in between).
            Log.SettlePending(_logger, path, _options.SettleTime);
            return new FileEntry(text, good, null, null, new PendingContent(file, _time.GetTimestamp()));
        }
        return new FileEntry(text, file, null, null);
    }

    private static FileEntry Failed(FileEntry? previous, ManifestError readFailure) => previous is null
        ? new FileEntry(null, null, null, readFailure)
        : previous with { ReadFailure = readFailure };

    private (ManifestFile? File, ManifestError? Error) ParseOrError(string path, string content)
    {
        try
        {
            return (ManifestParser.Parse(path, content, _options.Limits), null);
        }
        catch (ManifestFormatException ex)
        {
            return (null, new ManifestError(ex.File, ex.Document, ex.ObjectName, ex.Reason));
        }
    }

    /// <summary>
    /// True when <paramref name="next"/> looks like a file caught in the middle of a rewrite: it
    /// lacks objects that <paramref name="before"/> had, and it either holds no object at all (a
    /// truncated file) or has objects that do not validate (a half-written last object). A valid
    /// file with fewer objects (scaling down by an edit) is not suspect and applies at once.
    /// </summary>
    private static bool Suspect(ManifestFile before, ManifestFile next)
    {
        var empty = next.Services.IsEmpty && next.EndpointSlices.IsEmpty && next.Pods.IsEmpty && next.NetworkPolicies.IsEmpty
            && next.Namespaces.IsEmpty && next.Nodes.IsEmpty && next.Ignored.IsEmpty;
        return (empty || !next.Errors.IsEmpty) && Drops(before, next);
    }

    /// <summary>True when <paramref name="next"/> lacks an object that <paramref name="before"/> had.</summary>
    private static bool Drops(ManifestFile before, ManifestFile next)
    {
        static IEnumerable<string> Keys(ManifestFile f) =>
            f.Services.Select(o => "Service " + ClusterStore.KeyOf(o))
                .Concat(f.EndpointSlices.Select(o => "EndpointSlice " + ClusterStore.KeyOf(o)))
                .Concat(f.Pods.Select(o => "Pod " + ClusterStore.KeyOf(o)))
                .Concat(f.NetworkPolicies.Select(o => "NetworkPolicy " + ClusterStore.KeyOf(o)))
                .Concat(f.Namespaces.Select(o => "Namespace " + ClusterStore.KeyOf(o)))
                .Concat(f.Nodes.Select(o => "Node " + ClusterStore.KeyOf(o)));
        var kept = Keys(next).ToHashSet(StringComparer.Ordinal);
        return Keys(before).Any(k => !kept.Contains(k));
    }

    /// <summary>True when a file waits to settle and its time is up: the poll should read.</summary>
    private bool SettleDue() => _files.Values.Any(f => f.Pending is { } p && _time.GetElapsedTime(p.Since) >= _options.SettleTime);

    /// <summary>Merges the files' objects, derives slices, and replaces the store's content.</summary>
    private void Apply(long started)
    {
        var errors = new List<ManifestError>();
        var services = new Dictionary<string, (V1Service Object, string File)>(StringComparer.Ordinal);
        var slices = new Dictionary<string, (V1EndpointSlice Object, string File)>(StringComparer.Ordinal);
        var pods = new Dictionary<string, (V1Pod Object, string File)>(StringComparer.Ordinal);
        var policies = new Dictionary<string, (V1NetworkPolicy Object, string File)>(StringComparer.Ordinal);
        var namespaces = new Dictionary<string, (V1Namespace Object, string File)>(StringComparer.Ordinal);
        var nodes = new Dictionary<string, (V1Node Object, string File)>(StringComparer.Ordinal);

        foreach (var (path, entry) in _files)
        {
            if (entry.ParseFailure is not null)
                errors.Add(entry.ParseFailure);
            if (entry.ReadFailure is not null)
                errors.Add(entry.ReadFailure);
            if (entry.Good is not { } good)
                continue;
            errors.AddRange(good.Errors);
            Merge(good.Services, "Service", path, services, errors);
            Merge(good.EndpointSlices, "EndpointSlice", path, slices, errors);
            Merge(good.Pods, "Pod", path, pods, errors);
            Merge(good.NetworkPolicies, "NetworkPolicy", path, policies, errors);
            Merge(good.Namespaces, "Namespace", path, namespaces, errors);
            Merge(good.Nodes, "Node", path, nodes, errors);
        }

        var explicitSlices = slices.Values.Select(s => s.Object).ToList();
        var derived = EndpointSliceSynthesizer.Synthesize(
            services.Values.Select(s => s.Object).ToList(), explicitSlices, pods.Values.Select(p => p.Object).ToList(),
            nodes.Values.Select(n => n.Object).ToList());
        var allSlices = new List<V1EndpointSlice>(explicitSlices);
        foreach (var slice in derived)
        {
            var key = ClusterStore.KeyOf(slice);
            if (slices.TryGetValue(key, out var taken))
            {
                errors.Add(new ManifestError(taken.File, null, $"EndpointSlice {key}",
                    "this name is the one derived for its service's pods; the derived slice is not published"));
                continue;
            }
            allSlices.Add(slice);
        }

        _owners.Clear();
        RememberOwners("Service", services);
        RememberOwners("EndpointSlice", slices);
        RememberOwners("Pod", pods);
        RememberOwners("NetworkPolicy", policies);
        RememberOwners("Namespace", namespaces);
        RememberOwners("Node", nodes);

        // Errors first: whoever reacts to the store's Changed event sees the matching Errors.
        PublishErrors(errors);
        var before = _store.Snapshot().Version;
        _store.ReplaceKind(nodes.Values.Select(n => n.Object));
        _store.ReplaceKind(namespaces.Values.Select(n => n.Object));
        _store.ReplaceKind(policies.Values.Select(p => p.Object));
        _store.ReplaceAll(services.Values.Select(s => s.Object), allSlices, pods.Values.Select(p => p.Object));
        var changed = _store.Snapshot().Version != before;

        var elapsed = _time.GetElapsedTime(started).TotalMilliseconds;
        if (changed || !_synced)
            Log.Applied(_logger, Directory, _files.Count, services.Count, allSlices.Count, allSlices.Count - explicitSlices.Count, pods.Count, errors.Count, elapsed);
        else
            Log.Unchanged(_logger, Directory, _files.Count, elapsed);

        // A file still being read past the time limit holds the first sync back for a while
        // (a busy node's first parse can be slow): its objects should not be missing from the
        // first programming. A read stuck for good does not hold it forever.
        _firstReadStarted ??= started;
        var slowPending = _slowReads.Values.Any(t => !t.IsCompleted)
            && _time.GetElapsedTime(_firstReadStarted.Value) < 4 * _options.FileReadTimeout;
        if (!_synced && !slowPending)
        {
            _synced = true;
            _store.MarkSynced(SourceName);
            // The store compares objects without a resourceVersion (all manifest objects) by
            // serializing them; warm that path now so the first edit does not pay its JIT cost.
            var samples = new List<object>();
            if (services.Count > 0)
                samples.Add(services.Values.First().Object);
            if (allSlices.Count > 0)
                samples.Add(allSlices[0]);
            if (pods.Count > 0)
                samples.Add(pods.Values.First().Object);
            _ = Task.Run(() =>
            {
                foreach (var o in samples)
                    _ = KubernetesJson.Serialize(o);
            });
        }
    }

    /// <summary>
    /// Adds one file's objects of one kind, deciding duplicates the way the API server would: the
    /// copy created first stands (the API refuses to create a second object of the same name), so
    /// the earlier <c>metadata.creationTimestamp</c> wins; without timestamps, the copy already in
    /// use from the previous read stays (a new file must not take over a live Service's VIP just
    /// because its name sorts first); only then does file order decide. Both files get an error.
    /// </summary>
    private void Merge<T>(
        ImmutableArray<T> objects, string kind, string path, Dictionary<string, (T Object, string File)> into, List<ManifestError> errors)
        where T : IKubernetesObject<V1ObjectMeta>
    {
        foreach (var obj in objects)
        {
            var key = ClusterStore.KeyOf(obj);
            var id = $"{kind} {key}";
            if (!into.TryGetValue(key, out var first))
            {
                into[key] = (obj, path);
                continue;
            }
            var byTime = Earlier(obj, first.Object);
            var incumbent = _owners.TryGetValue(id, out var owner) ? owner : null;
            var challengerWins = byTime ?? (incumbent == path && first.File != path);
            (T Object, string File) used = challengerWins ? (obj, path) : first;
            var ignoredFile = challengerWins ? first.File : path;
            var why = byTime is not null ? "created earlier"
                : incumbent == used.File ? "in use before the other appeared"
                : "its file sorts first";
            errors.Add(new ManifestError(ignoredFile, null, id,
                $"also defined in {Path.GetFileName(used.File)}, whose copy is used ({why}); this copy is ignored"));
            errors.Add(new ManifestError(used.File, null, id,
                $"also defined in {Path.GetFileName(ignoredFile)}; this copy is used ({why}), the other is ignored"));
            into[key] = used;
        }
    }

    /// <summary>True when <paramref name="a"/> was created before <paramref name="b"/>, false after; null when that is unknown.</summary>
    private static bool? Earlier(IKubernetesObject<V1ObjectMeta> a, IKubernetesObject<V1ObjectMeta> b) =>
        (a.Metadata?.CreationTimestamp, b.Metadata?.CreationTimestamp) switch
        {
            ({ } x, { } y) when x != y => x < y,
            ({ }, null) => true,
            (null, { }) => false,
            _ => null,
        };

    /// <summary>Remembers which file each object came from, for the next read's duplicate decisions.</summary>
    private void RememberOwners<T>(string kind, Dictionary<string, (T Object, string File)> objects)
    {
        foreach (var (key, (_, file)) in objects)
            _owners[$"{kind} {key}"] = file;
    }

    private void FinishRead(string fingerprint)
    {
        _lastFingerprint = fingerprint;
        _lastReadTimestamp = _time.GetTimestamp();
        Interlocked.Exchange(ref _lastReadAtTicks, _time.GetUtcNow().UtcTicks);
        Interlocked.Increment(ref _readCount);
    }

    /// <summary>Logs errors that are new since the last read and files whose errors went away.</summary>
    private void PublishErrors(List<ManifestError> errors)
    {
        var previous = _errors;
        var known = previous.ToHashSet();
        foreach (var error in errors)
        {
            if (!known.Contains(error))
                Log.ManifestProblem(_logger, error.File, error.Location());
        }
        var failing = errors.Select(e => e.File).ToHashSet(StringComparer.Ordinal);
        foreach (var file in previous.Select(e => e.File).Distinct(StringComparer.Ordinal))
        {
            if (!failing.Contains(file))
                Log.ProblemsResolved(_logger, file);
        }
        _errors = [.. errors];
        _status?.Update(r => r with { ManifestErrors = [.. errors.Select(e => e.ToString())] });
    }

    private static string Kept(ManifestFile? previousGood) => previousGood is null
        ? "; nothing from this file is used"
        : "; keeping this file's previous content";

    // ---- waking up: watcher pokes, poll ticks ----

    private static TaskCompletionSource NewPoke() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private void Poke() => Volatile.Read(ref _poke).TrySetResult();

    private void ConsumePoke()
    {
        if (Volatile.Read(ref _poke).Task.IsCompleted)
            Interlocked.Exchange(ref _poke, NewPoke());
    }

    /// <summary>True when poked before <paramref name="timeout"/> elapsed.</summary>
    private async Task<bool> WaitForPokeAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var poke = Volatile.Read(ref _poke).Task;
        if (poke.IsCompleted)
            return true;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var delay = Task.Delay(timeout, _time, stop.Token);
        var first = await Task.WhenAny(poke, delay).ConfigureAwait(false);
        await stop.CancelAsync().ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        return first == poke;
    }

    /// <summary>Waits until events stop for <see cref="ManifestSourceOptions.Debounce"/>, at most <see cref="ManifestSourceOptions.MaxDebounce"/>.</summary>
    private async Task DebounceAsync(CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        while (true)
        {
            ConsumePoke();
            var remaining = _options.MaxDebounce - _time.GetElapsedTime(started);
            var quiet = remaining < _options.Debounce ? remaining : _options.Debounce;
            if (quiet <= TimeSpan.Zero || !await WaitForPokeAsync(quiet, cancellationToken).ConfigureAwait(false))
                return;
        }
    }

    /// <summary>Creates the watcher when the directory exists, and replaces a broken one.</summary>
    private void UpdateWatcher()
    {
        if (!_options.UseFileSystemWatcher)
            return;
        var exists = System.IO.Directory.Exists(Directory);
        if (_watcher is not null && (!exists || _watcherBroken))
        {
            _watcher.Dispose();
            _watcher = null;
        }
        if (_watcher is not null || !exists)
            return;

        _watcherBroken = false;
        try
        {
            var watcher = new FileSystemWatcher(Directory)
            {
                IncludeSubdirectories = false,
                NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite
                    | NotifyFilters.Size | NotifyFilters.CreationTime,
            };
            // Every entry counts, not only *.yaml: a ConfigMap volume swaps "..data".
            watcher.Created += OnWatcherEvent;
            watcher.Changed += OnWatcherEvent;
            watcher.Deleted += OnWatcherEvent;
            watcher.Renamed += OnWatcherEvent;
            watcher.Error += OnWatcherError;
            watcher.EnableRaisingEvents = true;
            _watcher = watcher;
            if (_watcherFailureReported)
            {
                _watcherFailureReported = false;
                Log.WatcherRestored(_logger, Directory);
            }
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            if (!_watcherFailureReported)
            {
                _watcherFailureReported = true;
                Log.WatcherUnavailable(_logger, Directory, _options.PollInterval, ex);
            }
        }
    }

    private void OnWatcherEvent(object sender, FileSystemEventArgs e) => Poke();

    private void OnWatcherError(object sender, ErrorEventArgs e)
    {
        _watcherBroken = true;
        Log.WatcherFailed(_logger, Directory, e.GetException());
        Poke();
    }

    /// <summary>What is known of one file: its last content, its last good parse, and what went wrong.</summary>
    private sealed record FileEntry(string? Content, ManifestFile? Good, ManifestError? ParseFailure, ManifestError? ReadFailure, PendingContent? Pending = null);

    /// <summary>A parse that drops objects, applied once the file has kept the same text since <paramref name="Since"/> for the settle time.</summary>
    private sealed record PendingContent(ManifestFile File, long Since);
}
