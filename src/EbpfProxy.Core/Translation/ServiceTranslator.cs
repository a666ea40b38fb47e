using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Planning;
using k8s.Models;

namespace EbpfProxy.Core.Translation;

/// <summary>Node facts the translation depends on, from this node's Node object when there is one.</summary>
public sealed record NodeContext(string NodeName, string? Zone = null, ImmutableArray<IPAddress> Addresses = default)
{
    public const string ZoneLabel = "topology.kubernetes.io/zone";

    public static NodeContext Default { get; } = new("");

    /// <summary>
    /// The node's facts: name as configured, zone label from its Node object, and the addresses
    /// NodePorts are served on: with no CIDRs (kube-proxy's "primary"), the Node's InternalIP and
    /// ExternalIP addresses; with --nodeport-addresses CIDRs, every local address inside them.
    /// </summary>
    public static NodeContext From(string nodeName, V1Node? node, IReadOnlyList<System.Net.IPNetwork>? nodePortCidrs, IEnumerable<IPAddress>? localAddresses)
    {
        var ctx = From(nodeName, node);
        if (nodePortCidrs is null || nodePortCidrs.Count == 0)
            return ctx;
        var selected = (localAddresses ?? []).Concat(ctx.Addresses.IsDefault ? [] : ctx.Addresses)
            .Where(a => nodePortCidrs.Any(c => c.Contains(a)))
            .Distinct()
            .OrderBy(a => AddressOrder.Key(a))
            .ToImmutableArray();
        return ctx with { Addresses = selected };
    }

    /// <summary>The node's facts: name as configured, zone label and InternalIP/ExternalIP addresses from its Node object.</summary>
    public static NodeContext From(string nodeName, V1Node? node)
    {
        if (node is null)
            return new NodeContext(nodeName, null, []);
        string? zone = node.Metadata?.Labels is { } l && l.TryGetValue(ZoneLabel, out var z) ? z : null;
        var addresses = ImmutableArray.CreateBuilder<IPAddress>();
        foreach (var a in node.Status?.Addresses ?? [])
            if (a.Type is "InternalIP" or "ExternalIP" && IPAddress.TryParse(a.Address, out var ip) && !addresses.Contains(ip))
                addresses.Add(ip);
        return new NodeContext(nodeName, zone, addresses.ToImmutable());
    }

    public bool Equals(NodeContext? other) =>
        other is not null && NodeName == other.NodeName && Zone == other.Zone
        && (Addresses.IsDefault ? [] : Addresses).SequenceEqual(other.Addresses.IsDefault ? [] : other.Addresses);

    public override int GetHashCode() => HashCode.Combine(NodeName, Zone);
}

/// <summary>
/// A LoadBalancer service with externalTrafficPolicy Local: the node answers its health check
/// node port with 200 while it has a local ready endpoint, so the load balancer steers traffic.
/// </summary>
public sealed record HealthCheckTarget(ushort Port, string Namespace, string Name, int LocalEndpoints);

/// <summary>
/// Result of translating a snapshot: the desired state, the objects that were skipped and why,
/// and the EndpointSlices this translation saw for the first time (for the network programming
/// latency SLI).
/// </summary>
public sealed record TranslationResult(DesiredLbState State, ImmutableArray<TranslationError> Errors)
{
    public IReadOnlyList<V1EndpointSlice> NewSlices { get; init; } = [];

    /// <summary>Frontends added, removed or changed by this translation; null when unknown (diff everything).</summary>
    public IReadOnlyCollection<FrontendKey>? ChangedFrontends { get; init; }

    /// <summary>Health check node ports to serve (LoadBalancer services with eTP Local).</summary>
    public IReadOnlyCollection<HealthCheckTarget> HealthChecks { get; init; } = [];
}

