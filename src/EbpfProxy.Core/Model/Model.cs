using System.Collections.Immutable;
using System.Net;

namespace EbpfProxy.Core.Model;

/// <summary>IP protocol numbers, as the datapath stores them.</summary>
public enum L4Protocol : byte
{
    /// <summary>Wildcard frontends only: any protocol on any port of a ClusterIP.</summary>
    Any = 0,
    Tcp = 6,
    Udp = 17,
    Sctp = 132,
}

/// <summary>kube-proxy's name for one port of one service: "namespace/name:port".</summary>
public readonly record struct ServicePortName(string Namespace, string Name, string Port)
{
    public override string ToString() =>
        string.IsNullOrEmpty(Port) ? $"{Namespace}/{Name}" : $"{Namespace}/{Name}:{Port}";
}

/// <summary>What a frontend entry applies to (mirrors LB_SCOPE_* in bpf/lib/lb_types.h).</summary>
public enum FrontendScope : byte
{
    External = 0,
    Internal = 1,
}

/// <summary>An address, port and protocol a service port is reachable on.</summary>
public readonly record struct Frontend(IPAddress Address, ushort Port, L4Protocol Protocol)
{
    public override string ToString() => $"{FormatAddress(Address, Port)}/{Protocol.ToString().ToUpperInvariant()}";

    internal static string FormatAddress(IPAddress address, ushort port) =>
        address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{address}]:{port}" : $"{address}:{port}";
}

/// <summary>A frontend entry in the datapath: a frontend and the scope of traffic it serves.</summary>
public readonly record struct FrontendKey(Frontend Frontend, FrontendScope Scope)
{
    public override string ToString() => Scope == FrontendScope.External ? Frontend.ToString() : $"{Frontend} ({Scope})";
}

/// <summary>Where traffic is sent: a backend address, its port and protocol. Backend ids are allocated per BackendAddress.</summary>
public readonly record struct BackendAddress(IPAddress Address, ushort Port, L4Protocol Protocol)
{
    public override string ToString() => Frontend.FormatAddress(Address, Port);
}

/// <summary>Backend flags (mirror LB_BE_F_* in bpf/lib/lb_types.h).</summary>
[Flags]
public enum BackendFlags : byte
{
    None = 0,
    Local = 1 << 0,
    Terminating = 1 << 1,
}

/// <summary>Service entry flags (mirror LB_SVC_F_* in bpf/lib/lb_types.h).</summary>
[Flags]
public enum ServiceFlags : ushort
{
    None = 0,
    Affinity = 1 << 0,
    ExternalTrafficLocal = 1 << 1,
    InternalTrafficLocal = 1 << 2,
    NodePort = 1 << 3,
    ExternalIp = 1 << 4,
    LoadBalancer = 1 << 5,
    /// <summary>Marks a ClusterIP (port 0, protocol Any): undefined ports are rejected.</summary>
    Wildcard = 1 << 6,
    /// <summary>
    /// eTP Local: this (external-scope) entry holds the node-local set; pods use the entry of the
    /// same frontend in the internal scope, which holds the cluster-wide set.
    /// </summary>
    TwoScopes = 1 << 7,
    /// <summary>The entry's set is empty only because the applicable traffic policy is Local: DROP, not REJECT.</summary>
    DropWithoutLocal = 1 << 8,
    /// <summary>LoadBalancer ingress frontend with loadBalancerSourceRanges: other clients are dropped.</summary>
    SourceRanges = 1 << 9,
}

/// <summary>One backend as a service port uses it.</summary>
public sealed record Backend(BackendAddress Address, BackendFlags Flags);

/// <summary>
/// What one frontend entry must do: the service port it belongs to, the active backends
/// (ready endpoints) and the fallback tail (serving and terminating endpoints), used only when no
/// backend is active.
/// </summary>
public sealed record FrontendState(
    FrontendKey Key,
    ServicePortName Service,
    ServiceFlags Flags,
    uint AffinityTimeoutSeconds,
    ImmutableArray<Backend> Active,
    ImmutableArray<Backend> Terminating)
{
    /// <summary>
    /// With <see cref="ServiceFlags.SourceRanges"/>: the client prefixes allowed to reach this
    /// frontend (loadBalancerSourceRanges, plus the LB ingress IPs themselves when the node's
    /// primary address is inside a range).
    /// </summary>
    public ImmutableArray<System.Net.IPNetwork> SourceRanges { get; init; } = [];
}

/// <summary>Everything the load-balancer maps must hold: the result of translating a cluster snapshot.</summary>
/// <remarks>
/// A translator reuses the FrontendState instances of services that did not change and reports
/// which frontends changed, so the planner can work on those alone.
/// </remarks>
public sealed record DesiredLbState(IReadOnlyDictionary<FrontendKey, FrontendState> Frontends)
{
    public static DesiredLbState Empty { get; } = new(new Dictionary<FrontendKey, FrontendState>());
}

/// <summary>A problem with one object: it is skipped, everything else is programmed.</summary>
public sealed record TranslationError(string Kind, string Object, string Message)
{
    public override string ToString() => $"{Kind} {Object}: {Message}";
}
