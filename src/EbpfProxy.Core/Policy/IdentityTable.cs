using EbpfProxy.Core.Planning;

namespace EbpfProxy.Core.Policy;

/// <summary>
/// Identity numbers by key, kept across computations: a key keeps its number while it is in use;
/// a number whose key went away is not handed out again until the allocator wraps (24 bits).
/// </summary>
internal sealed class IdentityTable
{
    private readonly Dictionary<IdentityKey, uint> _numberOf = new();
    private readonly Dictionary<uint, IdentityKey> _keyOf = new();
    private uint _highWater = ReservedIdentity.FirstAllocated - 1;

    public IReadOnlyDictionary<uint, IdentityKey> Keys => _keyOf;

    public uint this[IdentityKey key] => _numberOf[key];

    /// <summary>The instance the table holds for a key equal to <paramref name="key"/> (else the key itself), so equal keys compare by reference.</summary>
    public IdentityKey Canonical(IdentityKey key) => _numberOf.TryGetValue(key, out var id) ? _keyOf[id] : key;

    /// <summary>
    /// Makes the table hold exactly <paramref name="inUse"/> (each key with the prefixes that have
    /// it): keeps the numbers of keys still in use, forgets the others, and numbers new keys. A
    /// new key first gets a number the pinned ipcache held for its prefixes (<paramref name="hints"/>,
    /// first computation only: the number most of its prefixes held wins, ties to the lower number,
    /// and a number goes to one key only), else the next from the allocator, in key order (so equal
    /// input gives equal numbers). Hinted numbers that no key re-adopted are not handed out in this
    /// pass: they are still in the maps until the sync removes them.
    /// </summary>
    /// <returns>The numbers that went away and the keys that got one.</returns>
    public (List<uint> Removed, List<IdentityKey> Added) Update(Dictionary<IdentityKey, List<Ipv4Prefix>> inUse, PolicyHints? hints)
    {
        var removed = new List<uint>();
        foreach (var (key, id) in _numberOf)
            if (!inUse.ContainsKey(key))
                removed.Add(id);
        foreach (var id in removed)
        {
            _numberOf.Remove(_keyOf[id]);
            _keyOf.Remove(id);
        }
        var added = inUse.Keys.Where(k => !_numberOf.ContainsKey(k)).ToList();
        if (added.Count == 0)
            return (removed, added);

        var hinted = new HashSet<uint>();
        if (hints is not null)
        {
            hinted.UnionWith(hints.IpCache.Values.Where(v => v is >= ReservedIdentity.FirstAllocated and <= ReservedIdentity.MaxAllocated));
            var votes = new Dictionary<(IdentityKey Key, uint Id), int>();
            foreach (var key in added)
                foreach (var prefix in inUse[key])
                    if (hints.IpCache.TryGetValue(prefix.ToNetwork(), out var id) && hinted.Contains(id))
                        votes[(key, id)] = votes.GetValueOrDefault((key, id)) + 1;
            foreach (var ((key, id), _) in votes.OrderByDescending(v => v.Value).ThenBy(v => v.Key.Id).ThenBy(v => v.Key.Key.ToString(), StringComparer.Ordinal))
                if (!_numberOf.ContainsKey(key) && !_keyOf.ContainsKey(id))
                    Set(key, id);
            if (hinted.Count > 0)
                _highWater = Math.Max(_highWater, hinted.Max());
        }

        var fresh = added.Where(k => !_numberOf.ContainsKey(k)).ToList();
        fresh.Sort((a, b) => string.CompareOrdinal(a.ToString(), b.ToString()));
        var allocator = new IdAllocator(
            id => id < ReservedIdentity.FirstAllocated || _keyOf.ContainsKey(id) || hinted.Contains(id),
            (int)ReservedIdentity.FirstAllocated - 1 + _keyOf.Count + hinted.Count(h => !_keyOf.ContainsKey(h)),
            ReservedIdentity.MaxAllocated, _highWater);
        foreach (var key in fresh)
        {
            if (!allocator.TryAllocate(out var id))
                throw new InvalidOperationException($"identity numbers exhausted ({_keyOf.Count} in use)");
            Set(key, id);
        }
        _highWater = allocator.HighWater;
        return (removed, added);
    }

    private void Set(IdentityKey key, uint id)
    {
        _numberOf[key] = id;
        _keyOf[id] = key;
    }
}