/// <summary>
/// Services + EndpointSlices -> frontend entries with their backends, following kube-proxy's
/// rules (shared/SEMANTICS.md, "Services"). Pure: same snapshot in, same state out.
/// <para>
/// An instance caches each service's result keyed by the identity of its Service object and of
/// its slices (the ClusterStore keeps the same instance for an unchanged object), so a sync after
/// one EndpointSlice change re-translates one service, and unchanged frontends keep their
/// FrontendState instance (which lets the syncer plan only what changed).
/// </para>
/// </summary>
public sealed class ServiceTranslator
{
    public const string ServiceProxyNameLabel = "service.kubernetes.io/service-proxy-name";
    public const string ServiceNameLabel = "kubernetes.io/service-name";
    public const uint DefaultAffinityTimeoutSeconds = 10800;

    private sealed record CacheEntry(V1Service Service, V1EndpointSlice[] Slices, List<FrontendState> Frontends, List<TranslationError> Errors);

    private readonly NodeContext _node;
    private readonly Dictionary<string, CacheEntry> _cache = new(StringComparer.Ordinal);
    // Who claims each frontend (normally one service; a clash is resolved by key order) and the
    // resulting table of frontends, kept across calls and updated for the services that changed.
    private readonly Dictionary<FrontendKey, SortedSet<string>> _claims = new();
    private readonly Dictionary<FrontendKey, FrontendState> _frontends = new();
    private readonly Dictionary<string, HealthCheckTarget> _healthChecks = new(StringComparer.Ordinal);
    // Services with translation errors and frontends claimed by more than one service: kept as
    // they change so a sync reports errors without scanning every service.
    private readonly SortedSet<string> _erroredServices = new(StringComparer.Ordinal);
    private readonly HashSet<FrontendKey> _contested = new();

    public ServiceTranslator(NodeContext node) => _node = node;

    public NodeContext Node => _node;

    /// <summary>Translates a snapshot once, without caching.</summary>
    public static TranslationResult Translate(ClusterSnapshot snapshot, NodeContext node) => new ServiceTranslator(node).Translate(snapshot);

    /// <summary>Translates everything in <paramref name="snapshot"/> (reusing cached results of unchanged services).</summary>
    public TranslationResult Translate(ClusterSnapshot snapshot) => Translate(new ServiceChanges(snapshot, null));

    /// <summary>
    /// Re-translates the services in <paramref name="changes"/> (all of them when Dirty is null)
    /// and returns the whole desired state, the frontends that changed, and every current error.
    /// The returned state is a live view: it is valid until the next call.
    /// </summary>
    public TranslationResult Translate(ServiceChanges changes)
    {
        var snapshot = changes.Snapshot;
        var changed = new HashSet<FrontendKey>();
        var newSlices = new List<V1EndpointSlice>();
        if (changes.Dirty is { } dirty)
        {
            foreach (var (key, slices) in dirty)
                Retranslate(key, snapshot.Services.GetValueOrDefault(key), slices, changed, newSlices);
        }
        else
        {
            var slicesByService = GroupSlices(snapshot);
            foreach (var key in _cache.Keys.Where(k => !snapshot.Services.ContainsKey(k)).ToList())
                Retranslate(key, null, [], changed, newSlices);
            var all = snapshot.Services.Select(kv => (kv.Key, kv.Value, slicesByService.TryGetValue(kv.Key, out var list) ? list.ToArray() : [])).ToArray();
            var translated = TranslateStale(all);
            for (int i = 0; i < all.Length; i++)
                Retranslate(all[i].Key, all[i].Value, all[i].Item3, changed, newSlices, translated?[i]);
        }

        var errors = ImmutableArray.CreateBuilder<TranslationError>();
        foreach (var key in _erroredServices)
            errors.AddRange(_cache[key].Errors);
        foreach (var fk in _contested.OrderBy(k => AddressOrder.Key(k.Frontend.Address)).ThenBy(k => k.Frontend.Port).ThenBy(k => k.Frontend.Protocol).ThenBy(k => k.Scope))
        {
            foreach (var loser in _claims[fk].Skip(1))
                errors.Add(new TranslationError("Service", loser, $"frontend {fk} is already claimed by {_frontends[fk].Service}; port skipped"));
        }
        return new TranslationResult(new DesiredLbState(_frontends), errors.ToImmutable())
        {
            NewSlices = newSlices,
            ChangedFrontends = changed,
            HealthChecks = [.. _healthChecks.Values],
        };
    }

