using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using k8s;
using k8s.Models;

namespace EbpfProxy.Core.Cluster;

/// <summary>
/// Immutable view of the cluster objects the proxy cares about, keyed by "namespace/name".
/// </summary>
public sealed record ClusterSnapshot(
    ImmutableSortedDictionary<string, V1Service> Services,
    ImmutableSortedDictionary<string, V1EndpointSlice> EndpointSlices,
    ImmutableSortedDictionary<string, V1Pod> Pods,
    long Version)
{
    /// <summary>NetworkPolicies by "namespace/name" (used by the policy work).</summary>
    public ImmutableSortedDictionary<string, V1NetworkPolicy> NetworkPolicies { get; init; } = EmptyOf<V1NetworkPolicy>();

    /// <summary>Namespaces by name (cluster-scoped: key "default/&lt;name&gt;" is not used; the key is the name).</summary>
    public ImmutableSortedDictionary<string, V1Namespace> Namespaces { get; init; } = EmptyOf<V1Namespace>();

    /// <summary>Nodes by name (the daemon watches only its own).</summary>
    public ImmutableSortedDictionary<string, V1Node> Nodes { get; init; } = EmptyOf<V1Node>();

    public static ClusterSnapshot Empty { get; } = new(EmptyOf<V1Service>(), EmptyOf<V1EndpointSlice>(), EmptyOf<V1Pod>(), 0);

    private static ImmutableSortedDictionary<string, T> EmptyOf<T>() =>
        ImmutableSortedDictionary<string, T>.Empty.WithComparers(StringComparer.Ordinal);
}

/// <summary>A snapshot plus the services changed since the previous take (null: all of them), with their slices.</summary>
public sealed record ServiceChanges(ClusterSnapshot Snapshot, IReadOnlyDictionary<string, V1EndpointSlice[]>? Dirty);

/// <summary>
/// The one place sources (manifest directory, Kubernetes informers) record objects. Sources only
/// record and signal; they never program anything (DESIGN.md section 2). Updates that leave an
/// object unchanged are dropped, so a re-read of an unchanged directory costs no sync.
/// </summary>
public sealed class ClusterStore
{
    private readonly Lock _gate = new();
    private readonly HashSet<string> _pendingSources = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ClusterSnapshot _snapshot = ClusterSnapshot.Empty;

    // Change tracking for the translator (kube-proxy's service/endpoints change trackers): which
    // services a change touched since the last TakeServiceChanges, and which slices each service has.
    private readonly Dictionary<string, SortedSet<string>> _slicesByService = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _serviceOfSlice = new(StringComparer.Ordinal);
    private readonly HashSet<string> _dirtyServices = new(StringComparer.Ordinal);
    private bool _allServicesDirty = true;

    /// <summary>Raised (outside the lock) after any change that altered the snapshot.</summary>
    public event Action? Changed;

    /// <summary>Declares a source that must finish its initial list before anything is programmed.</summary>
    public void RegisterSource(string source)
    {
        lock (_gate)
        {
            if (_synced.Task.IsCompleted)
                throw new InvalidOperationException($"source '{source}' registered after the store was synced");
            _pendingSources.Add(source);
        }
    }

    /// <summary>Marks a source's initial list as complete.</summary>
    public void MarkSynced(string source)
    {
        bool complete;
        lock (_gate)
        {
            _pendingSources.Remove(source);
            complete = _pendingSources.Count == 0;
        }
        if (complete && _synced.TrySetResult())
            Changed?.Invoke();
    }

    /// <summary>Completes once every registered source has listed once.</summary>
    public Task WaitForSyncedAsync(CancellationToken cancellationToken) =>
        _synced.Task.WaitAsync(cancellationToken);

    public bool IsSynced => _synced.Task.IsCompleted;

    public ClusterSnapshot Snapshot()
    {
        lock (_gate)
            return _snapshot;
    }

    public void Upsert(V1Service service) =>
        Mutate(s => s with { Services = Put(s.Services, service) }, () => _dirtyServices.Add(KeyOf(service)));

