namespace EbpfProxy.Testing.KubeApi;

/// <summary>Thrown for a malformed or unsupported selector; served as 400 BadRequest.</summary>
internal sealed class SelectorException(string message) : Exception(message);

/// <summary>
/// A parsed <c>labelSelector</c>: comma-separated requirements, all of which must hold.
/// Supports <c>k=v</c>, <c>k==v</c>, <c>k!=v</c>, <c>k</c>, <c>!k</c>, <c>k in (a,b)</c>, <c>k notin (a,b)</c>
/// with Kubernetes semantics (<c>!=</c> and <c>notin</c> also match objects without the label).
/// </summary>
internal sealed class LabelSelector
{
    private enum Op { Equals, NotEquals, Exists, NotExists, In, NotIn }

    private sealed record Requirement(string Key, Op Op, string[] Values);

    private readonly Requirement[] _requirements;

    private LabelSelector(Requirement[] requirements) => _requirements = requirements;

    public static LabelSelector Everything { get; } = new([]);

    public bool IsEmpty => _requirements.Length == 0;

    public static LabelSelector Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return Everything;
        }
        var requirements = new List<Requirement>();
        foreach (string raw in SplitTopLevel(text))
        {
            string part = raw.Trim();
            if (part.Length == 0)
            {
                throw new SelectorException($"invalid label selector \"{text}\": empty requirement");
            }
            requirements.Add(ParseRequirement(part, text));
        }
        return new LabelSelector([.. requirements]);
    }

    public bool Matches(IReadOnlyDictionary<string, string> labels)
    {
        foreach (Requirement r in _requirements)
        {
            bool has = labels.TryGetValue(r.Key, out string? value);
            bool ok = r.Op switch
            {
                Op.Equals => has && value == r.Values[0],
                Op.NotEquals => !has || value != r.Values[0],
                Op.Exists => has,
                Op.NotExists => !has,
                Op.In => has && r.Values.Contains(value),
                Op.NotIn => !has || !r.Values.Contains(value),
                _ => false,
            };
            if (!ok)
            {
                return false;
            }
        }
        return true;
    }

    private static Requirement ParseRequirement(string part, string whole)
    {
        if (part.StartsWith('!'))
        {
            return new Requirement(ValidKey(part[1..].Trim(), whole), Op.NotExists, []);
        }
        int neq = part.IndexOf("!=", StringComparison.Ordinal);
        if (neq >= 0)
        {
            return new Requirement(ValidKey(part[..neq].Trim(), whole), Op.NotEquals, [part[(neq + 2)..].Trim()]);
        }
        int eq2 = part.IndexOf("==", StringComparison.Ordinal);
        if (eq2 >= 0)
        {
            return new Requirement(ValidKey(part[..eq2].Trim(), whole), Op.Equals, [part[(eq2 + 2)..].Trim()]);
        }
        int eq = part.IndexOf('=');
        if (eq >= 0)
        {
            return new Requirement(ValidKey(part[..eq].Trim(), whole), Op.Equals, [part[(eq + 1)..].Trim()]);
        }
        int paren = part.IndexOf('(');
        if (paren >= 0)
        {
            if (!part.EndsWith(')'))
            {
                throw new SelectorException($"invalid label selector \"{whole}\": missing ')'");
            }
            string[] words = part[..paren].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (words.Length != 2 || (words[1] != "in" && words[1] != "notin"))
            {
                throw new SelectorException($"invalid label selector \"{whole}\": expected 'key in (…)' or 'key notin (…)'");
            }
            string[] values = part[(paren + 1)..^1].Split(',', StringSplitOptions.TrimEntries);
            return new Requirement(ValidKey(words[0], whole), words[1] == "in" ? Op.In : Op.NotIn, values);
        }
        return new Requirement(ValidKey(part, whole), Op.Exists, []);
    }

    private static string ValidKey(string key, string whole)
    {
        if (key.Length == 0 || key.Any(c => char.IsWhiteSpace(c) || c is '(' or ')' or ',' or '!' or '='))
        {
            throw new SelectorException($"invalid label selector \"{whole}\": invalid key \"{key}\"");
        }
        return key;
    }

    private static IEnumerable<string> SplitTopLevel(string text)
    {
        int depth = 0;
        int start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            switch (text[i])
            {
                case '(':
                    depth++;
                    break;
                case ')':
                    depth--;
                    break;
                case ',' when depth == 0:
                    yield return text[start..i];
                    start = i + 1;
                    break;
            }
        }
        yield return text[start..];
    }
}

/// <summary>
/// A parsed <c>fieldSelector</c>: comma-separated <c>field=value</c>, <c>field==value</c>, <c>field!=value</c>,
/// restricted to the fields the resource supports (<see cref="KubeResource.SupportedFields"/>), like the real server.
/// A missing field compares as the empty string (so <c>spec.nodeName=</c> selects unscheduled pods).
/// </summary>
internal sealed class FieldSelector
{
    private sealed record Requirement(string Field, bool Negated, string Value);

    private readonly Requirement[] _requirements;

    private FieldSelector(Requirement[] requirements) => _requirements = requirements;

    public static FieldSelector Everything { get; } = new([]);

    public bool IsEmpty => _requirements.Length == 0;

    public static FieldSelector Parse(string? text, KubeResource resource)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return Everything;
        }
        var requirements = new List<Requirement>();
        foreach (string raw in text.Split(','))
        {
            string part = raw.Trim();
            bool negated = false;
            int at = part.IndexOf("!=", StringComparison.Ordinal);
            int opLength = 2;
            if (at >= 0)
            {
                negated = true;
            }
            else if ((at = part.IndexOf("==", StringComparison.Ordinal)) < 0)
            {
                at = part.IndexOf('=');
                opLength = 1;
            }
            if (at <= 0)
            {
                throw new SelectorException($"invalid field selector \"{text}\": expected field=value");
            }
            string field = part[..at].Trim();
            if (!resource.SupportedFields.Contains(field))
            {
                throw new SelectorException($"field label not supported: {field}");
            }
            requirements.Add(new Requirement(field, negated, part[(at + opLength)..].Trim()));
        }
        return new FieldSelector([.. requirements]);
    }

    /// <summary>Adds <c>metadata.name=name</c> (used for watches on a single object path).</summary>
    public FieldSelector WithName(string name) => new([.. _requirements, new Requirement("metadata.name", false, name)]);

    public bool Matches(StoredObject obj)
    {
        foreach (Requirement r in _requirements)
        {
            bool equal = obj.GetField(r.Field) == r.Value;
            if (equal == r.Negated)
            {
                return false;
            }
        }
        return true;
    }
}
