using System.Collections.Immutable;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Translation;
using k8s.Models;

namespace EbpfProxy.Core.Policy;

/// <summary>An ipBlock peer: a prefix minus its except prefixes (IPv4).</summary>
internal sealed record CidrBlock(Ipv4Prefix Cidr, ImmutableArray<Ipv4Prefix> Except);

/// <summary>
/// One peer of a rule. Pod peers: <see cref="Namespaces"/> null means the policy's own namespace,
/// <see cref="Pods"/> null means every pod of the selected namespaces. An ipBlock peer has only
/// <see cref="Block"/>; an IPv6 ipBlock (outside this datapath) has none of the three and matches nothing.
/// </summary>
internal sealed record CompiledPeer(LabelSelector? Pods, LabelSelector? Namespaces, CidrBlock? Block)
{
    public bool IsPodPeer => Pods is not null || Namespaces is not null;
}

/// <summary>
/// One entry of a rule's ports: a protocol and either every port (<see cref="Port"/> 0), a range
/// <see cref="Port"/>..<see cref="EndPort"/> (equal for one port), or a named port.
/// </summary>
internal readonly record struct CompiledPort(L4Protocol Protocol, ushort Port, ushort EndPort, string? Name);

/// <summary>One ingress or egress rule: peers (empty: every peer) and ports (empty: every port and protocol).</summary>
internal sealed record CompiledRule(ImmutableArray<CompiledPeer> Peers, ImmutableArray<CompiledPort> Ports);

