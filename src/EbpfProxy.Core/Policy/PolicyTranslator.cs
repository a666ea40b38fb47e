using System.Collections.Immutable;
using System.Net;
using System.Numerics;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Planning;
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

    /// <summary>What one Pod object contributes; null facts: the pod takes no part (no IPv4 address, host network, finished).</summary>
    private sealed record PodFacts(string Key, string Namespace, string Name, LabelSet Labels, uint[] Addresses, NamedPort[] Ports, bool Local, bool Deleting, string? Error);

    /// <summary>An identity in use in this computation, with one prefix that stands for its signature (any address of it).</summary>
    private sealed record Identity(uint Id, IdentityKey Key, Ipv4Prefix Representative);

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

    /// <summary>
    /// A policy's rules for one direction with peers resolved to identities: keys with endpoint id
    /// 0 (stamped per selected endpoint), and named ingress ports that resolve per endpoint.
    /// </summary>
    private sealed record ResolvedRules(List<PolicyRuleKey> Keys, List<(uint[] Peers, string Name, L4Protocol Protocol)> IngressNamed);

    private readonly string _nodeName;
    private readonly ImmutableArray<uint> _localAddresses;
    private PolicyHints? _hints;

    private Dictionary<V1NetworkPolicy, CompiledPolicy> _policies = new(ReferenceEqualityComparer.Instance);
    private Dictionary<V1Pod, PodFacts?> _pods = new(ReferenceEqualityComparer.Instance);
    private Dictionary<V1Namespace, LabelSet> _namespaces = new(ReferenceEqualityComparer.Instance);
    private PrefixIndex _prefixes = PrefixIndex.Empty;

    private readonly Dictionary<IdentityKey, uint> _identityOf = new();
    private readonly Dictionary<uint, IdentityKey> _keyOf = new();
    private uint _identityHighWater = ReservedIdentity.FirstAllocated - 1;
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

    /// <summary>The desired policy state of this node for <paramref name="snapshot"/>.</summary>
    public DesiredPolicyState Compute(ClusterSnapshot snapshot)
    {
        var hints = _hints;
        _hints = null;
        var errors = new List<TranslationError>();

        var policies = CompilePolicies(snapshot, errors);
        UpdatePrefixes(policies);
        var egressNames = new HashSet<string>(
            policies.Where(p => !p.Failed).SelectMany(p => p.Egress).SelectMany(r => r.Ports).Select(p => p.Name).OfType<string>(),
            StringComparer.Ordinal);
        var nodeAddresses = NodeAddresses(snapshot);
        var owners = AddressOwners(snapshot, nodeAddresses, errors);

        // Identity keys: one per pod address, one per ipBlock prefix not taken by a pod or the node.
        var namespaceLabels = NamespaceLabels(snapshot);
        var keys = new Dictionary<IdentityKey, List<Ipv4Prefix>>();
        var keyOfAddress = new Dictionary<uint, IdentityKey>(owners.Count);
        foreach (var (address, pod) in owners)
        {
            var key = Intern(keys, PodKey(pod, LabelsOf(namespaceLabels, pod.Namespace), address, egressNames), Ipv4Prefix.Host(address));
            keyOfAddress[address] = key;
        }
        var keyOfPrefix = new Dictionary<Ipv4Prefix, IdentityKey>();
        foreach (var prefix in _prefixes.All)
        {
            if (prefix.Length == 32 && (owners.ContainsKey(prefix.Address) || nodeAddresses.Contains(prefix.Address)))
                continue;
            keyOfPrefix[prefix] = Intern(keys, IdentityKey.ForCidr(_prefixes.SignatureOf(prefix)), prefix);
        }
        AssignIdentities(keys, hints);

        // Identities in use, pod ones by namespace (selectors look there), and the ipcache.
        var podIdentities = new Dictionary<string, List<Identity>>(StringComparer.Ordinal);
        var allIdentities = new List<Identity>(keys.Count);
        foreach (var (key, prefixes) in keys)
        {
            var identity = new Identity(_identityOf[key], key, prefixes[0]);
            allIdentities.Add(identity);
            if (key.Namespace is { } ns)
            {
                if (!podIdentities.TryGetValue(ns, out var list))
                    podIdentities[ns] = list = [];
                list.Add(identity);
            }
        }
        var ipcache = new Dictionary<IPNetwork, uint>(owners.Count + keyOfPrefix.Count + nodeAddresses.Count);
        foreach (var (address, key) in keyOfAddress)
            ipcache[Ipv4Prefix.Host(address).ToNetwork()] = _identityOf[key];
        foreach (var (prefix, key) in keyOfPrefix)
            ipcache[prefix.ToNetwork()] = _identityOf[key];
        foreach (var address in nodeAddresses)
            ipcache[Ipv4Prefix.Host(address).ToNetwork()] = ReservedIdentity.Host;

        // Local endpoints, the policies selecting each, and their rules.
        var locals = LocalPods(owners, keyOfAddress, hints);
        var localsByNamespace = locals.GroupBy(l => l.Pod.Namespace, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        foreach (var policy in policies)
            Select(policy, localsByNamespace);
        var context = new RuleContext(podIdentities, allIdentities, nodeAddresses, _keyOf);
        var rules = new HashSet<PolicyRuleKey>();
        var resolved = new Dictionary<(CompiledPolicy, PolicyDirection), ResolvedRules>();
        foreach (var local in locals)
        {
            foreach (var (direction, selecting) in new[] { (PolicyDirection.Ingress, local.Ingress), (PolicyDirection.Egress, local.Egress) })
            {
                foreach (var policy in selecting)
                {
                    if (!resolved.TryGetValue((policy, direction), out var r))
                        resolved[(policy, direction)] = r = context.Resolve(policy, direction);
                    Stamp(local, r, rules);
                }
            }
            // This node's own addresses always reach its pods (kubelet probes), as in Calico and Cilium.
            if ((local.Flags & EndpointFlags.IngressIsolated) != 0)
                rules.Add(PolicyRuleKey.AnyPort(local.EndpointId, ReservedIdentity.Host, PolicyDirection.Ingress));
        }
        RemoveCovered(rules);

        var endpoints = new Dictionary<IPAddress, PolicyEndpoint>();
        foreach (var local in locals)
            foreach (var (address, identity) in local.Addresses)
                endpoints[Ipv4Prefix.ToAddress(address)] = new PolicyEndpoint(local.EndpointId, identity, local.Flags, local.Pod.Namespace, local.Pod.Name);

        return new DesiredPolicyState(
            ipcache,
            endpoints,
            rules,
            new Dictionary<uint, IdentityKey>(_keyOf),
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
    private Dictionary<uint, PodFacts> AddressOwners(ClusterSnapshot snapshot, HashSet<uint> nodeAddresses, List<TranslationError> errors)
    {
        var cache = new Dictionary<V1Pod, PodFacts?>(snapshot.Pods.Count, ReferenceEqualityComparer.Instance);
        var owners = new Dictionary<uint, PodFacts>(snapshot.Pods.Count);
        foreach (var (key, pod) in snapshot.Pods)
        {
            if (!_pods.TryGetValue(pod, out var facts))
                facts = Facts(key, pod);
            cache[pod] = facts;
            if (facts is null)
                continue;
            if (facts.Error is { } error)
                errors.Add(new TranslationError("Pod", key, error));
            foreach (var address in facts.Addresses)
            {
                if (nodeAddresses.Contains(address))
                    continue;
                if (owners.TryGetValue(address, out var current) && !(current.Deleting && !facts.Deleting))
                    continue;
                owners[address] = facts;
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
                var protocol = p.Protocol switch { null or "" or "TCP" => L4Protocol.Tcp, "UDP" => L4Protocol.Udp, "SCTP" => L4Protocol.Sctp, _ => L4Protocol.Any };
                if (protocol != L4Protocol.Any)
                    ports.Add(new NamedPort(p.Name, protocol, (ushort)p.ContainerPort));
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

    private IdentityKey PodKey(PodFacts pod, LabelSet namespaceLabels, uint address, HashSet<string> egressNames)
    {
        ImmutableArray<NamedPort> named = [];
        if (egressNames.Count > 0 && pod.Ports.Length > 0)
            named = [.. pod.Ports.Where(p => egressNames.Contains(p.Name))];
        return new IdentityKey(pod.Namespace, pod.Labels, namespaceLabels, _prefixes.SignatureOf(Ipv4Prefix.Host(address)), named);
    }

    /// <summary>Records that <paramref name="holder"/> (a pod address or an ipBlock prefix) has <paramref name="key"/>.</summary>
    private static IdentityKey Intern(Dictionary<IdentityKey, List<Ipv4Prefix>> keys, IdentityKey key, Ipv4Prefix holder)
    {
        if (keys.TryGetValue(key, out var holders))
            holders.Add(holder);
        else
            keys[key] = [holder];
        return key;
    }

    /// <summary>
    /// Keeps the number of every key still in use, forgets the others, and numbers new keys: first
    /// with a number the pinned ipcache held for their prefixes (first computation only; the
    /// number most of a key's prefixes held wins, ties to the lower number, and a number goes to
    /// one key only), then from the allocator in key order (so equal input gives equal numbers).
    /// </summary>
    private void AssignIdentities(Dictionary<IdentityKey, List<Ipv4Prefix>> keys, PolicyHints? hints)
    {
        foreach (var (key, id) in _identityOf.ToList())
        {
            if (keys.ContainsKey(key))
                continue;
            _identityOf.Remove(key);
            _keyOf.Remove(id);
        }
        var fresh = keys.Keys.Where(k => !_identityOf.ContainsKey(k)).ToList();
        if (fresh.Count == 0)
            return;
        var hinted = new HashSet<uint>();
        if (hints is not null)
        {
            hinted.UnionWith(hints.IpCache.Values.Where(v => v is >= ReservedIdentity.FirstAllocated and <= ReservedIdentity.MaxAllocated));
            var votes = new Dictionary<(IdentityKey Key, uint Id), int>();
            foreach (var key in fresh)
                foreach (var prefix in keys[key])
                    if (hints.IpCache.TryGetValue(prefix.ToNetwork(), out var id) && hinted.Contains(id))
                        votes[(key, id)] = votes.GetValueOrDefault((key, id)) + 1;
            foreach (var ((key, id), _) in votes.OrderByDescending(v => v.Value).ThenBy(v => v.Key.Id).ThenBy(v => v.Key.Key.ToString(), StringComparer.Ordinal))
            {
                if (_identityOf.ContainsKey(key) || _keyOf.ContainsKey(id))
                    continue;
                _identityOf[key] = id;
                _keyOf[id] = key;
            }
            if (hinted.Count > 0)
                _identityHighWater = Math.Max(_identityHighWater, hinted.Max());
        }
        fresh.RemoveAll(_identityOf.ContainsKey);
        fresh.Sort((a, b) => string.CompareOrdinal(a.ToString(), b.ToString()));
        // Numbers a restarted daemon found but did not re-adopt are still in the maps until the
        // first sync removes them: they are not handed out in this computation.
        var allocator = new IdAllocator(
            id => id < ReservedIdentity.FirstAllocated || _keyOf.ContainsKey(id) || hinted.Contains(id),
            (int)ReservedIdentity.FirstAllocated - 1 + _keyOf.Count + hinted.Count(h => !_keyOf.ContainsKey(h)),
            ReservedIdentity.MaxAllocated, _identityHighWater);
        foreach (var key in fresh)
        {
            if (!allocator.TryAllocate(out var id))
                throw new InvalidOperationException($"identity numbers exhausted ({_keyOf.Count} in use)");
            _identityOf[key] = id;
            _keyOf[id] = key;
        }
        _identityHighWater = allocator.HighWater;
    }

    /// <summary>This node's pods, with endpoint ids: kept per pod, re-adopted from hints by address on the first computation, else allocated in pod order.</summary>
    private List<LocalPod> LocalPods(Dictionary<uint, PodFacts> owners, Dictionary<uint, IdentityKey> keyOfAddress, PolicyHints? hints)
    {
        var byPod = new SortedDictionary<string, LocalPod>(StringComparer.Ordinal);
        foreach (var (address, pod) in owners)
        {
            if (!pod.Local)
                continue;
            if (!byPod.TryGetValue(pod.Key, out var local))
                byPod[pod.Key] = local = new LocalPod(pod);
            local.Addresses.Add((address, _identityOf[keyOfAddress[address]]));
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
    /// datapath looks up the peer's identity, then identity 0).
    /// </summary>
    private static readonly uint[] AnyOnly = [ReservedIdentity.Any];

    private static void RemoveCovered(HashSet<PolicyRuleKey> rules)
    {
        ulong lengths = 0; // bit n: some key has prefix length 64 + n
        foreach (var key in rules)
            lengths |= 1UL << (key.PrefixLength - 64);
        if (BitOperations.PopCount(lengths) < 2 && !rules.Any(k => k.Identity == ReservedIdentity.Any))
            return;
        var covered = new List<PolicyRuleKey>();
        foreach (var key in rules)
        {
            foreach (var identity in key.Identity == ReservedIdentity.Any ? AnyOnly : new[] { key.Identity, ReservedIdentity.Any })
            {
                var probe = key with { Identity = identity };
                bool found = false;
                for (int len = PolicyRuleKey.AnyProtocolPrefix; len <= key.PrefixLength && !found; len++)
                {
                    if ((lengths & (1UL << (len - 64))) == 0 || (len == key.PrefixLength && identity == key.Identity))
                        continue;
                    found = rules.Contains(probe.WithPrefix(len));
                }
                if (found)
                {
                    covered.Add(key);
                    break;
                }
            }
        }
        rules.ExceptWith(covered);
    }

    /// <summary>Peer and port resolution for one computation.</summary>
    private sealed class RuleContext(
        Dictionary<string, List<Identity>> podIdentities,
        List<Identity> allIdentities,
        HashSet<uint> nodeAddresses,
        Dictionary<uint, IdentityKey> keyOf)
    {
        public ResolvedRules Resolve(CompiledPolicy policy, PolicyDirection direction)
        {
            var keys = new List<PolicyRuleKey>();
            var named = new List<(uint[], string, L4Protocol)>();
            foreach (var rule in direction == PolicyDirection.Ingress ? policy.Ingress : policy.Egress)
            {
                uint[]? peers = rule.Peers.IsEmpty ? null : [.. Peers(policy, rule)];
                if (rule.Ports.IsEmpty)
                {
                    foreach (var peer in peers ?? [ReservedIdentity.Any])
                        keys.Add(PolicyRuleKey.AnyPort(0, peer, direction));
                    continue;
                }
                foreach (var port in rule.Ports)
                {
                    if (port.Name is null)
                    {
                        foreach (var peer in peers ?? [ReservedIdentity.Any])
                            AddPorts(keys, peer, direction, port);
                    }
                    else if (direction == PolicyDirection.Ingress)
                    {
                        named.Add((peers ?? [ReservedIdentity.Any], port.Name, port.Protocol));
                    }
                    else
                    {
                        // Egress: the name resolves on each remote pod; peers that are not pods have no ports.
                        foreach (var peer in peers ?? allIdentities.Where(i => i.Key.IsPod).Select(i => i.Id))
                            foreach (var np in keyOf.TryGetValue(peer, out var key) ? key.NamedPorts : [])
                                if (np.Protocol == port.Protocol && string.Equals(np.Name, port.Name, StringComparison.Ordinal))
                                    keys.Add(PolicyRuleKey.PortBlock(0, peer, direction, np.Protocol, np.Port, 16));
                    }
                }
            }
            return new ResolvedRules(keys, named);
        }

        private static void AddPorts(List<PolicyRuleKey> keys, uint peer, PolicyDirection direction, CompiledPort port)
        {
            if (port.Port == 0)
            {
                keys.Add(PolicyRuleKey.AllPortsOf(0, peer, direction, port.Protocol));
                return;
            }
            foreach (var (first, bits) in PortBlocks(port.Port, port.EndPort))
                keys.Add(PolicyRuleKey.PortBlock(0, peer, direction, port.Protocol, first, bits));
        }

        /// <summary>The identities one rule's peers match (peers OR).</summary>
        private HashSet<uint> Peers(CompiledPolicy policy, CompiledRule rule)
        {
            var result = new HashSet<uint>();
            foreach (var peer in rule.Peers)
            {
                if (peer.Block is { } block)
                {
                    foreach (var identity in allIdentities)
                        if (InBlock(block, identity.Representative))
                            result.Add(identity.Id);
                    foreach (var address in nodeAddresses)
                        if (InBlock(block, Ipv4Prefix.Host(address)))
                            result.Add(ReservedIdentity.Host);
                    continue;
                }
                if (!peer.IsPodPeer)
                    continue; // an IPv6 ipBlock: nothing on this datapath
                if (peer.Namespaces is null)
                {
                    AddPods(result, policy.Namespace, peer.Pods);
                    continue;
                }
                foreach (var (ns, identities) in podIdentities)
                    if (peer.Namespaces.Matches(identities[0].Key.NamespaceLabels))
                        AddPods(result, ns, peer.Pods);
            }
            return result;
        }

        private void AddPods(HashSet<uint> result, string ns, LabelSelector? pods)
        {
            if (!podIdentities.TryGetValue(ns, out var identities))
                return;
            foreach (var identity in identities)
                if (pods is null || pods.Matches(identity.Key.PodLabels))
                    result.Add(identity.Id);
        }

        /// <summary>
        /// Whether the addresses of a prefix are in cidr minus except. Exact for every identity:
        /// the ipcache gives an address the identity of its longest match, and each except prefix
        /// has its own entry.
        /// </summary>
        private static bool InBlock(CidrBlock block, Ipv4Prefix prefix)
        {
            if (!block.Cidr.Contains(prefix))
                return false;
            foreach (var e in block.Except)
                if (e.Contains(prefix))
                    return false;
            return true;
        }
    }

    /// <summary>The fewest aligned port blocks (first port, leading bits) that cover first..last exactly.</summary>
    internal static IEnumerable<(ushort First, int Bits)> PortBlocks(int first, int last)
    {
        int lo = first;
        while (lo <= last)
        {
            int size = lo == 0 ? 1 << 16 : lo & -lo;
            while (lo + size - 1 > last)
                size >>= 1;
            yield return ((ushort)lo, 16 - BitOperations.Log2((uint)size));
            lo += size;
        }
    }
}
