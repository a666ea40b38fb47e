using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Planning;
using EbpfProxy.Core.Policy;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Sync;

namespace EbpfProxy.Datapath.Policy;

/// <summary>What the policy maps hold, names included: the input of `policy get` and `ipcache list`.</summary>
public sealed record PolicyMapsView(
    PolicyState Maps,
    IReadOnlyDictionary<IPAddress, PolEndpointName> EndpointNames,
    IReadOnlyDictionary<uint, string> IdentityNames)
{
    /// <summary>Reads every policy map (pol_rules only when <paramref name="rules"/>: `ipcache list` does without).</summary>
    public static PolicyMapsView Read(PolicyMaps maps, bool rules = true)
    {
        PolicyState state;
        if (rules)
        {
            state = PinnedDatapathMaps.ReadPolicy(maps);
        }
        else
        {
            var ipcache = new Dictionary<IPNetwork, uint>();
            foreach (var (k, v) in maps.Ipcache.Entries())
                ipcache[PinnedDatapathMaps.ToPrefix(k)] = v.Identity;
            state = new PolicyState { Ipcache = ipcache };
        }
        return new PolicyMapsView(state, PinnedDatapathMaps.ReadEndpointNames(maps), PinnedDatapathMaps.ReadIdentityNames(maps));
    }
}

/// <summary>An identity and what it stands for.</summary>
public sealed record IdentityView(uint Id, string Description);

/// <summary>
/// What a pod admits in one direction after the rules are merged: peers of <see cref="Identity"/>
/// (0: any peer) with <see cref="Protocol"/> ("any": every protocol and port) on ports
/// <see cref="FirstPort"/>..<see cref="LastPort"/>, which <see cref="MapEntries"/> pol_rules entries
/// (aligned port blocks of one endPort range, say) express together.
/// </summary>
public sealed record AllowEntry(uint Identity, string Peer, string Protocol, string Ports, ushort FirstPort, ushort LastPort, int MapEntries);

/// <summary>One direction of a pod's policy: isolated or not, and if so what it admits.</summary>
public sealed record DirectionPolicy(bool Isolated, IReadOnlyList<AllowEntry> Allow);

/// <summary>`policy get`: a local pod, its identity, and what its policy admits in each direction.</summary>
public sealed record PodPolicy(
    string Pod, IReadOnlyList<string> Addresses, uint EndpointId, IdentityView Identity, bool Selected,
    DirectionPolicy Ingress, DirectionPolicy Egress, IReadOnlyList<string> Problems);

/// <summary>`ipcache list`: one prefix and its identity.</summary>
public sealed record IpcacheRow(string Prefix, uint Identity, string Description);

/// <summary>A pod `policy get` cannot describe (not a local pod, or not a pod name or address at all).</summary>
public sealed class PolicyLookupException(string message) : Exception(message);

/// <summary>
/// Joins the numeric policy maps with the CLI's names (pol_ep_names, pol_id_names) into what an
/// operator asks: `policy get POD` (<see cref="DescribePod"/>) and `ipcache list`
/// (<see cref="Ipcache"/>), with their text forms. Pure over a <see cref="PolicyMapsView"/>.
/// </summary>
public static partial class PolicyInspector
{
    /// <summary>What a reserved or allocated identity stands for.</summary>
    public static string Describe(uint identity, IReadOnlyDictionary<uint, string> names) => identity switch
    {
        PolicyIdentity.Any => "any peer",
        PolicyIdentity.Host => "this node",
        PolicyIdentity.World => "world (no ipcache entry)",
        < PolicyIdentity.FirstAllocated => "reserved",
        _ => names.TryGetValue(identity, out var text) ? text : "? (no pol_id_names entry)",
    };

    /// <summary>Every ipcache prefix with its identity, by address then prefix length.</summary>
    public static IReadOnlyList<IpcacheRow> Ipcache(PolicyMapsView view) =>
        [.. view.Maps.Ipcache
            .OrderBy(kv => AddressOrder.Key(kv.Key.BaseAddress)).ThenBy(kv => kv.Key.PrefixLength)
            .Select(kv => new IpcacheRow(kv.Key.ToString(), kv.Value, Describe(kv.Value, view.IdentityNames)))];

