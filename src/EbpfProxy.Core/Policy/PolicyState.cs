using System.Net;
using System.Net.Sockets;
using EbpfProxy.Core.Model;

namespace EbpfProxy.Core.Policy;

/// <summary>POL_EP_F_* (bpf/lib/policy_types.h): the directions in which some policy isolates a local pod.</summary>
[Flags]
public enum PolicyIsolation : uint
{
    None = 0,
    Ingress = 1 << 0,
    Egress = 1 << 1,
}

/// <summary>
/// What the NetworkPolicy maps hold, or should hold (docs/policy.md), in model form: the policy
/// stage reads it back from the pins at start and keeps it in step with every write through
/// <see cref="Apply"/>, as <see cref="Planning.LbState"/> is kept for the service maps; the
/// <see cref="PolicyPlanner"/> diffs it against the desired state. Values compare by content, so
/// two states with the same entries are equal whatever their collections. A copy (<c>with</c>,
/// <see cref="Copy"/>) owns its collections.
/// </summary>
public sealed record PolicyState
{
    private Dictionary<IPNetwork, uint> _ipcache = new();
    private Dictionary<IPAddress, EndpointEntry> _endpoints = new();
    private HashSet<PolicyRule> _rules = new();

    public PolicyState()
    {
    }

    private PolicyState(PolicyState other)
    {
        _ipcache = new(other._ipcache);
        _endpoints = new(other._endpoints);
        _rules = new(other._rules);
    }

    public static PolicyState Empty => new();

    /// <summary>
    /// pol_ipcache: address prefix -> identity of the peers in it: every pod address (/32) of the
    /// cluster, every ipBlock prefix, this node's addresses (<see cref="ReservedIdentity.Host"/>).
    /// An address no prefix covers is <see cref="ReservedIdentity.World"/>. Prefixes are IPv4, host
    /// bits clear; identities are never <see cref="ReservedIdentity.Any"/>.
    /// </summary>
    public IReadOnlyDictionary<IPNetwork, uint> Ipcache { get => _ipcache; init => _ipcache = new(value); }

    /// <summary>pol_endpoints: local pod address -> its endpoint. A pod without an entry is not isolated.</summary>
    public IReadOnlyDictionary<IPAddress, EndpointEntry> Endpoints { get => _endpoints; init => _endpoints = new(value); }

    /// <summary>pol_rules: what isolated endpoints admit. Presence admits.</summary>
    public IReadOnlySet<PolicyRule> Rules { get => _rules; init => _rules = new(value); }

    /// <summary>A copy that owns its collections.</summary>
    public PolicyState Copy() => new(this);

    /// <summary>Applies one operation to this model (what the executor does to the real maps).</summary>
    public void Apply(PolicyOp op)
    {
        switch (op)
        {
            case PolicyOp.UpsertIpcache u:
                _ipcache[u.Prefix] = u.Identity;
                break;
            case PolicyOp.DeleteIpcache d:
                _ipcache.Remove(d.Prefix);
                break;
            case PolicyOp.UpsertEndpoint u:
                _endpoints[u.Address] = u.Endpoint;
                break;
            case PolicyOp.DeleteEndpoint d:
                _endpoints.Remove(d.Address);
                break;
            case PolicyOp.UpsertRule u:
                _rules.Add(u.Rule);
                break;
            case PolicyOp.DeleteRule d:
                _rules.Remove(d.Rule);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op, "unknown operation");
        }
    }

    public bool Equals(PolicyState? other) =>
        other is not null
        && Ipcache.Count == other.Ipcache.Count && Ipcache.All(kv => other.Ipcache.TryGetValue(kv.Key, out var v) && v == kv.Value)
        && Endpoints.Count == other.Endpoints.Count && Endpoints.All(kv => other.Endpoints.TryGetValue(kv.Key, out var v) && v == kv.Value)
        && Rules.SetEquals(other.Rules);

    public override int GetHashCode() => HashCode.Combine(Ipcache.Count, Endpoints.Count, Rules.Count);

    /// <summary>Every problem that makes this state unwritable (empty when it is valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        foreach (var (prefix, identity) in Ipcache)
        {
            if (prefix.BaseAddress.AddressFamily != AddressFamily.InterNetwork)
                problems.Add($"ipcache {prefix}: only IPv4 is supported so far");
            if (identity == ReservedIdentity.Any)
                problems.Add($"ipcache {prefix}: identity 0 is the rule wildcard, never a peer's identity");
        }
        foreach (var (address, ep) in Endpoints)
        {
            if (address.AddressFamily != AddressFamily.InterNetwork)
                problems.Add($"endpoint {address}: only IPv4 is supported so far");
            if (ep.EndpointId == 0)
                problems.Add($"endpoint {address}: endpoint id 0 is reserved");
            if ((ep.Isolation & ~(PolicyIsolation.Ingress | PolicyIsolation.Egress)) != 0)
                problems.Add($"endpoint {address}: unknown isolation flags {ep.Isolation}");
        }
        foreach (var rule in Rules)
        {
            if (rule.Problem() is { } problem)
                problems.Add($"rule {rule}: {problem}");
        }
        return problems;
    }
}

