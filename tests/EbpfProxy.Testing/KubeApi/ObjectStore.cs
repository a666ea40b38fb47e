using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace EbpfProxy.Testing.KubeApi;

/// <summary>
/// One stored version of an object: immutable, with its JSON text (as served in watch events and GETs), the
/// JSON text of a list item (without <c>kind</c>/<c>apiVersion</c>, like the real server) and the values of
/// every selectable field, all computed once so that concurrent readers never touch a <see cref="JsonNode"/>.
/// </summary>
internal sealed class StoredObject
{
    private readonly Dictionary<string, string> _fields;

    public StoredObject(KubeResource resource, JsonObject json)
    {
        Resource = resource;
        JsonObject meta = json["metadata"]?.AsObject() ?? throw new ArgumentException("metadata is missing");
        Name = (string?)meta["name"] ?? throw new ArgumentException("metadata.name is missing");
        Namespace = (string?)meta["namespace"] ?? "";
        ResourceVersion = long.Parse((string?)meta["resourceVersion"] ?? "0", System.Globalization.CultureInfo.InvariantCulture);
        Uid = (string?)meta["uid"] ?? "";
        CreationTimestamp = (string?)meta["creationTimestamp"];
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (meta["labels"] is JsonObject labelObject)
        {
            foreach ((string key, JsonNode? value) in labelObject)
            {
                labels[key] = value is null ? "" : (string?)value ?? "";
            }
        }
        Labels = labels;
        _fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string field in resource.SupportedFields)
        {
            _fields[field] = ReadField(json, field);
        }
        JsonText = json.ToJsonString();
        var item = (JsonObject)json.DeepClone();
        item.Remove("kind");
        item.Remove("apiVersion");
        ItemJsonText = item.ToJsonString();
    }

    public KubeResource Resource { get; }

    public string Namespace { get; }

    public string Name { get; }

    public long ResourceVersion { get; }

    public string Uid { get; }

    public string? CreationTimestamp { get; }

    public IReadOnlyDictionary<string, string> Labels { get; }

    /// <summary>Full object (with kind/apiVersion): watch events and GET.</summary>
    public string JsonText { get; }

    /// <summary>List item (without kind/apiVersion).</summary>
    public string ItemJsonText { get; }

    /// <summary>Storage key, ordered like etcd keys: <c>namespace/name</c> or <c>name</c>.</summary>
    public string Key => Resource.Namespaced ? $"{Namespace}/{Name}" : Name;

    public string GetField(string field) => _fields.TryGetValue(field, out string? value) ? value : "";

    /// <summary>A mutable copy of the JSON.</summary>
    public JsonObject CloneJson() => JsonNode.Parse(JsonText)!.AsObject();

    public static string KeyOf(KubeResource resource, string? ns, string name) =>
        resource.Namespaced ? $"{(string.IsNullOrEmpty(ns) ? "default" : ns)}/{name}" : name;

    private static string ReadField(JsonObject json, string path)
    {
        JsonNode? node = json;
        foreach (string part in path.Split('.'))
        {
            node = node is JsonObject o ? o[part] : null;
            if (node is null)
            {
                return "";
            }
        }
        return node switch
        {
            JsonValue v when v.TryGetValue(out string? s) => s ?? "",
            JsonValue v when v.TryGetValue(out bool b) => b ? "true" : "false",
            _ => node.ToJsonString(),
        };
    }
}

internal enum EventKind
{
    Added,
    Modified,
    Deleted,
    Bookmark,
}

/// <summary>An item queued to a watch: a change (with the previous version, for selector transitions) or a bookmark.</summary>
internal sealed record WatchItem(EventKind Kind, long ResourceVersion, StoredObject? Object, StoredObject? Previous);

/// <summary>The queue of one open watch.</summary>
internal sealed class WatchSubscription(KubeResource resource)
{
    private readonly Channel<WatchItem> _channel = Channel.CreateUnbounded<WatchItem>(new UnboundedChannelOptions { SingleReader = true });