    /// <summary>
    /// A full pass (start-up, re-list) translates every service whose cached result is stale on
    /// all cores first (translating one service is pure); the results are then taken in key
    /// order as a sequential pass would compute them. Null when there are too few to share.
    /// </summary>
    private (List<FrontendState> Frontends, List<TranslationError> Errors, System.Runtime.ExceptionServices.ExceptionDispatchInfo? Failure)?[]? TranslateStale(
        (string Key, V1Service Service, V1EndpointSlice[] Slices)[] services)
    {
        if (Environment.ProcessorCount < 2 || services.Length < 256)
            return null;
        var results = new (List<FrontendState>, List<TranslationError>, System.Runtime.ExceptionServices.ExceptionDispatchInfo?)?[services.Length];
        Parallel.For(0, services.Length, i =>
        {
            var (key, service, slices) = services[i];
            if (_cache.TryGetValue(key, out var old) && ReferenceEquals(old.Service, service) && SameSlices(old.Slices, slices))
                return;
            var fes = new List<FrontendState>();
            var errs = new List<TranslationError>();
            try
            {
                TranslateService(key, service, slices, _node, fes, errs);
                results[i] = (fes, errs, null);
            }
            catch (Exception ex)
            {
                results[i] = (fes, errs, System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(ex));
            }
        });
        return results;
    }

    private void Retranslate(string key, V1Service? service, V1EndpointSlice[] slices, HashSet<FrontendKey> changed, List<V1EndpointSlice> newSlices,
        (List<FrontendState> Frontends, List<TranslationError> Errors, System.Runtime.ExceptionServices.ExceptionDispatchInfo? Failure)? translated = null)
    {
        _cache.TryGetValue(key, out var old);
        if (service is null)
        {
            _healthChecks.Remove(key);
            _erroredServices.Remove(key);
            if (old is null)
                return;
            _cache.Remove(key);
            foreach (var fe in old.Frontends)
                Unclaim(fe.Key, key, changed);
            return;
        }
        if (old is not null && ReferenceEquals(old.Service, service) && SameSlices(old.Slices, slices))
            return;

        var fes = translated?.Frontends ?? new List<FrontendState>();
        var errs = translated?.Errors ?? new List<TranslationError>();
        try
        {
            if (translated is null)
                TranslateService(key, service, slices, _node, fes, errs);
            else
                translated.Value.Failure?.Throw();
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or InvalidOperationException or OverflowException)
        {
            fes.Clear();
            errs.Add(new TranslationError("Service", key, ex.Message));
        }
        foreach (var slice in slices)
            if (old is null || Array.IndexOf(old.Slices, slice) < 0)
                newSlices.Add(slice);
        _cache[key] = new CacheEntry(service, slices, fes, errs);
        if (errs.Count > 0)
            _erroredServices.Add(key);
        else
            _erroredServices.Remove(key);
        if (HealthCheck(service, slices, _node) is { } check)
            _healthChecks[key] = check;
        else
            _healthChecks.Remove(key);

        if (old is not null)
            foreach (var fe in old.Frontends)
                if (!fes.Any(f => f.Key == fe.Key))
                    Unclaim(fe.Key, key, changed);
        foreach (var fe in fes)
            Claim(fe, key, changed);
    }

    private void Claim(FrontendState fe, string owner, HashSet<FrontendKey> changed)
    {
        if (!_claims.TryGetValue(fe.Key, out var owners))
            _claims[fe.Key] = owners = new SortedSet<string>(StringComparer.Ordinal);
        owners.Add(owner);
        if (owners.Count > 1)
            _contested.Add(fe.Key);
        if (owners.Min == owner && (!_frontends.TryGetValue(fe.Key, out var cur) || !ReferenceEquals(cur, fe)))
        {
            _frontends[fe.Key] = fe;
            changed.Add(fe.Key);
        }
    }

