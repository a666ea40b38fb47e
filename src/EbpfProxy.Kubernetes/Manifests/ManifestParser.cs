using System.Collections.Immutable;
using System.Text.Json;
using k8s;
using k8s.Models;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace EbpfProxy.Kubernetes.Manifests;

/// <summary>
/// Reads one manifest file into the Services, EndpointSlices and Pods it declares.
/// </summary>
/// <remarks>
/// <para>
/// YAML files may hold several documents. Each document is cut out of the file and read on its
/// own with <see cref="KubernetesYaml"/>, rather than with <c>KubernetesYaml.LoadAllFromString</c>:
/// that helper fails the whole file on the first kind it has no type for (any CRD) and on empty
/// documents, and cannot say which document was wrong. JSON files hold one object, read with
/// <see cref="KubernetesJson"/>. In both, <c>kind: List</c> (and typed lists such as
/// <c>PodList</c>) contribute their <c>items</c>.
/// </para>
/// <para>
/// Two kinds of failure: a file that cannot be read as a whole (syntax error, a field of the wrong
/// type) throws <see cref="ManifestFormatException"/>, and the caller keeps that file's previous
/// content; an object that reads but is invalid (a Service without a name, a port out of range)
/// is skipped and reported in <see cref="ManifestFile.Errors"/>, and the rest of the file applies.
/// Kinds other than v1 Service, discovery.k8s.io/v1 EndpointSlice and v1 Pod are listed in
/// <see cref="ManifestFile.Ignored"/>.
/// </para>
/// </remarks>
public static class ManifestParser
{
    /// <summary>Namespace given to objects that do not name one, as kubectl does.</summary>
    public const string DefaultNamespace = "default";

    private const string ServiceApiVersion = "v1";
    private const string EndpointSliceApiVersion = "discovery.k8s.io/v1";
    private const string PodApiVersion = "v1";
    private const string NetworkPolicyApiVersion = "networking.k8s.io/v1";
    private const string NamespaceApiVersion = "v1";
    private const string NodeApiVersion = "v1";

