using System.Text;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Kubernetes.Manifests;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace EbpfProxy.Kubernetes.Tests;

public sealed class ManifestSourceTests : IAsyncLifetime
{
    // Generous bound for CI machines; the measured value is printed. The target is well under 1 s.
    private static readonly TimeSpan EditLatencyBound = TimeSpan.FromSeconds(2);

    private readonly ITestOutputHelper _output;
    private readonly TempDirectory _dir = new();
    private readonly ClusterStore _store = new();
    private readonly ListLogger _logger = new();
    private readonly List<ManifestSource> _started = [];

    public ManifestSourceTests(ITestOutputHelper output) => _output = output;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var line in _logger.Timeline)
            _output.WriteLine(line);
        foreach (var source in _started)
        {
            await source.StopAsync(CancellationToken.None);
            source.Dispose();
        }
        _dir.Dispose();
    }

    /// <summary>The demo's echo service (two ports) and <paramref name="pods"/> ready pods, one multi-document file.</summary>
    private static string EchoYaml(int pods)
    {
        var yaml = new StringBuilder("""
            apiVersion: v1
            kind: Service
            metadata:
              name: echo
            spec:
              clusterIP: 10.96.0.42
              selector:
                app: echo
              ports:
              - name: http
                port: 80
                protocol: TCP
                targetPort: 8080
              - name: udp
                port: 80
                protocol: UDP
                targetPort: 8080

            """);
        for (var i = 1; i <= pods; i++)
        {
            yaml.Append($"""
                ---
                apiVersion: v1
                kind: Pod
                metadata:
                  name: echo-{i}
                  labels:
                    app: echo
                spec:
                  nodeName: node-1
                  containers:
                  - name: echo
                    image: echo
                status:
                  phase: Running
                  podIP: 10.244.0.{10 + i}
                  conditions:
                  - type: Ready
                    status: "True"

                """);
        }
        return yaml.ToString();
    }

    private static string ServiceYaml(string name, string clusterIP) => $"""
        apiVersion: v1
        kind: Service
        metadata: {"{"}name: {name}{"}"}
        spec:
          clusterIP: {clusterIP}
          ports: [{"{"}port: 80{"}"}]

        """;

    private ManifestSource NewSource(ManifestSourceOptions? options = null, string? directory = null) =>
        new(directory ?? _dir.Path, _store, _logger, TimeProvider.System, options);

    private async Task<ManifestSource> StartAsync(ManifestSourceOptions? options = null, string? directory = null)
    {
        var source = NewSource(options, directory);
        _started.Add(source);
        await source.StartAsync(CancellationToken.None);
        return source;
    }

    private static List<string> ReadyAddresses(ClusterSnapshot snapshot, string service = "echo") =>
        snapshot.EndpointSlices.Values
            .Where(s => s.Metadata.Labels is { } labels && labels.TryGetValue("kubernetes.io/service-name", out var name) && name == service)
            .SelectMany(s => s.Endpoints)
            .Where(e => e.Conditions?.Ready != false)
            .SelectMany(e => e.Addresses)
            .Order(StringComparer.Ordinal)
            .ToList();

    [Fact]
    public async Task First_read_fills_the_store_with_objects_and_derived_slices_then_marks_synced()
    {
        File.WriteAllText(_dir.File("echo.yaml"), EchoYaml(pods: 3) + """
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: echo}
            ---
            """);
        var source = NewSource();

        // Registered at construction: another source finishing does not sync the store.
        _store.MarkSynced("some-other-source");
        Assert.False(_store.IsSynced);

        _started.Add(source);
        await source.StartAsync(CancellationToken.None);
        await _store.WaitForSyncedAsync(CancellationToken.None).WaitAsync(Wait.Timeout);

        var snapshot = _store.Snapshot();
        var service = Assert.Single(snapshot.Services).Value;
        Assert.Equal("default/echo", ClusterStore.KeyOf(service));
        Assert.Equal(["default/echo-1", "default/echo-2", "default/echo-3"], snapshot.Pods.Keys.ToList());
        var slice = Assert.Single(snapshot.EndpointSlices).Value;
        Assert.Equal("default/echo-derived-1", ClusterStore.KeyOf(slice));
        Assert.Equal(["10.244.0.11", "10.244.0.12", "10.244.0.13"], ReadyAddresses(snapshot));
        Assert.Equal([("http", "TCP", 8080), ("udp", "UDP", 8080)], slice.Ports.Select(p => (p.Name, p.Protocol, p.Port!.Value)).ToList());
        Assert.All(slice.Endpoints, e => Assert.Equal("node-1", e.NodeName));
        Assert.Empty(source.Errors);
        Assert.Contains(_logger.Entries, e => e.Id.Id == 3005 && e.Message.Contains("Deployment", StringComparison.Ordinal));
    }

    [Fact]
    public void Namespaces_and_network_policies_reach_the_store_and_follow_edits()
    {
        const string policy = """
            apiVersion: v1
            kind: Namespace
            metadata: {name: x, labels: {team: a}}
            ---
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: deny, namespace: x}
            spec: {podSelector: {}}
            """;
        File.WriteAllText(_dir.File("policy.yaml"), policy);
        var source = NewSource();
        source.ReadNow();

        var snapshot = _store.Snapshot();
        Assert.Equal("a", Assert.Single(snapshot.Namespaces).Value.Metadata.Labels["team"]);
        Assert.Equal("x/deny", Assert.Single(snapshot.NetworkPolicies).Key);

        File.WriteAllText(_dir.File("policy.yaml"), policy.Replace("team: a", "team: b", StringComparison.Ordinal).Replace("name: deny", "name: other", StringComparison.Ordinal));
        source.ReadNow();
        snapshot = _store.Snapshot();
        Assert.Equal("b", Assert.Single(snapshot.Namespaces).Value.Metadata.Labels["team"]);
        Assert.Equal("x/other", Assert.Single(snapshot.NetworkPolicies).Key);
    }

    [Fact]
    public void Mark_synced_waits_for_a_directory_to_exist()
    {
        var missing = _dir.File("not-yet");
        var source = NewSource(directory: missing);

        source.ReadNow();
        Assert.False(_store.IsSynced);
        Assert.Contains("does not exist", Assert.Single(source.Errors).Message);

        Directory.CreateDirectory(missing);
        File.WriteAllText(Path.Combine(missing, "svc.yaml"), ServiceYaml("a", "10.96.0.1"));
        source.ReadNow();

        Assert.True(_store.IsSynced);
        Assert.Empty(source.Errors);
        Assert.Single(_store.Snapshot().Services);
    }

    [Fact]
    public async Task Scaling_by_rewriting_the_file_reaches_the_store_quickly()
    {
        var path = _dir.File("echo.yaml");
        File.WriteAllText(path, EchoYaml(pods: 3));
        await StartAsync();
        await _store.WaitForSyncedAsync(CancellationToken.None).WaitAsync(Wait.Timeout);
        Assert.Equal(3, ReadyAddresses(_store.Snapshot()).Count);

        string[][] steps = [["10.244.0.11"], [], ["10.244.0.11", "10.244.0.12"]];
        foreach (var expected in steps)
        {
            var latency = await Wait.ForStoreAsync(_store,
                () => File.WriteAllText(path, EchoYaml(expected.Length)),
                snapshot => ReadyAddresses(snapshot).SequenceEqual(expected) && snapshot.Pods.Count == expected.Length);
            _output.WriteLine($"{expected.Length} pods visible after {latency.TotalMilliseconds:F0} ms");
            Assert.True(latency < EditLatencyBound, $"scaling to {expected.Length} took {latency}");
        }
    }

    [Fact]
    public async Task The_watcher_alone_notices_an_editor_style_rename()
    {
        File.WriteAllText(_dir.File("echo.yaml"), EchoYaml(pods: 1));
        await StartAsync(new ManifestSourceOptions { PollInterval = TimeSpan.FromHours(1), FullReadInterval = TimeSpan.FromHours(1) });
        await _store.WaitForSyncedAsync(CancellationToken.None).WaitAsync(Wait.Timeout);

        var latency = await Wait.ForStoreAsync(_store,
            () => _dir.WriteAtomically("echo.yaml", EchoYaml(pods: 2)),
            snapshot => snapshot.Pods.Count == 2);

        _output.WriteLine($"watcher: {latency.TotalMilliseconds:F0} ms");
        Assert.True(latency < EditLatencyBound, $"took {latency}");
    }

    [Fact]
    public async Task The_poll_alone_notices_edits_new_files_and_deletions()
    {
        File.WriteAllText(_dir.File("echo.yaml"), EchoYaml(pods: 1));
        await StartAsync(new ManifestSourceOptions { UseFileSystemWatcher = false, PollInterval = TimeSpan.FromMilliseconds(200) });
        await _store.WaitForSyncedAsync(CancellationToken.None).WaitAsync(Wait.Timeout);

        var edit = await Wait.ForStoreAsync(_store,
            () => _dir.WriteAtomically("echo.yaml", EchoYaml(pods: 2)),
            snapshot => snapshot.Pods.Count == 2);
        var added = await Wait.ForStoreAsync(_store,
            () => File.WriteAllText(_dir.File("other.yml"), ServiceYaml("other", "10.96.0.7")),
            snapshot => snapshot.Services.ContainsKey("default/other"));
        var deleted = await Wait.ForStoreAsync(_store,
            () => File.Delete(_dir.File("other.yml")),
            snapshot => !snapshot.Services.ContainsKey("default/other"));

        _output.WriteLine($"poll: edit {edit.TotalMilliseconds:F0} ms, add {added.TotalMilliseconds:F0} ms, delete {deleted.TotalMilliseconds:F0} ms");
        Assert.All([edit, added, deleted], latency => Assert.True(latency < EditLatencyBound, $"took {latency}"));
    }

    [Fact]
    public async Task A_configmap_style_symlink_swap_is_followed()
    {
        // Layout of a ConfigMap volume: echo.yaml -> ..data/echo.yaml, ..data -> ..v1 (swapped atomically).
        Directory.CreateDirectory(_dir.File("..v1"));
        File.WriteAllText(Path.Combine(_dir.File("..v1"), "echo.yaml"), EchoYaml(pods: 1));
        File.CreateSymbolicLink(_dir.File("..data"), "..v1");
        File.CreateSymbolicLink(_dir.File("echo.yaml"), "..data/echo.yaml");
        await StartAsync();
        await _store.WaitForSyncedAsync(CancellationToken.None).WaitAsync(Wait.Timeout);
        Assert.Single(_store.Snapshot().Pods);

        var latency = await Wait.ForStoreAsync(_store, () =>
            {
                Directory.CreateDirectory(_dir.File("..v2"));
                File.WriteAllText(Path.Combine(_dir.File("..v2"), "echo.yaml"), EchoYaml(pods: 3));
                File.CreateSymbolicLink(_dir.File("..data_tmp"), "..v2");
                Posix.Rename(_dir.File("..data_tmp"), _dir.File("..data")); // atomic replace, as kubelet does
            },
            snapshot => snapshot.Pods.Count == 3);

        _output.WriteLine($"symlink swap: {latency.TotalMilliseconds:F0} ms");
        Assert.True(latency < EditLatencyBound, $"took {latency}");
    }

    [Fact]
    public async Task A_broken_file_is_reported_by_name_and_keeps_its_last_good_content()
    {
        File.WriteAllText(_dir.File("a.yaml"), ServiceYaml("a", "10.96.0.1"));
        File.WriteAllText(_dir.File("b.yaml"), ServiceYaml("b", "10.96.0.2"));
        var source = await StartAsync();
        await _store.WaitForSyncedAsync(CancellationToken.None).WaitAsync(Wait.Timeout);

        var version = _store.Snapshot().Version;
        _dir.WriteAtomically("b.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: b\n");
        await Wait.UntilAsync(() => !source.Errors.IsEmpty, "reporting the broken file");

        var error = Assert.Single(source.Errors);
        Assert.Equal(_dir.File("b.yaml"), error.File);
        Assert.Equal(1, error.Document);
        Assert.EndsWith("keeping this file's previous content", error.Message);
        Assert.Contains(_logger.Entries, e => e.Level == LogLevel.Error && e.Message.Contains("b.yaml", StringComparison.Ordinal));
        Assert.Equal(["default/a", "default/b"], _store.Snapshot().Services.Keys.ToList());
        Assert.Equal(version, _store.Snapshot().Version);

        // Other files still apply while b.yaml is broken.
        await Wait.ForStoreAsync(_store,
            () => _dir.WriteAtomically("a.yaml", ServiceYaml("a", "10.96.0.11")),
            snapshot => snapshot.Services["default/a"].Spec.ClusterIP == "10.96.0.11");
        Assert.Equal("10.96.0.2", _store.Snapshot().Services["default/b"].Spec.ClusterIP);

        // Fixing the file clears the error.
        await Wait.ForStoreAsync(_store,
            () => _dir.WriteAtomically("b.yaml", ServiceYaml("b", "10.96.0.22")),
            snapshot => snapshot.Services["default/b"].Spec.ClusterIP == "10.96.0.22");
        Assert.Empty(source.Errors);
        Assert.Contains(_logger.Entries, e => e.Id.Id == 3004 && e.Message.Contains("b.yaml", StringComparison.Ordinal));
    }

    [Fact]
    public void A_file_broken_from_the_start_contributes_nothing_and_does_not_block_the_others()
    {
        File.WriteAllText(_dir.File("good.yaml"), ServiceYaml("good", "10.96.0.1"));
        File.WriteAllText(_dir.File("bad.yaml"), ServiceYaml("bad", "10.96.0.2") + "---\napiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: http}]}\n");
        var source = NewSource();

        source.ReadNow();

        Assert.True(_store.IsSynced);
        Assert.Equal(["default/good"], _store.Snapshot().Services.Keys.ToList());
        var error = Assert.Single(source.Errors);
        Assert.Equal((_dir.File("bad.yaml"), 2, "Service default/x"), (error.File, error.Document, error.Object));
        Assert.EndsWith("nothing from this file is used", error.Message);
    }

    [Fact]
    public void An_invalid_object_is_skipped_by_name_and_its_file_still_applies()
    {
        File.WriteAllText(_dir.File("mixed.yaml"), ServiceYaml("fine", "10.96.0.1") + "---\n" + ServiceYaml("bad-ip", "10.96.0"));
        var source = NewSource();

        source.ReadNow();

        Assert.Equal(["default/fine"], _store.Snapshot().Services.Keys.ToList());
        var error = Assert.Single(source.Errors);
        Assert.Equal("Service default/bad-ip", error.Object);
        Assert.Contains("spec.clusterIP 10.96.0 is not an IP address", error.Message);
    }

    [Fact]
    public async Task Rewriting_identical_content_reads_again_without_a_change_event()
    {
        File.WriteAllText(_dir.File("echo.yaml"), EchoYaml(pods: 2));
        var source = await StartAsync();
        await _store.WaitForSyncedAsync(CancellationToken.None).WaitAsync(Wait.Timeout);
        var changes = 0;
        _store.Changed += () => Interlocked.Increment(ref changes);
        var reads = source.ReadCount;

        source.ReadNow();
        _dir.WriteAtomically("echo.yaml", EchoYaml(pods: 2));
        await Wait.UntilAsync(() => source.ReadCount >= reads + 2, "a read after the rewrite");

        Assert.Equal(0, Volatile.Read(ref changes));
        Assert.NotNull(source.LastReadAt);
    }

    [Fact]
    public async Task Deleting_a_file_removes_its_objects_only()
    {
        File.WriteAllText(_dir.File("echo.yaml"), EchoYaml(pods: 2));
        File.WriteAllText(_dir.File("other.yaml"), ServiceYaml("other", "10.96.0.7"));
        await StartAsync();
        await _store.WaitForSyncedAsync(CancellationToken.None).WaitAsync(Wait.Timeout);

        await Wait.ForStoreAsync(_store,
            () => File.Delete(_dir.File("echo.yaml")),
            snapshot => snapshot.Pods.IsEmpty);

        var snapshot = _store.Snapshot();
        Assert.Equal(["default/other"], snapshot.Services.Keys.ToList());
        Assert.Empty(snapshot.EndpointSlices); // "other" has no selector, echo's derived slice is gone
    }

    [Fact]
    public void A_dangling_symlink_counts_as_a_deleted_file()
    {
        File.WriteAllText(_dir.File("a.yaml"), ServiceYaml("a", "10.96.0.1"));
        File.WriteAllText(_dir.File("b.yaml"), ServiceYaml("b", "10.96.0.2"));
        var source = NewSource();
        source.ReadNow();

        File.Delete(_dir.File("b.yaml"));
        File.CreateSymbolicLink(_dir.File("b.yaml"), "nowhere.yaml");
        source.ReadNow();

        Assert.Equal(["default/a"], _store.Snapshot().Services.Keys.ToList());
        Assert.Empty(source.Errors);
    }

    [Fact]
    public void A_vanished_directory_keeps_the_store_and_says_so()
    {
        var directory = _dir.File("volume");
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "a.yaml"), ServiceYaml("a", "10.96.0.1"));
        var source = NewSource(directory: directory);
        source.ReadNow();
        var version = _store.Snapshot().Version;

        Directory.Delete(directory, recursive: true);
        source.ReadNow();

        Assert.Equal(version, _store.Snapshot().Version);
        Assert.Equal("directory does not exist; keeping the objects read from it before", Assert.Single(source.Errors).Message);

        Directory.CreateDirectory(directory);
        source.ReadNow();

        Assert.Empty(_store.Snapshot().Services);
        Assert.Empty(source.Errors);
    }

    [Fact]
    public void An_explicit_slice_replaces_derivation_and_duplicates_are_reported()
    {
        File.WriteAllText(_dir.File("a-echo.yaml"), EchoYaml(pods: 1) + """
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: echo-manual
              labels: {kubernetes.io/service-name: echo}
            addressType: IPv4
            ports: [{name: http, port: 9999, protocol: TCP}]
            endpoints: [{addresses: [10.244.9.9]}]
            """);
        File.WriteAllText(_dir.File("b-dup.yaml"), ServiceYaml("echo", "10.96.0.99"));
        var source = NewSource();

        source.ReadNow();

        var snapshot = _store.Snapshot();
        Assert.Equal(["default/echo-manual"], snapshot.EndpointSlices.Keys.ToList());
        Assert.Equal("10.96.0.42", snapshot.Services["default/echo"].Spec.ClusterIP);
        var error = Assert.Single(source.Errors, e => e.File == _dir.File("b-dup.yaml"));
        Assert.Equal("Service default/echo", error.Object);
        Assert.Contains("also defined in a-echo.yaml", error.Message);
        Assert.Contains("ignored", error.Message);
        Assert.Contains(source.Errors, e => e.File == _dir.File("a-echo.yaml") && e.Message.Contains("also defined in b-dup.yaml"));
    }

    [Fact]
    public void Json_manifests_subdirectories_and_dotfiles()
    {
        File.WriteAllText(_dir.File("svc.json"), """{"apiVersion":"v1","kind":"Service","metadata":{"name":"j"},"spec":{"ports":[{"port":80}]}}""");
        File.WriteAllText(_dir.File(".hidden.yaml"), ServiceYaml("hidden", "10.96.0.3"));
        Directory.CreateDirectory(_dir.File("nested"));
        File.WriteAllText(Path.Combine(_dir.File("nested"), "n.yaml"), ServiceYaml("nested", "10.96.0.4"));
        var source = NewSource();

        source.ReadNow();

        Assert.Equal(["default/j"], _store.Snapshot().Services.Keys.ToList());
        Assert.Empty(source.Errors);
    }

    [Fact]
    public void Options_are_validated()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => NewSource(new ManifestSourceOptions { PollInterval = TimeSpan.Zero }));
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            NewSource(new ManifestSourceOptions { Debounce = TimeSpan.FromSeconds(1), MaxDebounce = TimeSpan.FromMilliseconds(10) }));
        Assert.Throws<ArgumentException>(() => new ManifestSource(" ", _store, _logger, TimeProvider.System));
    }
}