    private void Unclaim(FrontendKey fk, string owner, HashSet<FrontendKey> changed)
    {
        if (!_claims.TryGetValue(fk, out var owners) || !owners.Remove(owner))
            return;
        changed.Add(fk);
        if (owners.Count < 2)
            _contested.Remove(fk);
        if (owners.Count == 0)
        {
            _claims.Remove(fk);
            _frontends.Remove(fk);
            return;
        }
        // The next claimant (by key) takes over.
        var next = _cache[owners.Min!].Frontends.First(f => f.Key == fk);
        _frontends[fk] = next;
    }

    private static bool SameSlices(V1EndpointSlice[] a, V1EndpointSlice[] b)
    {
        if (a.Length != b.Length)
            return false;
        for (int i = 0; i < a.Length; i++)
            if (!ReferenceEquals(a[i], b[i]))
                return false;
        return true;
    }

    private static Dictionary<string, List<V1EndpointSlice>> GroupSlices(ClusterSnapshot snapshot)
    {
        var result = new Dictionary<string, List<V1EndpointSlice>>(StringComparer.Ordinal);
        foreach (var slice in snapshot.EndpointSlices.Values)
        {
            if (slice.Metadata?.Labels is null || !slice.Metadata.Labels.TryGetValue(ServiceNameLabel, out var svc) || string.IsNullOrEmpty(svc))
                continue;
            var key = $"{slice.Metadata.NamespaceProperty ?? "default"}/{svc}";
            if (!result.TryGetValue(key, out var list))
                result[key] = list = [];
            list.Add(slice);
        }
        return result;
    }