    public void Upsert(V1EndpointSlice slice) =>
        Mutate(s => s with { EndpointSlices = Put(s.EndpointSlices, slice) }, () => IndexSlice(KeyOf(slice), ServiceKeyOf(slice)));
    public void Upsert(V1Pod pod) => Mutate(s => s with { Pods = Put(s.Pods, pod) });

    public void Upsert(V1NetworkPolicy policy) => Mutate(s => s with { NetworkPolicies = Put(s.NetworkPolicies, policy) });
    public void Upsert(V1Namespace ns) => Mutate(s => s with { Namespaces = Put(s.Namespaces, ns) });
    public void Upsert(V1Node node) => Mutate(s => s with { Nodes = Put(s.Nodes, node) });

    /// <summary>Records an added or modified object of any kind the store holds.</summary>
    public void Upsert(IKubernetesObject<V1ObjectMeta> obj)
    {
        switch (obj)
        {
            case V1Service o: Upsert(o); break;
            case V1EndpointSlice o: Upsert(o); break;
            case V1Pod o: Upsert(o); break;
            case V1NetworkPolicy o: Upsert(o); break;
            case V1Namespace o: Upsert(o); break;
            case V1Node o: Upsert(o); break;
            default: throw new ArgumentException($"the cluster store does not hold {obj.GetType().Name}", nameof(obj));
        }
    }

    /// <summary>Records the deletion of an object of any kind the store holds.</summary>
    public void Delete(IKubernetesObject<V1ObjectMeta> obj)
    {
        var key = KeyOf(obj);
        switch (obj)
        {
            case V1Service: DeleteService(key); break;
            case V1EndpointSlice: DeleteEndpointSlice(key); break;
            case V1Pod: DeletePod(key); break;
            case V1NetworkPolicy: Mutate(s => s with { NetworkPolicies = s.NetworkPolicies.Remove(key) }); break;
            case V1Namespace: Mutate(s => s with { Namespaces = s.Namespaces.Remove(key) }); break;
            case V1Node: Mutate(s => s with { Nodes = s.Nodes.Remove(key) }); break;
            default: throw new ArgumentException($"the cluster store does not hold {obj.GetType().Name}", nameof(obj));
        }
    }

    /// <summary>
    /// Replaces every object of one kind with a fresh listing (an informer's re-list): objects
    /// missing from it are deleted, which is how deletions missed while a watch was down surface.
    /// </summary>
    public void ReplaceKind<T>(IEnumerable<T> objects) where T : IKubernetesObject<V1ObjectMeta>
    {
        switch (objects)
        {
            case IEnumerable<V1Service> o: Mutate(s => s with { Services = Replace(s.Services, o) }, RebuildSliceIndex); break;
            case IEnumerable<V1EndpointSlice> o: Mutate(s => s with { EndpointSlices = Replace(s.EndpointSlices, o) }, RebuildSliceIndex); break;
            case IEnumerable<V1Pod> o: Mutate(s => s with { Pods = Replace(s.Pods, o) }); break;
            case IEnumerable<V1NetworkPolicy> o: Mutate(s => s with { NetworkPolicies = Replace(s.NetworkPolicies, o) }); break;
            case IEnumerable<V1Namespace> o: Mutate(s => s with { Namespaces = Replace(s.Namespaces, o) }); break;
            case IEnumerable<V1Node> o: Mutate(s => s with { Nodes = Replace(s.Nodes, o) }); break;
            default: throw new ArgumentException($"the cluster store does not hold {typeof(T).Name}", nameof(objects));
        }
    }

    public void DeleteService(string key) => Mutate(s => s with { Services = s.Services.Remove(key) }, () => _dirtyServices.Add(key));
    public void DeleteEndpointSlice(string key) => Mutate(s => s with { EndpointSlices = s.EndpointSlices.Remove(key) }, () => IndexSlice(key, null));
    public void DeletePod(string key) => Mutate(s => s with { Pods = s.Pods.Remove(key) });

