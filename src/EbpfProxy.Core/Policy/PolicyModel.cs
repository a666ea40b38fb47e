using System.Collections.Immutable;
using System.Net;
using EbpfProxy.Core.Model;

namespace EbpfProxy.Core.Policy;

/// <summary>Identity numbers with a fixed meaning (docs/policy.md, "Identities").</summary>
public static class ReservedIdentity
{
    /// <summary>"Any peer": a wildcard in rule keys only, never in the ipcache.</summary>
    public const uint Any = 0;

    /// <summary>This node: its own addresses.</summary>
    public const uint Host = 1;

    /// <summary>No ipcache entry matched (the datapath's default; Core never writes it).</summary>
    public const uint World = 2;

    /// <summary>The first number Core allocates; 3-255 stay reserved.</summary>
    public const uint FirstAllocated = 256;

    /// <summary>The highest number Core allocates (24 bits, room for a cluster id above them later).</summary>
    public const uint MaxAllocated = 0x00FF_FFFF;

    /// <summary>"any", "host", "world" for the reserved numbers; null for allocated ones.</summary>
    public static string? NameOf(uint identity) => identity switch
    {
        Any => "any",
        Host => "host",
        World => "world",
        _ => null,
    };
}

/// <summary>Traffic direction as seen from a local pod (the value of the rule key's <c>dir</c> byte).</summary>
public enum PolicyDirection : byte
{
    Ingress = 1,
    Egress = 2,
}

/// <summary>pol_endpoints value flags (mirror the flags of bpf/lib/policy_types.h).</summary>
[Flags]
public enum EndpointFlags : uint
{
    None = 0,
    IngressIsolated = 1 << 0,
    EgressIsolated = 1 << 1,
}

/// <summary>A named container port as a pod declares it: name, protocol, number.</summary>
public readonly record struct NamedPort(string Name, L4Protocol Protocol, ushort Port) : IComparable<NamedPort>
{
    public int CompareTo(NamedPort other)
    {
        int c = string.CompareOrdinal(Name, other.Name);
        if (c != 0)
            return c;
        c = Protocol.CompareTo(other.Protocol);
        return c != 0 ? c : Port.CompareTo(other.Port);
    }

    public override string ToString() => $"{Name}/{Protocol.ToString().ToUpperInvariant()}={Port}";
}

/// <summary>
/// What an allocated identity stands for. A pod identity: the pod's namespace, its labels, its
/// namespace's labels (with <c>kubernetes.io/metadata.name</c>), the CIDR signature of its address
/// and the numbers of its named ports that some egress rule references. An external (CIDR)
/// identity: a CIDR signature only (<see cref="Namespace"/> is null). Value equality.
/// </summary>
public sealed class IdentityKey : IEquatable<IdentityKey>
{
    private readonly int _hash;
    private string? _text;

    public IdentityKey(string? @namespace, LabelSet podLabels, LabelSet namespaceLabels, ImmutableArray<IPNetwork> cidrSignature, ImmutableArray<NamedPort> namedPorts)
    {
        Namespace = @namespace;
        PodLabels = podLabels;
        NamespaceLabels = namespaceLabels;
        CidrSignature = cidrSignature.IsDefault ? [] : cidrSignature;
        NamedPorts = namedPorts.IsDefault ? [] : namedPorts;
        var h = new HashCode();
        h.Add(Namespace, StringComparer.Ordinal);
        h.Add(PodLabels);
        h.Add(NamespaceLabels);
        foreach (var p in CidrSignature)
            h.Add(p);
        foreach (var p in NamedPorts)
            h.Add(p);
        _hash = h.ToHashCode();
    }

    /// <summary>An external identity: addresses outside every pod, known only by the ipBlock prefixes containing them.</summary>
    public static IdentityKey ForCidr(ImmutableArray<IPNetwork> cidrSignature) =>
        new(null, LabelSet.Empty, LabelSet.Empty, cidrSignature, []);

    /// <summary>The pod's namespace; null for an external (CIDR) identity.</summary>
    public string? Namespace { get; }

    public LabelSet PodLabels { get; }

    public LabelSet NamespaceLabels { get; }

    /// <summary>The ipBlock prefixes (cidr and except entries of every policy) that contain the address, sorted.</summary>
    public ImmutableArray<IPNetwork> CidrSignature { get; }

    /// <summary>The pod's container ports whose names an egress rule references, sorted.</summary>
    public ImmutableArray<NamedPort> NamedPorts { get; }

    public bool IsPod => Namespace is not null;