    /// <summary>
    /// True for <c>*.yaml</c>, <c>*.yml</c> and <c>*.json</c> names that do not start with a dot
    /// (editor lock and swap files such as <c>.#echo.yaml</c> are dotfiles).
    /// </summary>
    public static bool IsManifestFileName(string fileName)
    {
        var name = System.IO.Path.GetFileName(fileName);
        if (name.Length == 0 || name[0] == '.')
            return false;
        var extension = System.IO.Path.GetExtension(name);
        return extension.Equals(".yaml", StringComparison.OrdinalIgnoreCase)
            || extension.Equals(".yml", StringComparison.OrdinalIgnoreCase)
            || extension.Equals(".json", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Parses the content of one file; <paramref name="path"/> names it in errors and picks JSON or YAML.</summary>
    /// <exception cref="ManifestFormatException">The file cannot be read as a whole.</exception>
    public static ManifestFile Parse(string path, string content) => Parse(path, content, ManifestReadLimits.Default);

    /// <summary>Parses the content of one file within <paramref name="limits"/> (aliases, nesting).</summary>
    /// <exception cref="ManifestFormatException">The file cannot be read as a whole, or passes a limit.</exception>
    public static ManifestFile Parse(string path, string content, ManifestReadLimits limits)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(content);
        ArgumentNullException.ThrowIfNull(limits);

        var collector = new Collector(path);
        try
        {
            if (System.IO.Path.GetExtension(path).Equals(".json", StringComparison.OrdinalIgnoreCase))
                ReadJson(collector, content);
            else
                ReadYaml(collector, content, limits);
        }
        catch (Exception ex) when (ex is not (ManifestFormatException or OutOfMemoryException or OperationCanceledException))
        {
            // YamlDotNet's scanner throws InvalidOperationException on some unterminated flow
            // collections; whatever escapes the reader, the file is unreadable, not the folder.
            throw new ManifestFormatException(path, null, null, $"cannot be parsed: {Innermost(ex).Message}", ex);
        }
        return collector.Build();
    }

    private static void ReadYaml(Collector collector, string content, ManifestReadLimits limits)
    {
        foreach (var document in SplitYamlDocuments(collector.Path, content, limits))
        {
            Dictionary<string, object?>? root;
            try
            {
                root = KubernetesYaml.Deserialize<Dictionary<string, object?>>(document.Text);
            }
            catch (YamlException ex)
            {
                throw new ManifestFormatException(collector.Path, document.Index, null,
                    YamlReason(ex, document.FirstLine) + " (a document must be a mapping with apiVersion and kind)", ex);
            }
            if (root is null)
                continue; // empty document, e.g. a trailing "---"
            Accept(collector, document.Index, itemPrefix: null, new YamlObject(root, document.Text, document.FirstLine));
        }
    }

    private static void ReadJson(Collector collector, string content)
    {
        JsonDocument json;
        try
        {
            json = JsonDocument.Parse(content, new JsonDocumentOptions
            {
                CommentHandling = JsonCommentHandling.Skip,
                AllowTrailingCommas = true,
            });
        }
        catch (JsonException ex)
        {
            throw new ManifestFormatException(collector.Path, 1, null,
                $"line {ex.LineNumber + 1}, byte {ex.BytePositionInLine + 1}: {FirstSentence(ex.Message)}", ex);
        }
        using (json)
        {
            if (json.RootElement.ValueKind != JsonValueKind.Object)
                throw new ManifestFormatException(collector.Path, 1, null, "a JSON manifest must be one object (or a List object with items)");
            Accept(collector, 1, itemPrefix: null, new JsonObject(json.RootElement));
        }
    }

    /// <summary>Dispatches one object (a document, or an item of a List) on its apiVersion and kind.</summary>
    private static void Accept(Collector collector, int document, string? itemPrefix, RawObject raw)
    {
        var header = raw.Header;
        var described = itemPrefix + header.Describe();
        if (string.IsNullOrEmpty(header.ApiVersion) || string.IsNullOrEmpty(header.Kind))
        {
            collector.Errors.Add(new ManifestError(collector.Path, document, described, "apiVersion and kind are required; skipped"));
            return;
        }

        switch (header.Kind)
        {
            case "Service":
                AcceptTyped<V1Service>(collector, document, described, raw, ServiceApiVersion, collector.Services);
                return;
            case "EndpointSlice":
                AcceptTyped<V1EndpointSlice>(collector, document, described, raw, EndpointSliceApiVersion, collector.EndpointSlices);
                return;
            case "Pod":
                AcceptTyped<V1Pod>(collector, document, described, raw, PodApiVersion, collector.Pods);
                return;
            case "NetworkPolicy":
                AcceptTyped<V1NetworkPolicy>(collector, document, described, raw, NetworkPolicyApiVersion, collector.NetworkPolicies);
                return;
            case "Namespace":
                AcceptTyped<V1Namespace>(collector, document, described, raw, NamespaceApiVersion, collector.Namespaces);
                return;
            case "Node":
                AcceptTyped<V1Node>(collector, document, described, raw, NodeApiVersion, collector.Nodes);
                return;
        }

        if (header.Kind.EndsWith("List", StringComparison.Ordinal) && raw.Items() is { } items)
        {
            // Items of "kind: List" carry their own apiVersion and kind; items of typed lists
            // (PodList, as the API returns them) may not, and take them from the list.
            var elementKind = header.Kind == "List" ? null : header.Kind[..^"List".Length];
            for (var i = 0; i < items.Count; i++)
            {
                var item = items[i];
                item.Header = item.Header with
                {
                    ApiVersion = item.Header.ApiVersion ?? (elementKind is null ? null : header.ApiVersion),
                    Kind = item.Header.Kind ?? elementKind,
                };
                Accept(collector, document, $"{itemPrefix}items[{i}] ", item);
            }
            return;
        }

        collector.Ignored.Add(new IgnoredManifest(document, header.ApiVersion, header.Kind, header.Name));
    }

    private static void AcceptTyped<T>(Collector collector, int document, string described, RawObject raw, string apiVersion, List<T> into)
        where T : IKubernetesObject<V1ObjectMeta>
    {
        if (raw.Header.ApiVersion != apiVersion)
        {
            collector.Errors.Add(new ManifestError(collector.Path, document, described,
                $"apiVersion {raw.Header.ApiVersion} is not supported for {raw.Header.Kind} (use {apiVersion}); skipped"));
            return;
        }

        T obj;
        try
        {
            obj = raw.Read<T>();
        }
        catch (Exception ex) when (ex is YamlException or JsonException or FormatException or InvalidOperationException
                                       or OverflowException or ArgumentException or NotSupportedException or InvalidCastException)
        {
            throw new ManifestFormatException(collector.Path, document, described, raw.Reason(ex), ex);
        }

        ManifestValidator.Normalize(obj);
        var problem = ManifestValidator.Validate(obj);
        if (problem is not null)
        {
            collector.Errors.Add(new ManifestError(collector.Path, document, described, problem + "; skipped"));
            return;
        }
        into.Add(obj);
    }

    /// <summary>Cuts a YAML stream into its documents, each with its 1-based index and first line.</summary>
    private static List<YamlDocumentText> SplitYamlDocuments(string path, string content, ManifestReadLimits limits)
    {
        var documents = new List<YamlDocumentText>();
        var parser = new Parser(new StringReader(content));
        var index = 0;
        try
        {
            parser.Consume<StreamStart>();
            while (parser.Current is DocumentStart start)
            {
                index++;
                var guard = new ExpansionGuard(limits);
                while (parser.Current is not DocumentEnd)
                {
                    if (guard.Observe(parser.Current) is { } refused)
                        throw new ManifestFormatException(path, index, null, refused);
                    if (!parser.MoveNext())
                        throw new YamlException(start.Start, start.End, "document is not terminated");
                }
                var end = (int)parser.Current.End.Index;
                parser.MoveNext();

                // Start at the beginning of the line so the first key keeps its indentation.
                var from = (int)start.Start.Index;
                while (from > 0 && content[from - 1] is ' ' or '\t')
                    from--;
                documents.Add(new YamlDocumentText(index, content[from..end], (int)start.Start.Line));
            }
            parser.Consume<StreamEnd>();
        }
        catch (YamlException ex)
        {
            throw new ManifestFormatException(path, Math.Max(index, 1), null, YamlReason(ex, firstLine: 1), ex);
        }
        return documents;
    }

    /// <summary>
    /// Follows one document's parse events and refuses it before the deserializer sees it when
    /// it nests deeper than <see cref="ManifestReadLimits.MaxDepth"/> or its aliases would expand
    /// to more than <see cref="ManifestReadLimits.MaxAliasNodes"/> nodes (a "billion laughs"
    /// document of a kilobyte expands to a billion strings). Each node's expanded size is summed
    /// as its collection closes, saturating, so the count itself stays cheap.
    /// </summary>
    private sealed class ExpansionGuard(ManifestReadLimits limits)
    {
        private readonly Dictionary<string, long> _anchorSizes = new(StringComparer.Ordinal);
        private readonly Stack<(string? Anchor, long Size)> _open = new();
        private long _aliasNodes;

        /// <summary>Null while within the limits; otherwise why the document is refused.</summary>
        public string? Observe(ParsingEvent? current)
        {
            switch (current)
            {
                case AnchorAlias alias:
                    var size = _anchorSizes.GetValueOrDefault(alias.Value.Value, 1);
                    _aliasNodes = Saturate(_aliasNodes + size);
                    if (_aliasNodes > limits.MaxAliasNodes)
                        return $"line {alias.Start.Line}: YAML aliases expand to more than {limits.MaxAliasNodes:N0} nodes (an alias bomb?); the file is not read";
                    AddToParent(size);
                    return null;
                case Scalar scalar:
                    if (!scalar.Anchor.IsEmpty)
                        _anchorSizes[scalar.Anchor.Value] = 1;
                    AddToParent(1);
                    return null;
                case SequenceStart or MappingStart:
                    var anchor = ((NodeEvent)current).Anchor;
                    _open.Push((anchor.IsEmpty ? null : anchor.Value, 1));
                    return _open.Count > limits.MaxDepth
                        ? $"line {current.Start.Line}: YAML nested deeper than {limits.MaxDepth} levels; the file is not read"
                        : null;
                case SequenceEnd or MappingEnd when _open.Count > 0:
                    var (name, total) = _open.Pop();
                    if (name is not null)
                        _anchorSizes[name] = total;
                    AddToParent(total);
                    return null;
                default:
                    return null;
            }
        }

        private void AddToParent(long size)
        {
            if (_open.Count > 0)
            {
                var (anchor, total) = _open.Pop();
                _open.Push((anchor, Saturate(total + size)));
            }
        }

        private long Saturate(long value) => Math.Min(value, limits.MaxAliasNodes + 1);
    }

    private static string YamlReason(Exception ex, int firstLine)
    {
        var message = Innermost(ex).Message;
        if (ex is YamlException yaml && firstLine > 0 && yaml.Start.Line > 0)
            return $"line {firstLine + yaml.Start.Line - 1}, column {yaml.Start.Column}: {message}";
        return message;
    }

    private static Exception Innermost(Exception ex)
    {
        while (ex.InnerException is not null)
            ex = ex.InnerException;
        return ex;
    }

    // System.Text.Json appends " Path: ... | LineNumber: ..." to its messages; keep the first sentence.
    private static string FirstSentence(string message)
    {
        var cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        return cut > 0 ? message[..cut] : message;
    }

    private readonly record struct YamlDocumentText(int Index, string Text, int FirstLine);

    private sealed record Header(string? ApiVersion, string? Kind, string? Namespace, string? Name)
    {
        public string Describe()
        {
            var kind = string.IsNullOrEmpty(Kind) ? "object" : Kind;
            if (string.IsNullOrEmpty(Name))
                return $"{kind} without a name";
            return Kind is "Node" or "Namespace" // cluster-scoped
                ? $"{kind} {Name}"
                : $"{kind} {(string.IsNullOrEmpty(Namespace) ? DefaultNamespace : Namespace)}/{Name}";
        }
    }

    /// <summary>One object before it is typed: a YAML mapping or a JSON object.</summary>
    private abstract class RawObject
    {
        public abstract Header Header { get; set; }

        /// <summary>The elements of an <c>items</c> array, or null when there is none.</summary>
        public abstract IReadOnlyList<RawObject>? Items();

        public abstract T Read<T>();

        /// <summary>Why <see cref="Read{T}"/> failed, with the position when known.</summary>
        public abstract string Reason(Exception ex);
    }

    private sealed class YamlObject : RawObject
    {
        private readonly Dictionary<string, object?> _root;
        private readonly string _text;
        private readonly int _firstLine;

        public YamlObject(Dictionary<string, object?> root, string text, int firstLine)
        {
            _root = root;
            _text = text;
            _firstLine = firstLine;
            var metadata = root.GetValueOrDefault("metadata") as IReadOnlyDictionary<object, object?>;
            Header = new Header(
                root.GetValueOrDefault("apiVersion") as string,
                root.GetValueOrDefault("kind") as string,
                metadata?.GetValueOrDefault("namespace") as string,
                metadata?.GetValueOrDefault("name") as string);
        }

        public override Header Header { get; set; }

        public override IReadOnlyList<RawObject>? Items()
        {
            if (_root.GetValueOrDefault("items") is not List<object?> items)
                return null;
            var result = new List<RawObject>(items.Count);
            foreach (var item in items)
            {
                // An item has no text of its own: write it back out (types survive, strings that
                // look like numbers are quoted) and read it like a document. Lines are unknown.
                var map = item as IReadOnlyDictionary<object, object?>;
                var root = map?.ToDictionary(kv => kv.Key.ToString() ?? "", kv => kv.Value, StringComparer.Ordinal)
                    ?? new Dictionary<string, object?>(StringComparer.Ordinal);
                result.Add(new YamlObject(root, KubernetesYaml.Serialize(item), firstLine: 0));
            }
            return result;
        }

        public override T Read<T>() => KubernetesYaml.Deserialize<T>(_text);

        public override string Reason(Exception ex) => YamlReason(ex, _firstLine);
    }

    private sealed class JsonObject : RawObject
    {
        private readonly JsonElement _element;

        public JsonObject(JsonElement element)
        {
            _element = element;
            Header = new Header(
                StringProperty(element, "apiVersion"),
                StringProperty(element, "kind"),
                element.TryGetProperty("metadata", out var metadata) ? StringProperty(metadata, "namespace") : null,
                element.TryGetProperty("metadata", out metadata) ? StringProperty(metadata, "name") : null);
        }

        public override Header Header { get; set; }

        public override IReadOnlyList<RawObject>? Items()
        {
            if (!_element.TryGetProperty("items", out var items) || items.ValueKind != JsonValueKind.Array)
                return null;
            return items.EnumerateArray()
                .Select(item => (RawObject)new JsonObject(item.ValueKind == JsonValueKind.Object ? item : default))
                .ToList();
        }

        public override T Read<T>()
        {
            if (_element.ValueKind != JsonValueKind.Object)
                throw new FormatException("expected a JSON object");
            return KubernetesJson.Deserialize<T>(_element);
        }

        public override string Reason(Exception ex) => ex is JsonException json && json.Path is { } at
            ? $"at {at}: {FirstSentence(Innermost(ex).Message)}"
            : FirstSentence(Innermost(ex).Message);

        private static string? StringProperty(JsonElement element, string name) =>
            element.ValueKind == JsonValueKind.Object
            && element.TryGetProperty(name, out var value)
            && value.ValueKind == JsonValueKind.String
                ? value.GetString()
                : null;
    }

    private sealed class Collector(string path)
    {
        public string Path { get; } = path;
        public List<V1Service> Services { get; } = [];
        public List<V1EndpointSlice> EndpointSlices { get; } = [];
        public List<V1Pod> Pods { get; } = [];
        public List<V1NetworkPolicy> NetworkPolicies { get; } = [];
        public List<V1Namespace> Namespaces { get; } = [];
        public List<V1Node> Nodes { get; } = [];
        public List<ManifestError> Errors { get; } = [];
        public List<IgnoredManifest> Ignored { get; } = [];

        public ManifestFile Build() => new(
            Path,
            [.. Services],
            [.. EndpointSlices],
            [.. Pods],
            [.. Errors],
            [.. Ignored])
        {
            NetworkPolicies = [.. NetworkPolicies],
            Namespaces = [.. Namespaces],
            Nodes = [.. Nodes],
        };
    }
}
