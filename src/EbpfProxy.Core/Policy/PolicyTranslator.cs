using System.Collections.Immutable;
using System.Net;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Planning;
using EbpfProxy.Core.Translation;
using k8s.Models;

namespace EbpfProxy.Core.Policy;

/// <summary>
/// NetworkPolicies, Pods, Namespaces and this Node -> what the policy maps of this node must
/// hold: identities, ipcache, local endpoints and their allow rules (shared/SEMANTICS.md,
/// "NetworkPolicy"; docs/policy.md). Pure: no I/O.
/// <para>
/// An instance keeps identity numbers and endpoint ids stable across computations while their
/// keys exist (a pod relabel changes that pod's identity only), re-adopts numbers a restarted
/// daemon read back from the pinned maps (<see cref="PolicyHints"/>, first computation only), and
/// caches what it derived from each Pod, Namespace and NetworkPolicy object (the ClusterStore keeps
/// the instance of an unchanged object), so a computation after one change redoes little but the
/// selector matching and rule expansion of the policies that select this node's pods.
/// </para>
/// </summary>
public sealed class PolicyTranslator
{
    public const string NamespaceNameLabel = "kubernetes.io/metadata.name";
    public const uint MaxEndpointId = 0xFFFF;

    /// <summary>What one Pod object contributes; null: the pod takes no part (no IPv4 address, host network, finished).</summary>
    private sealed record PodFacts(string Key, string Namespace, string Name, LabelSet Labels, uint[] Addresses, NamedPort[] Ports, bool Local, bool Deleting, string? Error);

    /// <summary>
    /// One Pod object's facts and the identity keys last derived from them, one per address,
    /// reused while the inputs (namespace labels, prefix set, referenced port names) are the same.
    /// </summary>
    private sealed class PodEntry(PodFacts? facts)
    {
        public PodFacts? Facts { get; } = facts;
        /// <summary>The addresses as ipcache prefixes (/32), made once per Pod object.</summary>
        public IPNetwork[] Networks { get; } = facts is null ? [] : [.. facts.Addresses.Select(a => Ipv4Prefix.Host(a).ToNetwork())];
        public IdentityKey[]? Keys;
        public LabelSet? NamespaceLabels;
        public PrefixIndex? Prefixes;
        public int EgressNamesVersion;
    }

    /// <summary>A local pod: its endpoint id, addresses with identities, isolation and the valid policies that select it per direction.</summary>
    private sealed class LocalPod(PodFacts pod)
    {
        public PodFacts Pod { get; } = pod;
        public uint EndpointId { get; set; }
        public List<(uint Address, uint Identity)> Addresses { get; } = [];
        public EndpointFlags Flags { get; set; }
        public List<CompiledPolicy> Ingress { get; } = [];
        public List<CompiledPolicy> Egress { get; } = [];
    }

    private readonly string _nodeName;
    private readonly ImmutableArray<uint> _localAddresses;
    private PolicyHints? _hints;

    private Dictionary<V1NetworkPolicy, CompiledPolicy> _policies = new(ReferenceEqualityComparer.Instance);
    private Dictionary<V1Pod, PodEntry> _pods = new(ReferenceEqualityComparer.Instance);
    private Dictionary<V1Namespace, LabelSet> _namespaces = new(ReferenceEqualityComparer.Instance);
    private PrefixIndex _prefixes = PrefixIndex.Empty;
    private HashSet<string> _egressNames = new(StringComparer.Ordinal);
    private int _egressNamesVersion;

    /// <summary>A local pod's rule set and what it was made from.</summary>
    private sealed record EndpointRuleSet(PodFacts Pod, uint EndpointId, EndpointFlags Flags, ResolvedRules[] Ingress, ResolvedRules[] Egress, HashSet<PolicyRuleKey> Rules);