/// <summary>
/// A NetworkPolicy reduced to what the computation needs. <see cref="Error"/> set: the policy
/// failed to translate and contributes isolation only (fail closed); then a null
/// <see cref="PodSelector"/> means its selector could not be evaluated either, and it isolates
/// every pod of its namespace.
/// </summary>
internal sealed record CompiledPolicy(
    string Namespace,
    string Name,
    LabelSelector? PodSelector,
    bool IsolatesIngress,
    bool IsolatesEgress,
    ImmutableArray<CompiledRule> Ingress,
    ImmutableArray<CompiledRule> Egress,
    string? Error)
{
    public string Key => $"{Namespace}/{Name}";

    public bool Failed => Error is not null;

    /// <summary>Compiles one policy; never throws for bad content (the error is carried instead).</summary>
    public static CompiledPolicy Compile(V1NetworkPolicy policy)
    {
        var ns = policy.Metadata?.NamespaceProperty ?? "default";
        var name = policy.Metadata?.Name ?? "";
        var spec = policy.Spec ?? new V1NetworkPolicySpec();
        var (ingressIso, egressIso, typesError) = Isolation(spec);

        // spec.podSelector is a required struct in the API: missing means {} (every pod).
        LabelSelector? podSelector = LabelSelector.Everything;
        string? error = typesError;
        if (spec.PodSelector is not null && !LabelSelector.TryParse(spec.PodSelector, out podSelector, out var selectorError))
        {
            podSelector = null;
            error = $"podSelector: {selectorError}";
        }
        ImmutableArray<CompiledRule> ingress = [], egress = [];
        if (error is null)
        {
            try
            {
                if (ingressIso)
                    ingress = [.. (spec.Ingress ?? []).Select((r, i) => CompileRule($"ingress[{i}]", r?.FromProperty, r?.Ports))];
                if (egressIso)
                    egress = [.. (spec.Egress ?? []).Select((r, i) => CompileRule($"egress[{i}]", r?.To, r?.Ports))];
            }
            catch (FormatException ex)
            {
                error = ex.Message;
                (ingress, egress) = ([], []);
            }
        }
        return new CompiledPolicy(ns, name, podSelector, ingressIso, egressIso, ingress, egress, error);
    }

    /// <summary>
    /// Effective policyTypes: as listed; omitted or empty, Ingress always and Egress when
    /// spec.egress has rules. An unknown type is an error, and the policy then isolates both
    /// directions (the safe reading of a type we do not understand).
    /// </summary>
    private static (bool Ingress, bool Egress, string? Error) Isolation(V1NetworkPolicySpec spec)
    {
        if (spec.PolicyTypes is not { Count: > 0 } types)
            return (true, spec.Egress is { Count: > 0 }, null);
        bool ingress = false, egress = false;
        foreach (var t in types)
        {
            switch (t)
            {
                case "Ingress": ingress = true; break;
                case "Egress": egress = true; break;
                default: return (true, true, $"policyTypes: '{t}' is not Ingress or Egress");
            }
        }
        return (ingress, egress, null);
    }

    private static CompiledRule CompileRule(string where, IList<V1NetworkPolicyPeer>? peers, IList<V1NetworkPolicyPort>? ports) =>
        new([.. (peers ?? []).Select((p, i) => CompilePeer($"{where}.peers[{i}]", p))],
            [.. (ports ?? []).Select((p, i) => CompilePort($"{where}.ports[{i}]", p))]);

    private static CompiledPeer CompilePeer(string where, V1NetworkPolicyPeer? peer)
    {
        if (peer is null || (peer.IpBlock is null && peer.PodSelector is null && peer.NamespaceSelector is null))
            throw new FormatException($"{where}: a peer needs podSelector, namespaceSelector or ipBlock");
        if (peer.IpBlock is { } block)
        {
            if (peer.PodSelector is not null || peer.NamespaceSelector is not null)
                throw new FormatException($"{where}: ipBlock cannot be combined with a selector");
            return new CompiledPeer(null, null, CompileBlock(where, block));
        }
        return new CompiledPeer(Selector(where + ".podSelector", peer.PodSelector), Selector(where + ".namespaceSelector", peer.NamespaceSelector), null);
    }

    private static LabelSelector? Selector(string where, V1LabelSelector? selector)
    {
        if (selector is null)
            return null;
        if (!LabelSelector.TryParse(selector, out var compiled, out var error))
            throw new FormatException($"{where}: {error}");
        return compiled;
    }

    /// <summary>An IPv4 block, or null for an IPv6 one (valid, matches nothing on this IPv4 datapath).</summary>
    private static CidrBlock? CompileBlock(string where, V1IPBlock block)
    {
        if (!Ipv4Prefix.TryParse(block.Cidr, out var cidr, out bool v4))
            throw new FormatException($"{where}.ipBlock: cidr '{block.Cidr}' is not a CIDR");
        var except = ImmutableArray.CreateBuilder<Ipv4Prefix>();
        foreach (var text in block.Except ?? [])
        {
            if (!Ipv4Prefix.TryParse(text, out var e, out bool ev4))
                throw new FormatException($"{where}.ipBlock: except '{text}' is not a CIDR");
            if (ev4 != v4 || (v4 && !(cidr.Contains(e) && e.Length > cidr.Length)))
                throw new FormatException($"{where}.ipBlock: except '{text}' is not strictly inside cidr '{block.Cidr}'");
            if (v4 && !except.Contains(e))
                except.Add(e);
        }
        return v4 ? new CidrBlock(cidr, except.ToImmutable()) : null;
    }

    private static CompiledPort CompilePort(string where, V1NetworkPolicyPort? port)
    {
        if (port is null)
            throw new FormatException($"{where}: empty port entry");
        L4Protocol protocol;
        try
        {
            protocol = ServiceTranslator.ParseProtocol(port.Protocol);
        }
        catch (FormatException ex)
        {
            throw new FormatException($"{where}: {ex.Message}");
        }
        var text = port.Port?.Value?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            if (port.EndPort is not null)
                throw new FormatException($"{where}: endPort needs a numeric port");
            return new CompiledPort(protocol, 0, 0, null);
        }
        if (!int.TryParse(text, System.Globalization.NumberStyles.None, null, out int number))
        {
            if (port.EndPort is not null)
                throw new FormatException($"{where}: endPort cannot be used with the named port '{text}'");
            return new CompiledPort(protocol, 0, 0, text);
        }
        if (number is < 1 or > 65535)
            throw new FormatException($"{where}: port {number} is out of range");
        int end = port.EndPort ?? number;
        if (end < number || end > 65535)
            throw new FormatException($"{where}: endPort {end} is below port {number} or above 65535");
        return new CompiledPort(protocol, (ushort)number, (ushort)end, null);
    }
}