    /// <summary>
    /// The policy of the local pod <paramref name="pod"/> ("namespace/name" or one of its IPv4
    /// addresses) as the maps hold it.
    /// </summary>
    /// <exception cref="PolicyLookupException">Not a local pod; the message names it.</exception>
    public static PodPolicy DescribePod(PolicyMapsView view, string pod)
    {
        var problems = new List<string>();
        List<IPAddress> addresses;
        string name;
        if (DottedQuad().IsMatch(pod) && IPAddress.TryParse(pod, out var address) && address.AddressFamily == AddressFamily.InterNetwork)
        {
            if (view.EndpointNames.TryGetValue(address, out var entry))
            {
                name = entry.Name;
                addresses = AddressesOf(view, name);
            }
            else if (view.Maps.Endpoints.ContainsKey(address))
            {
                name = "?";
                addresses = [address];
                problems.Add($"pol_endpoints holds {address} but pol_ep_names does not name it (the daemon has not written names since it started, or it predates them)");
            }
            else
            {
                var identity = IdentityOf(view, address);
                var seen = identity == PolicyIdentity.World ? "no ipcache entry covers it (world)" : $"the ipcache gives it identity {identity}: {Describe(identity, view.IdentityNames)}";
                throw new PolicyLookupException($"{address} is not the address of a pod on this node ({seen}); `policy get` shows this node's pods, each node enforces its own");
            }
        }
        else if (pod.Split('/') is [{ Length: > 0 }, { Length: > 0 }])
        {
            name = pod;
            addresses = AddressesOf(view, name);
            if (addresses.Count == 0)
            {
                var count = view.EndpointNames.Values.Select(e => e.Name).Distinct(StringComparer.Ordinal).Count();
                throw new PolicyLookupException($"no pod {pod} on this node: ebpf-proxy names {count} local pods here; `policy get` shows this node's pods, each node enforces its own");
            }
        }
        else
        {
            throw new PolicyLookupException($"'{pod}' is neither namespace/name nor an IPv4 address");
        }

        // A pod's addresses share its endpoint id, identity and isolation; the first one speaks.
        var first = addresses[0];
        var ids = addresses.Select(a => view.EndpointNames.TryGetValue(a, out var e) ? e.EndpointId : 0).Distinct().ToList();
        if (ids.Count > 1)
            problems.Add($"its addresses name different endpoint ids ({string.Join(", ", ids)}); showing those of {first}");
        uint namedId = view.EndpointNames.TryGetValue(first, out var named) ? named.EndpointId : 0;
        bool hasEntry = view.Maps.Endpoints.TryGetValue(first, out var ep);
        if (hasEntry && namedId != 0 && namedId != ep.EndpointId)
            problems.Add($"pol_endpoints gives endpoint id {ep.EndpointId}, pol_ep_names {namedId}; showing {ep.EndpointId}'s rules, which the datapath uses");
        uint endpointId = hasEntry ? ep.EndpointId : namedId;
        uint self = hasEntry ? ep.Identity : IdentityOf(view, first);
        var isolation = hasEntry ? ep.Isolation : PolicyIsolation.None;

        var rules = view.Maps.Rules.Where(r => r.EndpointId == endpointId).ToList();
        DirectionPolicy Direction(PolicyIsolation flag, PolicyDirection dir)
        {
            bool isolated = (isolation & flag) != 0;
            var mine = rules.Where(r => r.Direction == dir).ToList();
            if (!isolated && mine.Count > 0)
                problems.Add($"{dir.ToString().ToLowerInvariant()}: {mine.Count} pol_rules entries, but the direction is not isolated (they have no effect)");
            return new DirectionPolicy(isolated, isolated ? Merge(mine, view.IdentityNames) : []);
        }

        return new PodPolicy(
            name, [.. addresses.Select(a => a.ToString())], endpointId, new IdentityView(self, Describe(self, view.IdentityNames)),
            isolation != PolicyIsolation.None,
            Direction(PolicyIsolation.Ingress, PolicyDirection.Ingress), Direction(PolicyIsolation.Egress, PolicyDirection.Egress), problems);
    }

    /// <summary>
    /// Rules of one direction as allow entries: per (identity, protocol), the port blocks of the
    /// LPM prefixes, adjacent ones merged into ranges; sorted by identity, protocol, first port.
    /// </summary>
    public static IReadOnlyList<AllowEntry> Merge(IEnumerable<PolicyRule> rules, IReadOnlyDictionary<uint, string> identityNames)
    {
        var entries = new List<AllowEntry>();
        foreach (var group in rules.GroupBy(r => (r.RemoteIdentity, r.Protocol)).OrderBy(g => g.Key.RemoteIdentity).ThenBy(g => g.Key.Protocol))
        {
            var (identity, protocol) = group.Key;
            var peer = Describe(identity, identityNames);
            int first = -1, last = -1, count = 0;
            foreach (var (from, to) in group.Select(r => r.Ports).OrderBy(p => p.First).ThenByDescending(p => p.Last))
            {
                if (count > 0 && from <= last + 1)
                {
                    last = Math.Max(last, to);
                    count++;
                    continue;
                }
                if (count > 0)
                    entries.Add(Entry(identity, peer, protocol, first, last, count));
                (first, last, count) = (from, to, 1);
            }
            if (count > 0)
                entries.Add(Entry(identity, peer, protocol, first, last, count));
        }
        return entries;
    }

