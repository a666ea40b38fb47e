using System.Collections.Immutable;
using System.Net;

namespace EbpfProxy.Core.Policy;

/// <summary>
/// The set of every ipBlock prefix (cidr and except entries) of the translated policies, and the
/// CIDR signature of an address or prefix: the prefixes of the set that contain it. A lookup
/// costs one hash probe per distinct prefix length in the set; equal signatures share one array.
/// </summary>
internal sealed class PrefixIndex
{
    private readonly Dictionary<Ipv4Prefix, int> _ordinal = new();
    private readonly byte[] _lengths;
    private readonly IPNetwork[] _networks;
    private readonly Dictionary<string, ImmutableArray<IPNetwork>> _signatures = new(StringComparer.Ordinal);

    public PrefixIndex(IEnumerable<Ipv4Prefix> prefixes)
    {
        All = [.. prefixes.Distinct().Order()];
        _networks = new IPNetwork[All.Length];
        for (int i = 0; i < All.Length; i++)
        {
            _ordinal[All[i]] = i;
            _networks[i] = All[i].ToNetwork();
        }
        _lengths = [.. All.Select(p => p.Length).Distinct().Order()];
    }

    public static PrefixIndex Empty { get; } = new([]);

    /// <summary>The distinct prefixes, sorted by address then length.</summary>
    public ImmutableArray<Ipv4Prefix> All { get; }

    /// <summary>The prefixes of the set that contain all of <paramref name="prefix"/> (for an address: its /32), sorted.</summary>
    public ImmutableArray<IPNetwork> SignatureOf(Ipv4Prefix prefix)
    {
        if (_lengths.Length == 0)
            return [];
        Span<int> found = stackalloc int[33];
        int n = 0;
        foreach (var len in _lengths)
        {
            if (len > prefix.Length)
                break;
            if (_ordinal.TryGetValue(Ipv4Prefix.Of(prefix.Address, len), out int i))
                found[n++] = i;
        }
        if (n == 0)
            return [];
        var hits = found[..n];
        hits.Sort();
        // Intern by the ordinals, two chars each, so pods in the same blocks share one array.
        var name = string.Create(n * 2, hits.ToArray(), static (chars, ords) =>
        {
            for (int j = 0; j < ords.Length; j++)
            {
                chars[2 * j] = (char)(ords[j] >> 16);
                chars[2 * j + 1] = (char)(ords[j] & 0xFFFF);
            }
        });
        if (!_signatures.TryGetValue(name, out var signature))
        {
            var builder = ImmutableArray.CreateBuilder<IPNetwork>(n);
            foreach (var i in hits)
                builder.Add(_networks[i]);
            _signatures[name] = signature = builder.MoveToImmutable();
        }
        return signature;
    }
}