    private Dictionary<string, EndpointRuleSet> _endpointRules = new(StringComparer.Ordinal);
    private readonly IdentityTable _identities = new();
    private readonly RuleResolver _resolver = new();
    private readonly Dictionary<string, uint> _endpointIdOf = new(StringComparer.Ordinal);
    private readonly HashSet<uint> _endpointIds = new();
    private uint _endpointHighWater;

    /// <param name="nodeName">This node's name: pods with this spec.nodeName are local endpoints.</param>
    /// <param name="localAddresses">
    /// Addresses of this node beyond the InternalIP/ExternalIP of its Node object (for example the
    /// pod bridge's address kubelet probes come from): identity 1, like those.
    /// </param>
    /// <param name="hints">Numbers read back from the pinned maps, re-adopted by the first computation.</param>
    public PolicyTranslator(string nodeName, IEnumerable<IPAddress>? localAddresses = null, PolicyHints? hints = null)
    {
        _nodeName = nodeName;
        _localAddresses = [.. (localAddresses ?? []).Select(a => Ipv4Prefix.TryGetV4(a, out var v) ? (uint?)v : null).OfType<uint>().Distinct()];
        _hints = hints;
    }

    /// <summary>Computes once, without state to carry over.</summary>
    public static DesiredPolicyState ComputeOnce(ClusterSnapshot snapshot, string nodeName, IEnumerable<IPAddress>? localAddresses = null) =>
        new PolicyTranslator(nodeName, localAddresses).Compute(snapshot);

    /// <summary>How much the last computation could reuse: policy resolutions reused and made.</summary>
    internal (int Reused, int Resolved) LastResolutions => _resolver.Counts;