/// <summary>A local pod's entry in pol_endpoints.</summary>
/// <param name="EndpointId">Names the pod's rules in <see cref="PolicyState.Rules"/>; never 0. Pods may share one when their rules are the same.</param>
/// <param name="Identity">The pod's own identity (for operators; the datapath judges peers only).</param>
/// <param name="Isolation">The directions in which some policy selects the pod.</param>
public readonly record struct EndpointEntry(uint EndpointId, uint Identity, PolicyIsolation Isolation);

/// <summary>
/// One pol_rules entry: endpoint <see cref="EndpointId"/> admits, in <see cref="Direction"/>, peers
/// of <see cref="RemoteIdentity"/> (<see cref="ReservedIdentity.Any"/>: every peer) with
/// <see cref="Protocol"/> (<see cref="L4Protocol.Any"/>: every protocol and port) on the ports whose
/// leading <see cref="PortBits"/> bits equal <see cref="Port"/>'s (0 bits: every port; 16: one port).
/// The port is the destination's: the local pod's for ingress, the peer's (after service
/// translation) for egress. Build them with the factories; an endPort range is a few aligned blocks
/// (<see cref="PortRange"/>).
/// </summary>
public readonly record struct PolicyRule(uint EndpointId, uint RemoteIdentity, PolicyDirection Direction, L4Protocol Protocol, ushort Port, byte PortBits)
{
    /// <summary>Every protocol and port.</summary>
    public static PolicyRule AllTraffic(uint endpointId, uint remoteIdentity, PolicyDirection direction) =>
        new(endpointId, remoteIdentity, direction, L4Protocol.Any, 0, 0);

    /// <summary>Every port of one protocol (a NetworkPolicy port entry with only a protocol).</summary>
    public static PolicyRule AllPorts(uint endpointId, uint remoteIdentity, PolicyDirection direction, L4Protocol protocol) =>
        new(endpointId, remoteIdentity, direction, protocol, 0, 0);

    /// <summary>One port of one protocol.</summary>
    public static PolicyRule SinglePort(uint endpointId, uint remoteIdentity, PolicyDirection direction, L4Protocol protocol, ushort port) =>
        new(endpointId, remoteIdentity, direction, protocol, port, 16);

    /// <summary>
    /// The inclusive range <paramref name="first"/>..<paramref name="last"/> (port..endPort) as the
    /// fewest aligned blocks, as CIDR ranges are split: 1..65535 is 16 entries, 80..80 one.
    /// </summary>
    public static IEnumerable<PolicyRule> PortRange(uint endpointId, uint remoteIdentity, PolicyDirection direction, L4Protocol protocol, ushort first, ushort last)
    {
        if (last < first)
            throw new ArgumentException($"port range {first}..{last} is empty", nameof(last));
        uint start = first;
        while (start <= last)
        {
            int size = 0; // log2 of the block
            while (size < 16 && (start & ((1u << (size + 1)) - 1)) == 0 && start + (1u << (size + 1)) - 1 <= last)
                size++;
            yield return new PolicyRule(endpointId, remoteIdentity, direction, protocol, (ushort)start, (byte)(16 - size));
            start += 1u << size;
        }
    }

    /// <summary>POL_PREFIX_ALL: endpoint, identity and direction; every protocol and port.</summary>
    public const uint PrefixAll = 72;
    /// <summary>POL_PREFIX_PROTO: every port of one protocol.</summary>
    public const uint PrefixProto = 80;
    /// <summary>POL_PREFIX_FULL: one port; what lookups use.</summary>
    public const uint PrefixFull = 96;

    /// <summary>The LPM prefix length of the key: 72 (every protocol), 80 + port bits.</summary>
    public uint PrefixLen => Protocol == L4Protocol.Any ? PrefixAll : PrefixProto + PortBits;

    /// <summary>The first and last destination port the rule covers, from its prefix (0-65535 with no port bits).</summary>
    public (ushort First, ushort Last) Ports =>
        PortBits == 0 ? ((ushort)0, ushort.MaxValue) : (Port, (ushort)(Port | (0xffff >> PortBits)));

    /// <summary>Whether a packet's (protocol, destination port) falls under this rule.</summary>
    public bool Covers(L4Protocol protocol, ushort port) =>
        Protocol == L4Protocol.Any || (Protocol == protocol && (PortBits == 0 || (port >> (16 - PortBits)) == (Port >> (16 - PortBits))));

    /// <summary>Why the rule cannot be written, or null.</summary>
    public string? Problem()
    {
        if (EndpointId == 0)
            return "endpoint id 0 is reserved";
        if (Direction is not (PolicyDirection.Ingress or PolicyDirection.Egress))
            return $"unknown direction {(byte)Direction}";
        if (PortBits > 16)
            return "a port has 16 bits";
        if (Protocol == L4Protocol.Any && (Port != 0 || PortBits != 0))
            return "a port needs a protocol";
        if (PortBits < 16 && (Port & (0xffff >> PortBits)) != 0)
            return $"port {Port} has bits beyond its {PortBits}-bit prefix";
        return null;
    }

    public override string ToString()
    {
        var peer = RemoteIdentity == ReservedIdentity.Any ? "any" : RemoteIdentity.ToString();
        var what = Protocol == L4Protocol.Any ? "all"
            : PortBits == 0 ? $"{Protocol}/*"
            : PortBits == 16 ? $"{Protocol}/{Port}"
            : $"{Protocol}/{Port}-{Port + (0xffff >> PortBits)}";
        return $"endpoint {EndpointId} {Direction.ToString().ToLowerInvariant()} identity {peer} {what}";
    }
}