    public KubeResource Resource { get; } = resource;

    public ChannelReader<WatchItem> Reader => _channel.Reader;

    internal void Write(WatchItem item) => _channel.Writer.TryWrite(item);

    internal void Complete() => _channel.Writer.TryComplete();
}

/// <summary>Result of <see cref="ObjectStore.OpenWatch"/>.</summary>
internal sealed record WatchStart(bool Expired, long OldestResourceVersion, IReadOnlyList<StoredObject> InitialObjects);

/// <summary>
/// The fake etcd: one global resource version counter, objects per resource, an event history per resource
/// (kept until <see cref="Compact"/>), and the subscriptions of open watches. Every mutation appends to the
/// history and fans out to subscriptions under one lock, so watches see a total order without gaps.
/// </summary>
internal sealed class ObjectStore
{
    /// <summary>The first resource version handed out is <c>InitialResourceVersion + 1</c>; older ones are "compacted".</summary>
    public const long InitialResourceVersion = 100;

    private readonly Lock _gate = new();
    private readonly Dictionary<KubeResource, SortedDictionary<string, StoredObject>> _objects = [];
    private readonly Dictionary<KubeResource, List<WatchItem>> _history = [];
    private readonly Dictionary<KubeResource, HashSet<WatchSubscription>> _subscriptions = [];
    private long _resourceVersion = InitialResourceVersion;
    private long _compacted = InitialResourceVersion;

    public ObjectStore()
    {
        foreach (KubeResource r in KubeResource.All)
        {
            _objects[r] = new SortedDictionary<string, StoredObject>(StringComparer.Ordinal);
            _history[r] = [];
            _subscriptions[r] = [];
        }
    }

    public long ResourceVersion
    {
        get
        {
            lock (_gate)
            {
                return _resourceVersion;
            }
        }
    }

    public long CompactedResourceVersion
    {
        get
        {
            lock (_gate)
            {
                return _compacted;
            }
        }
    }