    /// <summary>
    /// Replaces the whole content with a full listing (the manifest source re-reads its directory;
    /// an informer re-lists). Objects absent from the listing are deleted.
    /// </summary>
    public void ReplaceAll(IEnumerable<V1Service> services, IEnumerable<V1EndpointSlice> slices, IEnumerable<V1Pod> pods) =>
        Mutate(s => s with
        {
            Services = Replace(s.Services, services),
            EndpointSlices = Replace(s.EndpointSlices, slices),
            Pods = Replace(s.Pods, pods),
        }, RebuildSliceIndex);

    /// <summary>"namespace/name" for namespaced objects (no namespace means "default"); the name for Namespaces and Nodes.</summary>
    public static string KeyOf(IKubernetesObject<V1ObjectMeta> obj) => obj switch
    {
        V1Namespace or V1Node => obj.Metadata?.Name ?? "",
        _ => $"{obj.Metadata?.NamespaceProperty ?? "default"}/{obj.Metadata?.Name}",
    };

    /// <summary>
    /// The current snapshot and the services touched since the previous call, each with its
    /// slices (sorted by key); Dirty is null when everything must be considered changed (start,
    /// re-list). Meant for the one sync loop.
    /// </summary>
    public ServiceChanges TakeServiceChanges()
    {
        lock (_gate)
        {
            Dictionary<string, V1EndpointSlice[]>? dirty = null;
            if (!_allServicesDirty)
            {
                dirty = new Dictionary<string, V1EndpointSlice[]>(_dirtyServices.Count, StringComparer.Ordinal);
                foreach (var key in _dirtyServices)
                    dirty[key] = SlicesOfLocked(key);
            }
            _dirtyServices.Clear();
            _allServicesDirty = false;
            return new ServiceChanges(_snapshot, dirty);
        }
    }

    /// <summary>Marks every service as changed (the next TakeServiceChanges returns a full set).</summary>
    public void MarkAllServicesDirty()
    {
        lock (_gate)
            _allServicesDirty = true;
    }

    private V1EndpointSlice[] SlicesOfLocked(string serviceKey)
    {
        if (!_slicesByService.TryGetValue(serviceKey, out var keys))
            return [];
        var list = new List<V1EndpointSlice>(keys.Count);
        foreach (var k in keys)
            if (_snapshot.EndpointSlices.TryGetValue(k, out var slice))
                list.Add(slice);
        return [.. list];
    }

    internal static string? ServiceKeyOf(V1EndpointSlice slice) =>
        slice.Metadata?.Labels is { } l && l.TryGetValue("kubernetes.io/service-name", out var svc) && !string.IsNullOrEmpty(svc)
            ? $"{slice.Metadata.NamespaceProperty ?? "default"}/{svc}"
            : null;

    private void IndexSlice(string sliceKey, string? serviceKey)
    {
        if (_serviceOfSlice.TryGetValue(sliceKey, out var old))
        {
            _dirtyServices.Add(old);
            if (old != serviceKey && _slicesByService.TryGetValue(old, out var set))
            {
                set.Remove(sliceKey);
                if (set.Count == 0)
                    _slicesByService.Remove(old);
            }
        }
        if (serviceKey is null)
        {
            _serviceOfSlice.Remove(sliceKey);
            return;
        }
        _serviceOfSlice[sliceKey] = serviceKey;
        if (!_slicesByService.TryGetValue(serviceKey, out var slices))
            _slicesByService[serviceKey] = slices = new SortedSet<string>(StringComparer.Ordinal);
        slices.Add(sliceKey);
        _dirtyServices.Add(serviceKey);
    }

    private void RebuildSliceIndex()
    {
        _slicesByService.Clear();
        _serviceOfSlice.Clear();
        foreach (var (key, slice) in _snapshot.EndpointSlices)
            IndexSlice(key, ServiceKeyOf(slice));
        _dirtyServices.Clear();
        _allServicesDirty = true;
    }