    /// <summary>The desired policy state of this node for <paramref name="snapshot"/>.</summary>
    public DesiredPolicyState Compute(ClusterSnapshot snapshot)
    {
        var hints = _hints;
        _hints = null;
        var errors = new List<TranslationError>();

        var policies = CompilePolicies(snapshot, errors);
        UpdatePrefixes(policies);
        UpdateEgressNames(policies);
        var nodeAddresses = NodeAddresses(snapshot);
        var owners = AddressOwners(snapshot, nodeAddresses, errors);

        // Identity keys: one per pod address, one per ipBlock prefix not taken by a pod or the node.
        var namespaceLabels = NamespaceLabels(snapshot);
        var keys = new Dictionary<IdentityKey, List<Ipv4Prefix>>();
        var keyOfAddress = new Dictionary<uint, IdentityKey>(owners.Count);
        foreach (var (address, pod) in owners)
            keyOfAddress[address] = AddHolder(keys, PodKey(pod, LabelsOf(namespaceLabels, pod.Facts!.Namespace), address), Ipv4Prefix.Host(address));
        var keyOfPrefix = new Dictionary<Ipv4Prefix, IdentityKey>();
        foreach (var prefix in _prefixes.All)
        {
            if (prefix.Length == 32 && (owners.ContainsKey(prefix.Address) || nodeAddresses.Contains(prefix.Address)))
                continue;
            keyOfPrefix[prefix] = AddHolder(keys, IdentityKey.ForCidr(_prefixes.SignatureOf(prefix)), prefix);
        }
        var (removed, added) = _identities.Update(keys, hints);

        // Identities in use, pod ones by namespace (selectors look there), and the ipcache.
        var podIdentities = new Dictionary<string, List<Identity>>(StringComparer.Ordinal);
        var allIdentities = new List<Identity>(keys.Count);
        var addedIdentities = new List<Identity>(added.Count);
        var addedKeys = added.Count == 0 ? null : new HashSet<IdentityKey>(added);
        foreach (var (key, prefixes) in keys)
        {
            var identity = new Identity(_identities[key], key, prefixes[0]);
            allIdentities.Add(identity);
            if (addedKeys?.Contains(key) == true)
                addedIdentities.Add(identity);
            if (key.Namespace is { } ns)
            {
                if (!podIdentities.TryGetValue(ns, out var list))
                    podIdentities[ns] = list = [];
                list.Add(identity);
            }
        }
        var ipcache = new Dictionary<IPNetwork, uint>(owners.Count + keyOfPrefix.Count + nodeAddresses.Count);
        foreach (var (address, entry) in owners)
            ipcache[entry.Networks[Array.IndexOf(entry.Facts!.Addresses, address)]] = _identities[keyOfAddress[address]];
        foreach (var (prefix, key) in keyOfPrefix)
            ipcache[prefix.ToNetwork()] = _identities[key];
        foreach (var address in nodeAddresses)
            ipcache[Ipv4Prefix.Host(address).ToNetwork()] = ReservedIdentity.Host;

        // Local endpoints, the policies selecting each, and their rules.
        var locals = LocalPods(owners, keyOfAddress, hints);
        var localsByNamespace = locals.GroupBy(l => l.Pod.Namespace, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        foreach (var policy in policies)
            Select(policy, localsByNamespace);
        _resolver.Begin(policies, podIdentities, allIdentities, nodeAddresses, removed, addedIdentities);
        var rules = EndpointRules(locals);

        var endpoints = new Dictionary<IPAddress, PolicyEndpoint>();
        foreach (var local in locals)
            foreach (var (address, identity) in local.Addresses)
                endpoints[Ipv4Prefix.ToAddress(address)] = new PolicyEndpoint(local.EndpointId, identity, local.Flags, local.Pod.Namespace, local.Pod.Name);

        return new DesiredPolicyState(
            ipcache,
            endpoints,
            rules,
            new Dictionary<uint, IdentityKey>(_identities.Keys),
            [.. errors.OrderBy(e => e.Kind, StringComparer.Ordinal).ThenBy(e => e.Object, StringComparer.Ordinal).ThenBy(e => e.Message, StringComparer.Ordinal)]);
    }

    private List<CompiledPolicy> CompilePolicies(ClusterSnapshot snapshot, List<TranslationError> errors)
    {
        var cache = new Dictionary<V1NetworkPolicy, CompiledPolicy>(snapshot.NetworkPolicies.Count, ReferenceEqualityComparer.Instance);
        var result = new List<CompiledPolicy>(snapshot.NetworkPolicies.Count);
        foreach (var policy in snapshot.NetworkPolicies.Values)
        {
            if (!_policies.TryGetValue(policy, out var compiled))
                compiled = CompiledPolicy.Compile(policy);
            cache[policy] = compiled;
            result.Add(compiled);
            if (compiled.Error is { } error)
            {
                var closed = (compiled.IsolatesIngress, compiled.IsolatesEgress) switch
                {
                    (true, true) => "ingress and egress",
                    (true, false) => "ingress",
                    (false, true) => "egress",
                    _ => "nothing",
                };
                var scope = compiled.PodSelector is null ? $"every pod of namespace {compiled.Namespace}" : "the pods it selects";
                errors.Add(new TranslationError("NetworkPolicy", compiled.Key, $"{error}; fails closed: isolates {scope} for {closed} and allows nothing"));
            }
        }
        _policies = cache;
        return result;
    }

    private void UpdatePrefixes(List<CompiledPolicy> policies)
    {
        var prefixes = new SortedSet<Ipv4Prefix>();
        foreach (var policy in policies)
        {
            foreach (var rule in policy.Ingress.Concat(policy.Egress))
            {
                foreach (var peer in rule.Peers)
                {
                    if (peer.Block is not { } block)
                        continue;
                    prefixes.Add(block.Cidr);
                    prefixes.UnionWith(block.Except);
                }
            }
        }
        if (!prefixes.SequenceEqual(_prefixes.All))
            _prefixes = new PrefixIndex(prefixes);
    }

    /// <summary>The port names egress rules reference: a pod's numbers for them are part of its identity key.</summary>
    private void UpdateEgressNames(List<CompiledPolicy> policies)
    {
        var names = new HashSet<string>(
            policies.Where(p => !p.Failed).SelectMany(p => p.Egress).SelectMany(r => r.Ports).Select(p => p.Name).OfType<string>(),
            StringComparer.Ordinal);
        if (names.SetEquals(_egressNames))
            return;
        _egressNames = names;
        _egressNamesVersion++;
    }

    private HashSet<uint> NodeAddresses(ClusterSnapshot snapshot)
    {
        var result = new HashSet<uint>(_localAddresses);
        if (snapshot.Nodes.TryGetValue(_nodeName, out var node))
            foreach (var a in node.Status?.Addresses ?? [])
                if (a.Type is "InternalIP" or "ExternalIP" && IPAddress.TryParse(a.Address?.Trim(), out var ip) && Ipv4Prefix.TryGetV4(ip, out var v))
                    result.Add(v);
        return result;
    }

    /// <summary>
    /// Which pod holds each IPv4 pod address. Two pods claiming one address (an old pod still
    /// being deleted and its successor): the one not being deleted wins, else the first by key.
    /// </summary>
    private Dictionary<uint, PodEntry> AddressOwners(ClusterSnapshot snapshot, HashSet<uint> nodeAddresses, List<TranslationError> errors)
    {
        var cache = new Dictionary<V1Pod, PodEntry>(snapshot.Pods.Count, ReferenceEqualityComparer.Instance);
        var owners = new Dictionary<uint, PodEntry>(snapshot.Pods.Count);
        foreach (var (key, pod) in snapshot.Pods)
        {
            if (!_pods.TryGetValue(pod, out var entry))
                entry = new PodEntry(Facts(key, pod));
            cache[pod] = entry;
            if (entry.Facts is not { } facts)
                continue;
            if (facts.Error is { } error)
                errors.Add(new TranslationError("Pod", key, error));
            foreach (var address in facts.Addresses)
            {
                if (nodeAddresses.Contains(address))
                    continue;
                if (owners.TryGetValue(address, out var current) && !(current.Facts!.Deleting && !facts.Deleting))
                    continue;
                owners[address] = entry;
            }
        }
        _pods = cache;
        return owners;
    }

    private PodFacts? Facts(string key, V1Pod pod)
    {
        if (pod.Spec?.HostNetwork == true || pod.Status?.Phase is "Succeeded" or "Failed")
            return null; // a host-network pod's address is its node's; a finished pod's address is released
        var texts = pod.Status?.PodIPs is { Count: > 0 } ips ? ips.Select(i => i?.Ip) : [pod.Status?.PodIP];
        var addresses = new List<uint>();
        string? error = null;
        foreach (var text in texts)
        {
            if (string.IsNullOrWhiteSpace(text))
                continue;
            if (!IPAddress.TryParse(text.Trim(), out var ip))
                error = $"podIP '{text}' is not an IP address; ignored";
            else if (Ipv4Prefix.TryGetV4(ip, out var v) && !addresses.Contains(v))
                addresses.Add(v);
        }
        if (addresses.Count == 0 && error is null)
            return null;
        var ports = new List<NamedPort>();
        var containers = (pod.Spec?.Containers ?? []).Concat((pod.Spec?.InitContainers ?? []).Where(c => c?.RestartPolicy == "Always"));
        foreach (var container in containers)
        {
            foreach (var p in container?.Ports ?? [])
            {
                if (string.IsNullOrEmpty(p?.Name) || p.ContainerPort is < 1 or > 65535)
                    continue;
                if (p.Protocol is null or "" or "TCP" or "UDP" or "SCTP")
                    ports.Add(new NamedPort(p.Name, ServiceTranslator.ParseProtocol(p.Protocol), (ushort)p.ContainerPort));
            }
        }
        ports.Sort();
        var meta = pod.Metadata;
        return new PodFacts(
            key, meta?.NamespaceProperty ?? "default", meta?.Name ?? "", LabelSet.From(meta?.Labels), [.. addresses], [.. ports],
            !string.IsNullOrEmpty(_nodeName) && pod.Spec?.NodeName == _nodeName, meta?.DeletionTimestamp is not null, error);
    }

    /// <summary>Labels of each namespace with kubernetes.io/metadata.name set (the API server sets it; manifests may not).</summary>
    private Dictionary<string, LabelSet> NamespaceLabels(ClusterSnapshot snapshot)
    {
        var cache = new Dictionary<V1Namespace, LabelSet>(snapshot.Namespaces.Count, ReferenceEqualityComparer.Instance);
        var result = new Dictionary<string, LabelSet>(snapshot.Namespaces.Count, StringComparer.Ordinal);
        foreach (var (name, ns) in snapshot.Namespaces)
        {
            if (!_namespaces.TryGetValue(ns, out var labels))
                labels = LabelSet.From(ns.Metadata?.Labels).With(NamespaceNameLabel, name);
            cache[ns] = labels;
            result[name] = labels;
        }
        _namespaces = cache;
        return result;
    }

    /// <summary>The labels of a namespace; one without a Namespace object (yet) has only its name label.</summary>
    private static LabelSet LabelsOf(Dictionary<string, LabelSet> namespaceLabels, string ns)
    {
        if (!namespaceLabels.TryGetValue(ns, out var labels))
            namespaceLabels[ns] = labels = LabelSet.Empty.With(NamespaceNameLabel, ns);
        return labels;
    }

    private IdentityKey PodKey(PodEntry entry, LabelSet namespaceLabels, uint address)
    {
        var pod = entry.Facts!;
        int index = Array.IndexOf(pod.Addresses, address);
        if (entry.Keys is null || !namespaceLabels.Equals(entry.NamespaceLabels) || !ReferenceEquals(entry.Prefixes, _prefixes) || entry.EgressNamesVersion != _egressNamesVersion)
        {
            entry.Keys = new IdentityKey[pod.Addresses.Length];
            entry.NamespaceLabels = namespaceLabels;
            entry.Prefixes = _prefixes;
            entry.EgressNamesVersion = _egressNamesVersion;
        }
        if (entry.Keys[index] is { } cached)
            return cached;
        ImmutableArray<NamedPort> named = [];
        if (_egressNames.Count > 0 && pod.Ports.Length > 0)
            named = [.. pod.Ports.Where(p => _egressNames.Contains(p.Name))];
        return entry.Keys[index] = _identities.Canonical(new IdentityKey(pod.Namespace, pod.Labels, namespaceLabels, _prefixes.SignatureOf(Ipv4Prefix.Host(address)), named));
    }

    /// <summary>Records that <paramref name="holder"/> (a pod address or an ipBlock prefix) has <paramref name="key"/>.</summary>
    private static IdentityKey AddHolder(Dictionary<IdentityKey, List<Ipv4Prefix>> keys, IdentityKey key, Ipv4Prefix holder)
    {
        if (keys.TryGetValue(key, out var holders))
            holders.Add(holder);
        else
            keys[key] = [holder];
        return key;
    }

    /// <summary>This node's pods, with endpoint ids: kept per pod, re-adopted from hints by address on the first computation, else allocated in pod order.</summary>
    private List<LocalPod> LocalPods(Dictionary<uint, PodEntry> owners, Dictionary<uint, IdentityKey> keyOfAddress, PolicyHints? hints)
    {
        var byPod = new SortedDictionary<string, LocalPod>(StringComparer.Ordinal);
        foreach (var (address, entry) in owners)
        {
            var pod = entry.Facts!;
            if (!pod.Local)
                continue;
            if (!byPod.TryGetValue(pod.Key, out var local))
                byPod[pod.Key] = local = new LocalPod(pod);
            local.Addresses.Add((address, _identities[keyOfAddress[address]]));
        }
        foreach (var (key, id) in _endpointIdOf.ToList())
        {
            if (byPod.ContainsKey(key))
                continue;
            _endpointIdOf.Remove(key);
            _endpointIds.Remove(id);
        }
        var hinted = new HashSet<uint>();
        if (hints is not null)
        {
            hinted.UnionWith(hints.EndpointIds.Values.Where(v => v is >= 1 and <= MaxEndpointId));
            foreach (var (key, local) in byPod)
            {
                if (_endpointIdOf.ContainsKey(key))
                    continue;
                foreach (var (address, _) in local.Addresses.OrderBy(a => a.Address))
                {
                    if (hints.EndpointIds.TryGetValue(Ipv4Prefix.ToAddress(address), out var id) && hinted.Contains(id) && _endpointIds.Add(id))
                    {
                        _endpointIdOf[key] = id;
                        break;
                    }
                }
            }
            if (hinted.Count > 0)
                _endpointHighWater = Math.Max(_endpointHighWater, hinted.Max());
        }
        var allocator = new IdAllocator(
            id => _endpointIds.Contains(id) || hinted.Contains(id),
            _endpointIds.Count + hinted.Count(h => !_endpointIds.Contains(h)), MaxEndpointId, _endpointHighWater);
        foreach (var (key, local) in byPod)
        {
            if (!_endpointIdOf.TryGetValue(key, out var id))
            {
                if (!allocator.TryAllocate(out id))
                    throw new InvalidOperationException($"endpoint ids exhausted ({_endpointIds.Count} local pods)");
                _endpointIdOf[key] = id;
                _endpointIds.Add(id);
            }
            local.EndpointId = id;
            local.Addresses.Sort();
        }
        _endpointHighWater = allocator.HighWater;
        return [.. byPod.Values];
    }

    /// <summary>
    /// Marks the local pods a policy selects as isolated in the directions it declares, and (when
    /// it translated) records it as a source of allow rules for them. A failed policy whose
    /// selector cannot be evaluated selects every pod of its namespace.
    /// </summary>
    private static void Select(CompiledPolicy policy, Dictionary<string, List<LocalPod>> localsByNamespace)
    {
        if (!localsByNamespace.TryGetValue(policy.Namespace, out var candidates))
            return;
        foreach (var local in candidates)
        {
            if (policy.PodSelector is { } selector && !selector.Matches(local.Pod.Labels))
                continue;
            if (policy.IsolatesIngress)
            {
                local.Flags |= EndpointFlags.IngressIsolated;
                if (!policy.Failed)
                    local.Ingress.Add(policy);
            }
            if (policy.IsolatesEgress)
            {
                local.Flags |= EndpointFlags.EgressIsolated;
                if (!policy.Failed)
                    local.Egress.Add(policy);
            }
        }
    }

    /// <summary>
    /// Each local endpoint's rule set: the union of the resolved rules of the policies selecting
    /// it, plus this node's admission when ingress is isolated, minus covered keys. An endpoint
    /// whose pod, flags and policy resolutions are the ones of the previous computation keeps its
    /// set instance, so the syncer can skip it by reference.
    /// </summary>
    private Dictionary<uint, IReadOnlySet<PolicyRuleKey>> EndpointRules(List<LocalPod> locals)
    {
        var result = new Dictionary<uint, IReadOnlySet<PolicyRuleKey>>(locals.Count);
        var cache = new Dictionary<string, EndpointRuleSet>(locals.Count, StringComparer.Ordinal);
        foreach (var local in locals)
        {
            var ingress = local.Ingress.Select(p => _resolver.Resolve(p, PolicyDirection.Ingress)).ToArray();
            var egress = local.Egress.Select(p => _resolver.Resolve(p, PolicyDirection.Egress)).ToArray();
            if (!_endpointRules.TryGetValue(local.Pod.Key, out var set)
                || !ReferenceEquals(set.Pod, local.Pod) || set.EndpointId != local.EndpointId || set.Flags != local.Flags
                || !set.Ingress.AsSpan().SequenceEqual(ingress) || !set.Egress.AsSpan().SequenceEqual(egress))
            {
                var rules = local.Flags == EndpointFlags.None ? NoRules : new HashSet<PolicyRuleKey>();
                foreach (var r in ingress)
                    Stamp(local, r, rules);
                foreach (var r in egress)
                    Stamp(local, r, rules);
                // This node's own addresses always reach its pods (kubelet probes), as in Calico and Cilium.
                if ((local.Flags & EndpointFlags.IngressIsolated) != 0)
                    rules.Add(PolicyRuleKey.AnyPort(local.EndpointId, ReservedIdentity.Host, PolicyDirection.Ingress));
                RemoveCovered(rules);
                set = new EndpointRuleSet(local.Pod, local.EndpointId, local.Flags, ingress, egress, rules);
            }
            cache[local.Pod.Key] = set;
            result[local.EndpointId] = set.Rules;
        }
        _endpointRules = cache;
        return result;
    }

    private static readonly HashSet<PolicyRuleKey> NoRules = [];

    /// <summary>Adds a policy's resolved rules for one local pod: the keys with its endpoint id, and its named ingress ports resolved on its own containers.</summary>
    private static void Stamp(LocalPod local, ResolvedRules resolved, HashSet<PolicyRuleKey> rules)
    {
        var ep = local.EndpointId;
        foreach (var key in resolved.Keys)
            rules.Add(key with { EndpointId = ep });
        foreach (var (peers, name, protocol) in resolved.IngressNamed)
        {
            foreach (var port in local.Pod.Ports)
            {
                if (port.Protocol != protocol || !string.Equals(port.Name, name, StringComparison.Ordinal))
                    continue;
                foreach (var peer in peers)
                    rules.Add(PolicyRuleKey.PortBlock(ep, peer, PolicyDirection.Ingress, protocol, port.Port, 16));
            }
        }
    }

    /// <summary>
    /// Drops keys that another key already covers: a shorter prefix for the same endpoint,
    /// identity and direction, or a key for identity 0 (any peer) whose prefix covers it (the
    /// datapath looks up the peer's identity, then identity 0). Only keys that could be covered
    /// are probed: those whose (endpoint, identity, direction) has a key shorter than one port, or
    /// whose (endpoint, direction) has any-peer keys.
    /// </summary>
    private static void RemoveCovered(HashSet<PolicyRuleKey> rules)
    {
        ulong lengths = 0; // bit n: some key has prefix length 64 + n
        var shortGroups = new HashSet<(uint, uint, PolicyDirection)>();
        var anyPeer = new HashSet<(uint, PolicyDirection)>();
        foreach (var key in rules)
        {
            lengths |= 1UL << (key.PrefixLength - 64);
            if (key.PrefixLength < PolicyRuleKey.FullPrefix)
                shortGroups.Add((key.EndpointId, key.Identity, key.Direction));
            if (key.Identity == ReservedIdentity.Any)
                anyPeer.Add((key.EndpointId, key.Direction));
        }
        if (shortGroups.Count == 0 && anyPeer.Count == 0)
            return;
        var covered = new List<PolicyRuleKey>();
        foreach (var key in rules)
        {
            if ((shortGroups.Contains((key.EndpointId, key.Identity, key.Direction)) && CoveredBy(rules, key, key.Identity, lengths))
                || (key.Identity != ReservedIdentity.Any && anyPeer.Contains((key.EndpointId, key.Direction)) && CoveredBy(rules, key, ReservedIdentity.Any, lengths)))
                covered.Add(key);
        }
        rules.ExceptWith(covered);
    }

    /// <summary>Whether a key for <paramref name="identity"/>, other than <paramref name="key"/>, with its prefix or a shorter one covers it.</summary>
    private static bool CoveredBy(HashSet<PolicyRuleKey> rules, PolicyRuleKey key, uint identity, ulong lengths)
    {
        var probe = key with { Identity = identity };
        for (int len = PolicyRuleKey.AnyProtocolPrefix; len <= key.PrefixLength; len++)
        {
            if ((lengths & (1UL << (len - 64))) == 0 || (len == key.PrefixLength && identity == key.Identity))
                continue;
            if (rules.Contains(probe.WithPrefix(len)))
                return true;
        }
        return false;
    }
}