    public bool Equals(IdentityKey? other) =>
        ReferenceEquals(this, other)
        || (other is not null && _hash == other._hash
            && string.Equals(Namespace, other.Namespace, StringComparison.Ordinal)
            && PodLabels.Equals(other.PodLabels)
            && NamespaceLabels.Equals(other.NamespaceLabels)
            && CidrSignature.SequenceEqual(other.CidrSignature)
            && NamedPorts.SequenceEqual(other.NamedPorts));

    public override bool Equals(object? obj) => Equals(obj as IdentityKey);

    public override int GetHashCode() => _hash;

    /// <summary>One line, stable: the order new identities are numbered in, and what `policy get` shows.</summary>
    public override string ToString() => _text ??= Format();

    private string Format()
    {
        var cidrs = string.Join(",", CidrSignature);
        if (!IsPod)
            return $"cidr [{cidrs}]";
        var text = $"pod ns={Namespace} labels=[{PodLabels}] ns-labels=[{NamespaceLabels}]";
        if (CidrSignature.Length > 0)
            text += $" cidrs=[{cidrs}]";
        if (NamedPorts.Length > 0)
            text += $" ports=[{string.Join(",", NamedPorts)}]";
        return text;
    }
}

/// <summary>
/// One pol_rules entry: an LPM key over (endpoint, remote identity, direction, protocol, port).
/// <see cref="PrefixLength"/> is the map key's prefix length: 72 covers endpoint, identity and
/// direction (any protocol and port), 80 adds the protocol (every port of it), 80+n adds the
/// leading n bits of the port (96: one port). Bits beyond the prefix are zero. Identity 0 means
/// any peer. The port is in host order here; the datapath mirror stores it big-endian.
/// </summary>
public readonly record struct PolicyRuleKey(uint EndpointId, uint Identity, PolicyDirection Direction, L4Protocol Protocol, ushort Port, byte PrefixLength)
    : IComparable<PolicyRuleKey>
{
    /// <summary>Prefix length covering endpoint id, identity and direction (the map key's first 72 bits after prefixlen).</summary>
    public const byte AnyProtocolPrefix = 72;

    /// <summary>Prefix length that adds the protocol byte.</summary>
    public const byte ProtocolPrefix = 80;

    /// <summary>Prefix length of one exact port.</summary>
    public const byte FullPrefix = 96;

    public static PolicyRuleKey AnyPort(uint endpointId, uint identity, PolicyDirection direction) =>
        new(endpointId, identity, direction, L4Protocol.Any, 0, AnyProtocolPrefix);

    public static PolicyRuleKey AllPortsOf(uint endpointId, uint identity, PolicyDirection direction, L4Protocol protocol) =>
        new(endpointId, identity, direction, protocol, 0, ProtocolPrefix);

    /// <summary>A block of ports: <paramref name="port"/> with its leading <paramref name="portBits"/> bits significant (16: one port).</summary>
    public static PolicyRuleKey PortBlock(uint endpointId, uint identity, PolicyDirection direction, L4Protocol protocol, ushort port, int portBits) =>
        new(endpointId, identity, direction, protocol, (ushort)(port & PortMask(portBits)), (byte)(ProtocolPrefix + portBits));

    /// <summary>Leading port bits that are significant (0 for prefixes of 80 bits or fewer).</summary>
    public int PortBits => Math.Max(0, PrefixLength - ProtocolPrefix);

    /// <summary>The first and last port this key covers (0-65535 when it covers every port).</summary>
    public (ushort First, ushort Last) PortRange =>
        PrefixLength <= ProtocolPrefix ? ((ushort)0, ushort.MaxValue) : (Port, (ushort)(Port | ~PortMask(PortBits) & 0xFFFF));

    /// <summary>This key cut to a shorter prefix (bits beyond it cleared).</summary>
    public PolicyRuleKey WithPrefix(int prefixLength) => prefixLength switch
    {
        <= AnyProtocolPrefix => this with { Protocol = L4Protocol.Any, Port = 0, PrefixLength = AnyProtocolPrefix },
        <= ProtocolPrefix => this with { Port = 0, PrefixLength = ProtocolPrefix },
        _ => this with { Port = (ushort)(Port & PortMask(prefixLength - ProtocolPrefix)), PrefixLength = (byte)prefixLength },
    };

    internal static int PortMask(int bits) => bits <= 0 ? 0 : (0xFFFF << (16 - Math.Min(bits, 16))) & 0xFFFF;

    // Sets of hundreds of thousands of keys are built and probed per computation: compare and
    // hash the key as two words rather than field by field.
    private ulong High => ((ulong)EndpointId << 32) | Identity;

    private ulong Low => ((ulong)Direction << 32) | ((ulong)Protocol << 24) | ((ulong)Port << 8) | PrefixLength;

    public bool Equals(PolicyRuleKey other) => High == other.High && Low == other.Low;

    public override int GetHashCode() => (int)(High * 0x9E3779B97F4A7C15UL >> 32) ^ Low.GetHashCode();

    public int CompareTo(PolicyRuleKey other)
    {
        int c = EndpointId.CompareTo(other.EndpointId);
        if (c == 0) c = Direction.CompareTo(other.Direction);
        if (c == 0) c = Identity.CompareTo(other.Identity);
        if (c == 0) c = Protocol.CompareTo(other.Protocol);
        if (c == 0) c = Port.CompareTo(other.Port);
        if (c == 0) c = PrefixLength.CompareTo(other.PrefixLength);
        return c;
    }

    /// <summary>"ingress 256 TCP/80", "egress any UDP/*", "ingress host *", "ingress 300 TCP/8000-8003".</summary>
    public override string ToString()
    {
        var dir = Direction.ToString().ToLowerInvariant();
        var peer = ReservedIdentity.NameOf(Identity) ?? Identity.ToString();
        if (PrefixLength <= AnyProtocolPrefix)
            return $"{dir} {peer} *";
        var proto = Protocol.ToString().ToUpperInvariant();
        if (PrefixLength == ProtocolPrefix)
            return $"{dir} {peer} {proto}/*";
        var (first, last) = PortRange;
        return first == last ? $"{dir} {peer} {proto}/{first}" : $"{dir} {peer} {proto}/{first}-{last}";
    }
}