    public StoredObject Upsert(KubeResource resource, JsonObject json)
    {
        JsonObject meta = json["metadata"] as JsonObject ?? new JsonObject();
        json["metadata"] = meta;
        string? name = (string?)meta["name"];
        if (string.IsNullOrEmpty(name))
        {
            throw new ArgumentException($"{resource.Kind} needs metadata.name.");
        }
        if (resource.Namespaced)
        {
            if (string.IsNullOrEmpty((string?)meta["namespace"]))
            {
                meta["namespace"] = "default";
            }
        }
        else
        {
            meta.Remove("namespace");
        }
        json["apiVersion"] = resource.ApiVersion;
        json["kind"] = resource.Kind;
        string key = StoredObject.KeyOf(resource, (string?)meta["namespace"], name);

        lock (_gate)
        {
            _objects[resource].TryGetValue(key, out StoredObject? existing);
            long rv = ++_resourceVersion;
            meta["resourceVersion"] = rv.ToString(System.Globalization.CultureInfo.InvariantCulture);
            meta["uid"] = existing?.Uid ?? ((string?)meta["uid"] is { Length: > 0 } uid ? uid : Guid.NewGuid().ToString());
            meta["creationTimestamp"] = existing?.CreationTimestamp
                ?? ((string?)meta["creationTimestamp"] is { Length: > 0 } ts ? ts : DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture));
            var stored = new StoredObject(resource, json);
            _objects[resource][key] = stored;
            Publish(resource, new WatchItem(existing is null ? EventKind.Added : EventKind.Modified, rv, stored, existing));
            return stored;
        }
    }

    public StoredObject? Delete(KubeResource resource, string? ns, string name)
    {
        string key = StoredObject.KeyOf(resource, ns, name);
        lock (_gate)
        {
            if (!_objects[resource].Remove(key, out StoredObject? existing))
            {
                return null;
            }
            long rv = ++_resourceVersion;
            JsonObject json = existing.CloneJson();
            json["metadata"]!["resourceVersion"] = rv.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var last = new StoredObject(resource, json);
            Publish(resource, new WatchItem(EventKind.Deleted, rv, last, existing));
            return last;
        }
    }

    public StoredObject? Get(KubeResource resource, string? ns, string name)
    {
        lock (_gate)
        {
            return _objects[resource].GetValueOrDefault(StoredObject.KeyOf(resource, ns, name));
        }
    }

    /// <summary>Current objects in key order and the current resource version.</summary>
    public (IReadOnlyList<StoredObject> Items, long ResourceVersion) List(KubeResource resource)
    {
        lock (_gate)
        {
            return (_objects[resource].Values.ToArray(), _resourceVersion);
        }
    }

    /// <summary>
    /// The objects as they were at <paramref name="resourceVersion"/> (rebuilt by undoing newer history), in key
    /// order; null when that version is older than the compaction horizon.
    /// </summary>
    public IReadOnlyList<StoredObject>? ListAt(KubeResource resource, long resourceVersion)
    {
        lock (_gate)
        {
            if (resourceVersion < _compacted)
            {
                return null;
            }
            var state = new SortedDictionary<string, StoredObject>(_objects[resource], StringComparer.Ordinal);
            List<WatchItem> history = _history[resource];
            for (int i = history.Count - 1; i >= 0 && history[i].ResourceVersion > resourceVersion; i--)
            {
                WatchItem e = history[i];
                string key = e.Object!.Key;
                if (e.Previous is null)
                {
                    state.Remove(key);
                }
                else
                {
                    state[key] = e.Previous;
                }
            }
            return state.Values.ToArray();
        }
    }

    /// <summary>
    /// Registers <paramref name="subscription"/>. <paramref name="fromResourceVersion"/> null: returns the current
    /// objects (to be sent as synthetic ADDED) and queues every later change. Otherwise queues every change newer
    /// than it from the history, then every later change; or reports <see cref="WatchStart.Expired"/> (nothing
    /// registered) when it is older than the compaction horizon.
    /// </summary>
    public WatchStart OpenWatch(WatchSubscription subscription, long? fromResourceVersion)
    {
        KubeResource resource = subscription.Resource;
        lock (_gate)
        {
            if (fromResourceVersion is null)
            {
                _subscriptions[resource].Add(subscription);
                return new WatchStart(false, _compacted, _objects[resource].Values.ToArray());
            }
            if (fromResourceVersion < _compacted)
            {
                return new WatchStart(true, _compacted, []);
            }
            _subscriptions[resource].Add(subscription);
            foreach (WatchItem e in _history[resource])
            {
                if (e.ResourceVersion > fromResourceVersion)
                {
                    subscription.Write(e);
                }
            }
            return new WatchStart(false, _compacted, []);
        }
    }

    public void CloseWatch(WatchSubscription subscription)
    {
        lock (_gate)
        {
            _subscriptions[subscription.Resource].Remove(subscription);
        }
        subscription.Complete();
    }

    /// <summary>Queues a bookmark carrying the current resource version (ordered after every queued change).</summary>
    public void Bookmark(WatchSubscription subscription)
    {
        lock (_gate)
        {
            if (_subscriptions[subscription.Resource].Contains(subscription))
            {
                subscription.Write(new WatchItem(EventKind.Bookmark, _resourceVersion, null, null));
            }
        }
    }

    /// <summary>Drops all history: watches and continue tokens older than the current resource version expire (410).</summary>
    public void Compact()
    {
        lock (_gate)
        {
            _compacted = _resourceVersion;
            foreach (List<WatchItem> h in _history.Values)
            {
                h.Clear();
            }
        }
    }

    private void Publish(KubeResource resource, WatchItem item)
    {
        _history[resource].Add(item);
        foreach (WatchSubscription s in _subscriptions[resource])
        {
            s.Write(item);
        }
    }
}