    private static AllowEntry Entry(uint identity, string peer, L4Protocol protocol, int first, int last, int count) =>
        protocol == L4Protocol.Any
            ? new AllowEntry(identity, peer, "any", "any", 0, ushort.MaxValue, count)
            : new AllowEntry(identity, peer, protocol.ToString().ToUpperInvariant(), PortText(first, last), (ushort)first, (ushort)last, count);

    /// <summary>"any" (every port), "80", or "8000-8010".</summary>
    public static string PortText(int first, int last) =>
        (first, last) switch
        {
            (0, ushort.MaxValue) => "any",
            _ when first == last => first.ToString(),
            _ => $"{first}-{last}",
        };

    /// <summary>The text `policy get` prints.</summary>
    public static string Format(PodPolicy p)
    {
        var sb = new StringBuilder();
        sb.Append($"pod        {p.Pod}\n");
        sb.Append($"addresses  {string.Join(", ", p.Addresses)}\n");
        sb.Append($"endpoint   {p.EndpointId}\n");
        sb.Append($"identity   {p.Identity.Id}  {p.Identity.Description}\n");
        if (!p.Selected)
        {
            sb.Append("policy     no policy selects it: all traffic admitted\n");
        }
        else
        {
            FormatDirection(sb, "ingress", p.Ingress);
            FormatDirection(sb, "egress", p.Egress);
        }
        foreach (var problem in p.Problems)
            sb.Append($"problem    {problem}\n");
        return sb.ToString();
    }

    private static void FormatDirection(StringBuilder sb, string name, DirectionPolicy d)
    {
        if (!d.Isolated)
        {
            sb.Append($"{name,-10} not isolated: all traffic admitted\n");
            return;
        }
        if (d.Allow.Count == 0)
        {
            sb.Append($"{name,-10} isolated: admits nothing\n");
            return;
        }
        sb.Append($"{name,-10} isolated: admits\n");
        var rows = new List<string[]> { new[] { "IDENTITY", "PROTOCOL", "PORTS", "PEER" } };
        rows.AddRange(d.Allow.Select(a => new[] { a.Identity.ToString(), a.Protocol, a.Ports, a.Peer }));
        sb.Append(TextTable.Format(rows, "  "));
    }

    /// <summary>The text `ipcache list` prints.</summary>
    public static string Format(IReadOnlyList<IpcacheRow> rows)
    {
        if (rows.Count == 0)
            return "(no ipcache entries)\n";
        var table = new List<string[]> { new[] { "PREFIX", "IDENTITY", "DESCRIPTION" } };
        table.AddRange(rows.Select(r => new[] { r.Prefix, r.Identity.ToString(), r.Description }));
        return TextTable.Format(table);
    }

    private static List<IPAddress> AddressesOf(PolicyMapsView view, string name) =>
        [.. view.EndpointNames.Where(kv => kv.Value.Name == name).Select(kv => kv.Key).OrderBy(AddressOrder.Key)];

    /// <summary>The identity the datapath gives <paramref name="address"/>: its longest ipcache prefix, else world.</summary>
    public static uint IdentityOf(PolicyMapsView view, IPAddress address)
    {
        uint a = BinaryPrimitives.ReadUInt32BigEndian(address.GetAddressBytes());
        uint identity = PolicyIdentity.World;
        int best = -1;
        foreach (var (prefix, id) in view.Maps.Ipcache)
        {
            int len = prefix.PrefixLength;
            uint mask = len == 0 ? 0 : uint.MaxValue << (32 - len);
            if (len > best && (a & mask) == BinaryPrimitives.ReadUInt32BigEndian(prefix.BaseAddress.GetAddressBytes()))
                (best, identity) = (len, id);
        }
        return identity;
    }

    [GeneratedRegex(@"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")]
    private static partial Regex DottedQuad();
}

/// <summary>Left-aligned columns separated by two spaces, trailing blanks trimmed.</summary>
public static class TextTable
{
    public static string Format(IReadOnlyList<string[]> rows, string indent = "")
    {
        var widths = Enumerable.Range(0, rows[0].Length).Select(c => rows.Max(row => row[c].Length)).ToArray();
        var sb = new StringBuilder();
        foreach (var row in rows)
            sb.Append(indent).Append(string.Join("  ", row.Select((cell, c) => cell.PadRight(widths[c]))).TrimEnd()).Append('\n');
        return sb.ToString();
    }
}
