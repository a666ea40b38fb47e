using k8s.Models;

namespace EbpfProxy.Core.Policy;

/// <summary>An immutable set of labels, sorted by key (ordinal), with value equality.</summary>
public sealed class LabelSet : IEquatable<LabelSet>
{
    private readonly string[] _keys;
    private readonly string[] _values;
    private readonly int _hash;
    private string? _text;

    private LabelSet(string[] keys, string[] values)
    {
        _keys = keys;
        _values = values;
        var h = new HashCode();
        for (int i = 0; i < keys.Length; i++)
        {
            h.Add(keys[i], StringComparer.Ordinal);
            h.Add(values[i], StringComparer.Ordinal);
        }
        _hash = h.ToHashCode();
    }

    public static LabelSet Empty { get; } = new([], []);

    public static LabelSet From(IEnumerable<KeyValuePair<string, string>>? labels)
    {
        if (labels is null)
            return Empty;
        var pairs = labels.Where(kv => kv.Key is not null).ToArray();
        if (pairs.Length == 0)
            return Empty;
        Array.Sort(pairs, (a, b) => string.CompareOrdinal(a.Key, b.Key));
        return new LabelSet([.. pairs.Select(p => p.Key)], [.. pairs.Select(p => p.Value ?? "")]);
    }

    public int Count => _keys.Length;

    public IEnumerable<KeyValuePair<string, string>> Pairs => _keys.Select((k, i) => KeyValuePair.Create(k, _values[i]));

    public bool TryGetValue(string key, out string value)
    {
        int i = Array.BinarySearch(_keys, key, StringComparer.Ordinal);
        value = i >= 0 ? _values[i] : "";
        return i >= 0;
    }

    public bool ContainsKey(string key) => Array.BinarySearch(_keys, key, StringComparer.Ordinal) >= 0;

    /// <summary>This set with <paramref name="key"/> set to <paramref name="value"/>.</summary>
    public LabelSet With(string key, string value) =>
        TryGetValue(key, out var v) && v == value ? this : From(Pairs.Where(p => p.Key != key).Append(KeyValuePair.Create(key, value)));

    public bool Equals(LabelSet? other) =>
        ReferenceEquals(this, other)
        || (other is not null && _hash == other._hash && _keys.AsSpan().SequenceEqual(other._keys) && _values.AsSpan().SequenceEqual(other._values));

    public override bool Equals(object? obj) => Equals(obj as LabelSet);

    public override int GetHashCode() => _hash;

    /// <summary>"a=1,b=2", sorted by key.</summary>
    public override string ToString() => _text ??= string.Join(",", _keys.Select((k, i) => $"{k}={_values[i]}"));
}

/// <summary>
/// A compiled Kubernetes label selector (metav1.LabelSelector): matchLabels and matchExpressions,
/// AND-ed. In, NotIn, Exists, DoesNotExist; NotIn and DoesNotExist are satisfied by objects that
/// lack the key. An empty selector matches everything; a null one, in the API's generic meaning,
/// nothing (callers where a null selector means "all" say so). Invalid selectors (unknown
/// operator, In/NotIn without values, Exists/DoesNotExist with values, an empty key) do not
/// compile: <see cref="TryParse"/> says why.
/// </summary>
public sealed class LabelSelector
{
    private enum Op : byte { In, NotIn, Exists, DoesNotExist }

    private readonly record struct Requirement(string Key, Op Op, string[] Values)
    {
        public override string ToString() => Op switch
        {
            Op.In when Values.Length == 1 => $"{Key}={Values[0]}",
            Op.In => $"{Key} in ({string.Join(",", Values)})",
            Op.NotIn => $"{Key} notin ({string.Join(",", Values)})",
            Op.Exists => Key,
            _ => $"!{Key}",
        };
    }

    private readonly Requirement[] _requirements;
    private readonly bool _nothing;

    private LabelSelector(Requirement[] requirements, bool nothing)
    {
        _requirements = requirements;
        _nothing = nothing;
        Text = nothing ? "<none>" : Format(requirements);
    }

    /// <summary>Matches every label set (the selector <c>{}</c>).</summary>
    public static LabelSelector Everything { get; } = new([], nothing: false);

    /// <summary>Matches no label set (a null selector in the API's generic meaning).</summary>
    public static LabelSelector Nothing { get; } = new([], nothing: true);

    /// <summary>True for a selector that matches every label set.</summary>
    public bool IsEverything => !_nothing && _requirements.Length == 0;

    /// <summary>Canonical text (requirements sorted): equal text, equal selection.</summary>
    public string Text { get; }

    public override string ToString() => Text;

    /// <summary>Compiles a selector; null gives <see cref="Nothing"/>.</summary>
    public static bool TryParse(V1LabelSelector? selector, out LabelSelector result, out string? error)
    {
        error = null;
        if (selector is null)
        {
            result = Nothing;
            return true;
        }
        var reqs = new List<Requirement>();
        foreach (var (key, value) in selector.MatchLabels ?? new Dictionary<string, string>())
        {
            if (string.IsNullOrEmpty(key))
                return Fail("matchLabels has an empty key", out result, out error);
            reqs.Add(new Requirement(key, Op.In, [value ?? ""]));
        }
        foreach (var e in selector.MatchExpressions ?? [])
        {
            if (e is null)
                continue;
            if (string.IsNullOrEmpty(e.Key))
                return Fail("a matchExpressions entry has an empty key", out result, out error);
            var values = (e.Values ?? []).Select(v => v ?? "").Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
            Op op;
            switch (e.OperatorProperty)
            {
                case "In": op = Op.In; break;
                case "NotIn": op = Op.NotIn; break;
                case "Exists": op = Op.Exists; break;
                case "DoesNotExist": op = Op.DoesNotExist; break;
                default:
                    return Fail($"matchExpressions key '{e.Key}': '{e.OperatorProperty}' is not a valid operator (In, NotIn, Exists, DoesNotExist)", out result, out error);
            }
            if (op is Op.In or Op.NotIn && values.Length == 0)
                return Fail($"matchExpressions key '{e.Key}': operator {e.OperatorProperty} needs at least one value", out result, out error);
            if (op is Op.Exists or Op.DoesNotExist && values.Length > 0)
                return Fail($"matchExpressions key '{e.Key}': operator {e.OperatorProperty} takes no values", out result, out error);
            reqs.Add(new Requirement(e.Key, op, values));
        }
        reqs.Sort((a, b) => string.CompareOrdinal(a.ToString(), b.ToString()));
        result = reqs.Count == 0 ? Everything : new LabelSelector([.. reqs], nothing: false);
        return true;
    }

    private static bool Fail(string message, out LabelSelector result, out string? error)
    {
        result = Nothing;
        error = message;
        return false;
    }

    public bool Matches(LabelSet labels)
    {
        if (_nothing)
            return false;
        foreach (var r in _requirements)
        {
            bool has = labels.TryGetValue(r.Key, out var value);
            bool ok = r.Op switch
            {
                Op.In => has && Contains(r.Values, value),
                Op.NotIn => !has || !Contains(r.Values, value),
                Op.Exists => has,
                _ => !has,
            };
            if (!ok)
                return false;
        }
        return true;
    }

    private static bool Contains(string[] values, string value)
    {
        foreach (var v in values)
            if (string.Equals(v, value, StringComparison.Ordinal))
                return true;
        return false;
    }

    private static string Format(Requirement[] requirements) =>
        requirements.Length == 0 ? "{}" : string.Join(",", requirements);
}