/// <summary>One pol_endpoints entry: a local pod address's endpoint id, identity and isolation, with the pod it belongs to.</summary>
public sealed record PolicyEndpoint(uint Id, uint Identity, EndpointFlags Flags, string Namespace, string Name);

/// <summary>
/// Numbers a restarted daemon reads back from the pinned maps, so it keeps them: the ipcache
/// (prefix -> identity) and the endpoints (local pod address -> endpoint id). Only the first
/// computation uses them.
/// </summary>
public sealed record PolicyHints(IReadOnlyDictionary<IPNetwork, uint> IpCache, IReadOnlyDictionary<IPAddress, uint> EndpointIds)
{
    public static PolicyHints None { get; } = new(new Dictionary<IPNetwork, uint>(), new Dictionary<IPAddress, uint>());
}

/// <summary>
/// Everything the policy maps must hold for this node, computed from a cluster snapshot.
/// <para>
/// <see cref="IpCache"/>: pol_ipcache, prefix -> identity (every pod address as /32, every ipBlock
/// prefix, this node's addresses as identity 1). <see cref="Endpoints"/>: pol_endpoints, one entry
/// per IPv4 address of every local pod (including pods no policy selects: flags None).
/// <see cref="RulesByEndpoint"/>: pol_rules keys of each local endpoint id (every endpoint has an
/// entry, empty when it is not isolated), with keys that a shorter key already covers removed.
/// <see cref="Identities"/>: allocated identity -> what it stands for (for `policy get`).
/// <see cref="Errors"/>: policies (and pods) that could not be fully translated; such a policy
/// still isolates what it selects and allows nothing.
/// </para>
/// <para>
/// The collections are never mutated once returned; compare them by content (keys and values are
/// value types or value-equality records). An endpoint whose rules did not change keeps the same
/// set instance from one computation to the next (as the service translator keeps
/// FrontendState instances), so a syncer can skip it by reference. <see cref="PolicyStateFormatter"/>
/// gives a sorted, deterministic dump.
/// </para>
/// </summary>
public sealed record DesiredPolicyState(
    IReadOnlyDictionary<IPNetwork, uint> IpCache,
    IReadOnlyDictionary<IPAddress, PolicyEndpoint> Endpoints,
    IReadOnlyDictionary<uint, IReadOnlySet<PolicyRuleKey>> RulesByEndpoint,
    IReadOnlyDictionary<uint, IdentityKey> Identities,
    ImmutableArray<TranslationError> Errors)
{
    public static DesiredPolicyState Empty { get; } = new(
        new Dictionary<IPNetwork, uint>(), new Dictionary<IPAddress, PolicyEndpoint>(), new Dictionary<uint, IReadOnlySet<PolicyRuleKey>>(),
        new Dictionary<uint, IdentityKey>(), []);

    /// <summary>Every rule key of every endpoint (pol_rules as a whole).</summary>
    public IEnumerable<PolicyRuleKey> AllRules => RulesByEndpoint.Values.SelectMany(r => r);

    public int RuleCount => RulesByEndpoint.Values.Sum(r => r.Count);
}