    private void Mutate(Func<ClusterSnapshot, ClusterSnapshot> change, Action? track = null)
    {
        bool changed;
        lock (_gate)
        {
            var next = change(_snapshot);
            changed = !ReferenceEquals(next.Services, _snapshot.Services)
                || !ReferenceEquals(next.EndpointSlices, _snapshot.EndpointSlices)
                || !ReferenceEquals(next.Pods, _snapshot.Pods)
                || !ReferenceEquals(next.NetworkPolicies, _snapshot.NetworkPolicies)
                || !ReferenceEquals(next.Namespaces, _snapshot.Namespaces)
                || !ReferenceEquals(next.Nodes, _snapshot.Nodes);
            if (changed)
            {
                _snapshot = next with { Version = _snapshot.Version + 1 };
                track?.Invoke();
            }
        }
        if (changed)
            Changed?.Invoke();
    }

    private static ImmutableSortedDictionary<string, T> Put<T>(ImmutableSortedDictionary<string, T> map, T obj)
        where T : IKubernetesObject<V1ObjectMeta>
    {
        var key = KeyOf(obj);
        return map.TryGetValue(key, out var old) && SameContent(old, obj) ? map : map.SetItem(key, obj);
    }

    private static ImmutableSortedDictionary<string, T> Replace<T>(ImmutableSortedDictionary<string, T> map, IEnumerable<T> objects)
        where T : IKubernetesObject<V1ObjectMeta>
    {
        var builder = ImmutableSortedDictionary.CreateBuilder<string, T>(StringComparer.Ordinal);
        foreach (var obj in objects)
        {
            var key = KeyOf(obj);
            builder[key] = map.TryGetValue(key, out var old) && SameContent(old, obj) ? old : obj;
        }
        if (builder.Count == map.Count && builder.All(kv => map.TryGetValue(kv.Key, out var o) && ReferenceEquals(o, kv.Value)))
            return map;
        return builder.ToImmutable();
    }

    /// <summary>
    /// Equal when what the proxy keeps of them is equal, resourceVersion aside (issue 14 item 9).
    /// A resourceVersion says nothing in standalone mode (a file exported with `kubectl get -o
    /// yaml` keeps the one it was exported with when edited), and from the API it moves on every
    /// status write, most of which change nothing the trimmed object holds: comparing it would
    /// miss edits in the first case and cost a sync per status update in the second.
    /// </summary>
    private static bool SameContent<T>(T a, T b) where T : IKubernetesObject<V1ObjectMeta>
    {
        if (ReferenceEquals(a, b))
            return true;
        return ContentOf(a) == ContentOf(b);
    }

    // The stored object's canonical text is kept beside it, so each update serializes only the newcomer.
    private static readonly ConditionalWeakTable<object, string> Contents = new();

    private static string ContentOf(IKubernetesObject<V1ObjectMeta> obj) =>
        Contents.GetValue(obj, static o => WithoutResourceVersions(KubernetesJson.Serialize(o)));

    /// <summary>
    /// The serialized object with every <c>"resourceVersion":"…"</c> value emptied (the object's
    /// own and those of references, which the proxy does not use either). A plain scan: no JSON
    /// DOM on the path of every informer event.
    /// </summary>
    private static string WithoutResourceVersions(string json)
    {
        const string Key = "\"resourceVersion\":\"";
        var at = json.IndexOf(Key, StringComparison.Ordinal);
        if (at < 0)
            return json;
        var text = new System.Text.StringBuilder(json.Length);
        var from = 0;
        while (at >= 0)
        {
            var valueStart = at + Key.Length;
            var valueEnd = json.IndexOf('"', valueStart);
            if (valueEnd < 0)
                break;
            text.Append(json, from, valueStart - from);
            from = valueEnd;
            at = json.IndexOf(Key, valueEnd, StringComparison.Ordinal);
        }
        return text.Append(json, from, json.Length - from).ToString();
    }
}