    private static void TranslateService(
        string key,
        V1Service service,
        V1EndpointSlice[] slices,
        NodeContext node,
        List<FrontendState> frontends,
        List<TranslationError> errors)
    {
        var spec = service.Spec;
        if (spec is null)
            return;
        // Another proxy owns services carrying this label.
        if (service.Metadata?.Labels?.ContainsKey(ServiceProxyNameLabel) == true)
            return;
        if (string.Equals(spec.Type, "ExternalName", StringComparison.Ordinal))
            return;

        var clusterIps = ClusterIps(spec);
        if (clusterIps.Count == 0)
            return; // headless, or not allocated yet
        var ns = service.Metadata?.NamespaceProperty ?? "default";
        var name = service.Metadata?.Name ?? throw new ArgumentException("metadata.name is missing");
        bool topology = !string.IsNullOrEmpty(node.Zone) && WantsTopology(service);

        var flags = ServiceFlags.None;
        uint affinityTimeout = 0;
        if (string.Equals(spec.SessionAffinity, "ClientIP", StringComparison.Ordinal))
        {
            flags |= ServiceFlags.Affinity;
            affinityTimeout = (uint?)spec.SessionAffinityConfig?.ClientIP?.TimeoutSeconds ?? DefaultAffinityTimeoutSeconds;
        }

        // Each ClusterIP is marked as one, so traffic to a port or protocol it does not define is
        // rejected rather than leaking to the network (kube-proxy's nftables mode).
        foreach (var ip in clusterIps)
        {
            if (ip.AddressFamily != AddressFamily.InterNetwork)
                continue;
            var wk = new FrontendKey(new Frontend(ip, 0, L4Protocol.Any), FrontendScope.External);
            frontends.Add(new FrontendState(wk, new ServicePortName(ns, name, "*"), ServiceFlags.Wildcard, 0, [], []));
        }

        var sourceRanges = SourceRanges(service, key, node, errors);
        foreach (var port in spec.Ports ?? [])
        {
            L4Protocol protocol;
            try
            {
                protocol = ParseProtocol(port.Protocol);
            }
            catch (FormatException ex)
            {
                errors.Add(new TranslationError("Service", key, $"port {port.Name ?? port.Port.ToString()}: {ex.Message}; port skipped"));
                continue;
            }
            if (port.Port is < 1 or > 65535)
            {
                errors.Add(new TranslationError("Service", key, $"port {port.Port} is out of range; port skipped"));
                continue;
            }
            var portName = new ServicePortName(ns, name, port.Name ?? "");
            // IPv4 datapath for now: frontends and endpoints of the other family are skipped, as
            // kube-proxy skips endpoints of the wrong family.
            var choice = SelectEndpoints(slices, port, protocol, AddressFamily.InterNetwork, node, topology);
            bool anywhere = !choice.ClusterActive.IsEmpty || !choice.ClusterTerminating.IsEmpty;
            if (protocol == L4Protocol.Sctp && choice.ClusterActive.Concat(choice.ClusterTerminating).Any(b => b.Address.Port != port.Port))
                errors.Add(new TranslationError("Service", key, $"SCTP port {port.Port}: backends listen on another port; SCTP ports cannot be translated (CRC32c), so this traffic is dropped"));
            bool localEmpty = choice.LocalActive.IsEmpty && choice.LocalTerminating.IsEmpty;
            var noLocal = localEmpty && anywhere ? ServiceFlags.DropWithoutLocal : ServiceFlags.None;

            // ClusterIP: internalTrafficPolicy applies, whatever the source.
            bool itpLocal = string.Equals(spec.InternalTrafficPolicy, "Local", StringComparison.Ordinal);
            foreach (var ip in clusterIps.Where(ip => ip.AddressFamily == AddressFamily.InterNetwork))
            {
                var fk = new FrontendKey(new Frontend(ip, (ushort)port.Port, protocol), FrontendScope.External);
                var state = itpLocal
                    ? new FrontendState(fk, portName, flags | ServiceFlags.InternalTrafficLocal | noLocal, affinityTimeout, choice.LocalActive, choice.LocalTerminating)
                    : new FrontendState(fk, portName, flags, affinityTimeout, choice.ClusterActive, choice.ClusterTerminating);
                Add(state);
            }

            // NodePort, ExternalIPs, LoadBalancer ingress: externalTrafficPolicy applies to external
            // sources only; pods always get the cluster-wide set (kube-proxy's short-circuit).
            bool etpLocal = string.Equals(spec.ExternalTrafficPolicy, "Local", StringComparison.Ordinal);
            foreach (var (address, frontendPort, kind) in ExternalFrontends(service, port, node))
            {
                var fe = new Frontend(address, frontendPort, protocol);
                var external = new FrontendKey(fe, FrontendScope.External);
                // loadBalancerSourceRanges filter LB ingress IPs only.
                var ranges = kind == ServiceFlags.LoadBalancer ? sourceRanges : default;
                var kindFlags = kind | (ranges.IsDefault ? ServiceFlags.None : ServiceFlags.SourceRanges);
                var rangesOrEmpty = ranges.IsDefault ? [] : ranges;
                if (!etpLocal)
                {
                    Add(new FrontendState(external, portName, flags | kindFlags, affinityTimeout, choice.ClusterActive, choice.ClusterTerminating) { SourceRanges = rangesOrEmpty });
                    continue;
                }
                Add(new FrontendState(external, portName, flags | kindFlags | ServiceFlags.ExternalTrafficLocal | ServiceFlags.TwoScopes | noLocal, affinityTimeout, choice.LocalActive, choice.LocalTerminating) { SourceRanges = rangesOrEmpty });
                Add(new FrontendState(new FrontendKey(fe, FrontendScope.Internal), portName, flags | kindFlags, affinityTimeout, choice.ClusterActive, choice.ClusterTerminating) { SourceRanges = rangesOrEmpty });
            }

            void Add(FrontendState state)
            {
                if (frontends.Any(f => f.Key == state.Key))
                {
                    errors.Add(new TranslationError("Service", key, $"frontend {state.Key} is defined twice; port {portName} skipped there"));
                    return;
                }
                frontends.Add(state);
            }
        }
    }

    /// <summary>
    /// kube-proxy serves spec.healthCheckNodePort for LoadBalancer services with eTP Local,
    /// counting this node's ready endpoints (terminating ones do not count).
    /// </summary>
    private static HealthCheckTarget? HealthCheck(V1Service service, V1EndpointSlice[] slices, NodeContext node)
    {
        var spec = service.Spec;
        if (spec is null || !string.Equals(spec.Type, "LoadBalancer", StringComparison.Ordinal)
            || !string.Equals(spec.ExternalTrafficPolicy, "Local", StringComparison.Ordinal)
            || spec.HealthCheckNodePort is not (> 0 and <= 65535))
            return null;
        var local = new HashSet<string>(StringComparer.Ordinal);
        foreach (var slice in slices)
            foreach (var ep in slice.Endpoints ?? [])
                if ((ep.Conditions?.Ready ?? true) && !string.IsNullOrEmpty(ep.NodeName) && ep.NodeName == node.NodeName)
                    foreach (var a in ep.Addresses ?? [])
                        local.Add(a);
        return new HealthCheckTarget((ushort)spec.HealthCheckNodePort.Value, service.Metadata?.NamespaceProperty ?? "default", service.Metadata?.Name ?? "", local.Count);
    }

    /// <summary>
    /// loadBalancerSourceRanges as prefixes (whitespace around an entry ignored), or default when
    /// the service has none. An entry that is no IPv4 CIDR is reported and left out: the others
    /// still filter, so a typo never opens the service to everyone. When the node's primary
    /// address is inside a range, the LB ingress IPs are accepted as sources too (kube-proxy does
    /// this for hairpin traffic through the load balancer).
    /// </summary>
    private static ImmutableArray<System.Net.IPNetwork> SourceRanges(V1Service service, string key, NodeContext node, List<TranslationError> errors)
    {
        var spec = service.Spec!;
        if (!string.Equals(spec.Type, "LoadBalancer", StringComparison.Ordinal) || spec.LoadBalancerSourceRanges is not { Count: > 0 } raw)
            return default;
        var ranges = ImmutableArray.CreateBuilder<System.Net.IPNetwork>();
        foreach (var entry in raw)
        {
            var text = entry?.Trim() ?? "";
            if (System.Net.IPNetwork.TryParse(text, out var net) && net.BaseAddress.AddressFamily == AddressFamily.InterNetwork)
            {
                if (!ranges.Contains(net))
                    ranges.Add(net);
            }
            else if (!(System.Net.IPNetwork.TryParse(text, out var other) && other.BaseAddress.AddressFamily == AddressFamily.InterNetworkV6))
            {
                errors.Add(new TranslationError("Service", key, $"loadBalancerSourceRanges entry '{entry}' is not a CIDR; ignored (the other ranges still apply)"));
            }
        }
        var primary = node.Addresses.IsDefault ? null : node.Addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork);
        if (primary is not null && ranges.Any(r => r.Contains(primary)))
        {
            foreach (var ingress in service.Status?.LoadBalancer?.Ingress ?? [])
            {
                if (IPAddress.TryParse(ingress.Ip, out var ip) && ip.AddressFamily == AddressFamily.InterNetwork)
                {
                    var host = new System.Net.IPNetwork(ip, 32);
                    if (!ranges.Contains(host))
                        ranges.Add(host);
                }
            }
        }
        return ranges.ToImmutable();
    }

    /// <summary>
    /// The external frontends of a service port: each ExternalIP; for type LoadBalancer each
    /// ingress IP whose ipMode is not Proxy; for types NodePort and LoadBalancer the node port on
    /// each of the node's addresses.
    /// </summary>
    private static IEnumerable<(IPAddress Address, ushort Port, ServiceFlags Kind)> ExternalFrontends(V1Service service, V1ServicePort port, NodeContext node)
    {
        var spec = service.Spec;
        foreach (var text in spec.ExternalIPs ?? [])
        {
            if (IPAddress.TryParse(text.Trim(), out var ip) && ip.AddressFamily == AddressFamily.InterNetwork)
                yield return (ip, (ushort)port.Port, ServiceFlags.ExternalIp);
        }
        bool loadBalancer = string.Equals(spec.Type, "LoadBalancer", StringComparison.Ordinal);
        if (loadBalancer)
        {
            foreach (var ingress in service.Status?.LoadBalancer?.Ingress ?? [])
            {
                // ipMode Proxy: the load balancer delivers to the node, not to the ingress IP.
                if (string.Equals(ingress.IpMode, "Proxy", StringComparison.Ordinal))
                    continue;
                if (IPAddress.TryParse(ingress.Ip?.Trim(), out var ip) && ip.AddressFamily == AddressFamily.InterNetwork)
                    yield return (ip, (ushort)port.Port, ServiceFlags.LoadBalancer);
            }
        }
        if ((loadBalancer || string.Equals(spec.Type, "NodePort", StringComparison.Ordinal)) && port.NodePort is > 0 and <= 65535)
        {
            foreach (var ip in node.Addresses.IsDefault ? [] : node.Addresses)
                if (ip.AddressFamily == AddressFamily.InterNetwork)
                    yield return (ip, (ushort)port.NodePort.Value, ServiceFlags.NodePort);
        }
    }

    private static List<IPAddress> ClusterIps(V1ServiceSpec spec)
    {
        var result = new List<IPAddress>();
        IEnumerable<string> raw = spec.ClusterIPs is { Count: > 0 } ips ? ips : spec.ClusterIP is { } one ? [one] : [];
        foreach (var s in raw)
        {
            if (string.IsNullOrEmpty(s) || string.Equals(s, "None", StringComparison.Ordinal))
                continue;
            if (!IPAddress.TryParse(s.Trim(), out var ip))
                throw new FormatException($"clusterIP '{s}' is not an IP address");
            if (!result.Contains(ip))
                result.Add(ip);
        }
        return result;
    }

    internal static L4Protocol ParseProtocol(string? protocol) => protocol switch
    {
        null or "" or "TCP" => L4Protocol.Tcp,
        "UDP" => L4Protocol.Udp,
        "SCTP" => L4Protocol.Sctp,
        _ => throw new FormatException($"protocol '{protocol}' is not TCP, UDP or SCTP"),
    };

    /// <summary>The cluster-wide and the node-local choice of one service port's endpoints.</summary>
    private sealed record EndpointChoice(
        ImmutableArray<Backend> ClusterActive, ImmutableArray<Backend> ClusterTerminating,
        ImmutableArray<Backend> LocalActive, ImmutableArray<Backend> LocalTerminating);

    /// <summary>
    /// Ready endpoints are active; only when none is ready do serving+terminating ones form the
    /// fallback tail. The cluster-wide choice (narrowed by topology hints when they apply) and the
    /// node-local choice each apply that rule on their own. Slices of a service merge and duplicate
    /// addresses collapse. The backend port is the slice port whose name and protocol match the
    /// service port.
    /// </summary>
    private static EndpointChoice SelectEndpoints(
        V1EndpointSlice[] slices, V1ServicePort servicePort, L4Protocol protocol, AddressFamily family, NodeContext node, bool topology)
    {
        var ready = new Dictionary<BackendAddress, Backend>();
        var fallback = new Dictionary<BackendAddress, Backend>();
        // Topology-aware routing (kube-proxy's canUseTopology): only when every ready endpoint
        // carries zone hints and some hint names this node's zone; then only those endpoints.
        var inZone = new HashSet<BackendAddress>();
        bool allReadyHinted = true;
        var wantType = family == AddressFamily.InterNetwork ? "IPv4" : "IPv6";
        var wantName = servicePort.Name ?? "";

        foreach (var slice in slices)
        {
            if (!string.Equals(slice.AddressType, wantType, StringComparison.Ordinal))
                continue;
            var slicePort = slice.Ports?.FirstOrDefault(p => (p.Name ?? "") == wantName && SafeProtocol(p.Protocol) == protocol);
            if (slicePort?.Port is not { } portNumber || portNumber is < 1 or > 65535)
                continue;
            foreach (var ep in slice.Endpoints ?? [])
            {
                var c = ep.Conditions;
                bool isReady = c?.Ready ?? true;
                bool serving = c?.Serving ?? true;
                bool terminating = c?.Terminating ?? false;
                bool local = !string.IsNullOrEmpty(ep.NodeName) && string.Equals(ep.NodeName, node.NodeName, StringComparison.Ordinal);
                foreach (var a in ep.Addresses ?? [])
                {
                    if (!IPAddress.TryParse(a, out var ip) || ip.AddressFamily != family)
                        continue;
                    var addr = new BackendAddress(ip, (ushort)portNumber, protocol);
                    var flags = (local ? BackendFlags.Local : BackendFlags.None) | (terminating ? BackendFlags.Terminating : BackendFlags.None);
                    if (isReady)
                    {
                        ready.TryAdd(addr, new Backend(addr, flags));
                        var hints = ep.Hints?.ForZones;
                        if (hints is null || hints.Count == 0)
                            allReadyHinted = false;
                        else if (node.Zone is { } zone && hints.Any(h => string.Equals(h.Name, zone, StringComparison.Ordinal)))
                            inZone.Add(addr);
                    }
                    else if (serving && terminating)
                    {
                        fallback.TryAdd(addr, new Backend(addr, flags));
                    }
                }
            }
        }

        ImmutableArray<Backend> clusterActive, clusterTail;
        if (topology && allReadyHinted && inZone.Count > 0)
            (clusterActive, clusterTail) = (Ordered(ready.Values.Where(b => inZone.Contains(b.Address))), []);
        else if (ready.Count > 0)
            (clusterActive, clusterTail) = (Ordered(ready.Values), []);
        else
            (clusterActive, clusterTail) = ([], Ordered(fallback.Values));

        var localReady = ready.Values.Where(b => (b.Flags & BackendFlags.Local) != 0).ToList();
        var (localActive, localTail) = localReady.Count > 0
            ? (Ordered(localReady), ImmutableArray<Backend>.Empty)
            : (ImmutableArray<Backend>.Empty, Ordered(fallback.Values.Where(b => (b.Flags & BackendFlags.Local) != 0)));
        return new EndpointChoice(clusterActive, clusterTail, localActive, localTail);
    }

    /// <summary>Backends in address order, so identical input gives identical output.</summary>
    private static ImmutableArray<Backend> Ordered(IEnumerable<Backend> backends) =>
        [.. backends.OrderBy(b => AddressOrder.Key(b.Address.Address)).ThenBy(b => b.Address.Port).ThenBy(b => b.Address.Protocol)];

    public const string TopologyModeAnnotation = "service.kubernetes.io/topology-mode";
    public const string LegacyTopologyAnnotation = "service.kubernetes.io/topology-aware-hints";

    /// <summary>
    /// Whether the service asks for topology-aware routing: the topology-mode annotation (or its
    /// older name) set to Auto, or trafficDistribution PreferClose (PreferSameZone is its newer name).
    /// </summary>
    private static bool WantsTopology(V1Service service)
    {
        var annotations = service.Metadata?.Annotations;
        string? mode = null;
        if (annotations is not null && !annotations.TryGetValue(TopologyModeAnnotation, out mode))
            annotations.TryGetValue(LegacyTopologyAnnotation, out mode);
        if (mode is "Auto" or "auto")
            return true;
        return service.Spec?.TrafficDistribution is "PreferClose" or "PreferSameZone";
    }


    private static L4Protocol? SafeProtocol(string? protocol)
    {
        try
        {
            return ParseProtocol(protocol);
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
