using System.Buffers.Binary;
using System.Net;
using EbpfProxy.Core.Model;
using EbpfProxy.Datapath.Loading;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Sync;
using LibBpf.Net;

namespace EbpfProxy.Datapath.Tracing;

/// <summary>Where the traced packet enters the datapath.</summary>
public enum TraceHook
{
    /// <summary>from_pod: a packet a pod sends (tc ingress on its host-side veth).</summary>
    FromPod,
    /// <summary>to_pod: a packet delivered to a pod (tc egress on its host-side veth), e.g. a reply.</summary>
    ToPod,
    /// <summary>from_netdev: a packet arriving on a node device (another node, an outside client).</summary>
    FromNetdev,
    /// <summary>to_netdev: a packet leaving on a node device, e.g. a reply to an outside client.</summary>
    ToNetdev,
}

public sealed record TraceRequest(IPAddress Source, ushort SourcePort, IPAddress Destination, ushort DestinationPort, L4Protocol Protocol, TraceHook Hook);

public sealed record TraceBackend(uint Id, string Address, bool Fallback);

/// <summary>
/// How NetworkPolicy treated a traced packet: the local pod's endpoint id, the remote identity a
/// new flow was judged against (0 when it was not judged), and the verdict.
/// </summary>
public sealed record TracePolicy(uint EndpointId, uint RemoteIdentity, PolicyVerdict Verdict);

/// <summary>What the datapath decided for one synthetic packet.</summary>
public sealed record TraceResult(
    TraceRequest Request,
    string Verdict,
    string Reason,
    bool Drop,
    string? Frontend,
    string? Service,
    ushort RevNatId,
    IReadOnlyList<TraceBackend> EligibleBackends,
    TraceBackend? ChosenBackend,
    string? Nat,
    IReadOnlyList<string> Notes)
{
    /// <summary>The local pod's policy decision; null when the pod has no isolation.</summary>
    public TracePolicy? Policy { get; init; }

    /// <summary>
    /// When the packet (after translation) is for a pod on this node: the same packet traced on
    /// through that pod's to_pod, where its ingress policy is judged; null otherwise.
    /// </summary>
    public TraceResult? Delivery { get; init; }

    /// <summary>The local pod the packet is delivered to ("namespace/name"), when <see cref="Delivery"/> is set.</summary>
    public string? DeliveredTo { get; init; }

    /// <summary>The verdict of the whole path: the delivery's when it stopped the packet at the local pod, else this hook's.</summary>
    public string FinalVerdict => StoppedAtDelivery ? Delivery!.Verdict : Verdict;

    /// <summary>The reason of the whole path, see <see cref="FinalVerdict"/>.</summary>
    public string FinalReason => StoppedAtDelivery ? Delivery!.Reason : Reason;

    private bool StoppedAtDelivery => Delivery is { } d && Verdict == "forward" && d.Verdict is not ("forward" or "redirect");

    /// <summary>
    /// The layers the packet went through, in order, each with what it did: service translation,
    /// egress policy (the sending pod, from_pod), ingress policy (the receiving pod, to_pod).
    /// </summary>
    public IReadOnlyList<TraceLayer> Layers { get; init; } = [];

    /// <summary>The layer that dropped or rejected the packet; null when it was delivered (or forwarded).</summary>
    public TraceLayer? DecidedBy => Layers.FirstOrDefault(l => l.Decisive);
}

/// <summary>One layer of a traced path: what it is, the hook it ran in, what it did, and whether it stopped the packet.</summary>
public sealed record TraceLayer(string Name, string Hook, string Outcome, bool Decisive);

/// <summary>
/// Runs the daemon's own loaded program (pinned under the pin path) on a synthetic packet with
/// BPF_PROG_TEST_RUN against the live pinned maps, marked so that it creates no state, and
/// explains the decision: the frontend matched, the eligible backends, the one chosen, the
/// translation applied, the verdict and its reason.
/// </summary>
public static class PacketTracer
{
    private const uint TcActOk = 0, TcActShot = 2, TcActRedirect = 7;

    /// <summary>
    /// Traces the packet through the hook it enters by, and, when that forwards it to a pod on
    /// this node (its destination, after translation, is a local pod's address), on through that
    /// pod's to_pod with the translated packet, so the backend's ingress policy is part of the
    /// answer ("which layer dropped my packet?").
    /// </summary>
    public static TraceResult Run(string pinPath, TraceRequest request)
    {
        var (first, output) = RunHook(pinPath, request, null);
        TraceResult? delivery = null;
        string? deliveredTo = null;
        if (request.Hook is TraceHook.FromPod or TraceHook.FromNetdev && first.Verdict == "forward" && output is { Length: >= 38 })
        {
            var dst = new IPAddress(output.AsSpan(30, 4));
            if (LocalPod(pinPath, dst) is { } pod)
            {
                var translated = new TraceRequest(new IPAddress(output.AsSpan(26, 4)), BinaryPrimitives.ReadUInt16BigEndian(output.AsSpan(34)),
                    dst, BinaryPrimitives.ReadUInt16BigEndian(output.AsSpan(36)), request.Protocol, TraceHook.ToPod);
                delivery = RunHook(pinPath, translated, output).Result;
                deliveredTo = pod;
            }
        }
        var result = first with { Delivery = delivery, DeliveredTo = deliveredTo };
        return result with { Layers = Layers(result) };
    }

    /// <summary>The local pod ("namespace/name") with this address, or null (not a pod of this node).</summary>
    private static string? LocalPod(string pinPath, IPAddress address)
    {
        using var policy = PolicyMaps.OpenPinned(pinPath);
        var key = Be32Address.FromAddress(address);
        if (policy.EndpointNames.TryLookup(key, out var name))
            return name.NameText();
        return policy.Endpoints.TryLookup(key, out _) ? address.ToString() : null;
    }

    private static List<TraceLayer> Layers(TraceResult r)
    {
        var layers = new List<TraceLayer>();
        var hook = HookName(r.Request.Hook);
        bool stopped = r.Verdict != "forward" && r.Verdict != "redirect";
        bool policyDrop = r.Reason.StartsWith("policy_", StringComparison.Ordinal);
        if (r.Request.Hook is TraceHook.FromPod or TraceHook.FromNetdev)
        {
            var translation = r.Frontend is null ? "not for a service"
                : $"{r.Service ?? r.Frontend}: " + (r.Nat ?? (r.ChosenBackend is { } b ? $"backend {b.Address}" : r.Verdict));
            layers.Add(new TraceLayer("service translation", hook, stopped && !policyDrop ? $"{r.Verdict} ({r.Reason}); {translation}" : translation, stopped && !policyDrop));
            if (r.Request.Hook == TraceHook.FromPod)
                layers.Add(new TraceLayer("egress policy", hook, PolicyOutcome(r.Policy, stopped && policyDrop, r), stopped && policyDrop));
            if (r.Delivery is { } d)
            {
                bool dStopped = d.Verdict != "forward" && d.Verdict != "redirect";
                layers.Add(new TraceLayer("ingress policy", $"to_pod of {r.DeliveredTo}", PolicyOutcome(d.Policy, dStopped, d), dStopped));
            }
        }
        else
        {
            layers.Add(new TraceLayer(r.Request.Hook == TraceHook.ToPod ? "ingress policy" : "reverse translation", hook,
                r.Request.Hook == TraceHook.ToPod ? PolicyOutcome(r.Policy, stopped, r) : (r.Nat ?? "none"), stopped));
        }
        return layers;
    }

    private static string PolicyOutcome(TracePolicy? policy, bool dropped, TraceResult r) =>
        dropped ? $"{r.Verdict} ({r.Reason})"
        : policy is null ? "not isolated"
        : $"{policy.Verdict} (endpoint {policy.EndpointId}, remote identity {policy.RemoteIdentity})";

    private static string HookName(TraceHook hook) => hook switch
    {
        TraceHook.FromPod => ProgramNames.FromPod,
        TraceHook.ToPod => ProgramNames.ToPod,
        TraceHook.FromNetdev => ProgramNames.FromNetdev,
        _ => ProgramNames.ToNetdev,
    };

    /// <summary>Runs one hook on the request's packet (or on <paramref name="packetIn"/>, a packet an earlier hook produced); returns the result and the packet as it left.</summary>
    private static (TraceResult Result, byte[]? Output) RunHook(string pinPath, TraceRequest request, byte[]? packetIn)
    {
        var progName = HookName(request.Hook);
        var progPath = Path.Combine(pinPath, DatapathLoader.ProgramPinFolder, progName);
        if (!File.Exists(progPath))
            throw new FileNotFoundException($"no {progName} program is pinned at {progPath}: is the daemon (this version or newer) running on this node?", progPath);
        using var program = BpfProgram.OpenPinned(progPath);
        using var maps = LbMaps.OpenPinned(pinPath);

        var packet = packetIn ?? TracePacket.Build(request.Source, request.SourcePort, request.Destination, request.DestinationPort, request.Protocol);
        // struct __sk_buff up to and including mark: len and pkt_type must be zero, mark is ours.
        var context = new byte[12];
        BinaryPrimitives.WriteUInt32LittleEndian(context.AsSpan(8), TraceRecord.Mark);
        maps.TraceOut.TryLookup(0u, out var before);
        var output = new byte[packet.Length + 128];
        var run = BpfProgram.TestRun(program.Fd, packet, output, context, 1, progName);
        maps.TraceOut.TryLookup(0u, out var record);
        var notes = new List<string>();
        if (record.Seq == before.Seq)
            notes.Add("the program left no trace record (is it an older build?)");

        var reason = (Reason)(byte)record.Reason;
        string verdict = run.ReturnValue switch
        {
            TcActOk => "forward",
            TcActShot => "DROP",
            TcActRedirect when reason is Reason.RejectNoEndpoint or Reason.RejectNoPort => "REJECT",
            TcActRedirect => "redirect",
            var other => $"tc action {other}",
        };

        string? frontend = null, service = null;
        var eligible = new List<TraceBackend>();
        if (record.RevNatId != 0)
        {
            if (maps.Names.TryLookup(record.RevNatId, out var name))
                service = name.ToString();
            if (maps.Lb4ReverseNat.TryLookup(record.RevNatId, out var rn))
                frontend = $"{rn.AddressBe}:{rn.PortBe}/{request.Protocol.ToString().ToUpperInvariant()}";
        }
        if (request.Hook is TraceHook.FromPod or TraceHook.FromNetdev && (record.Flags & TraceFlags.Frontend) != 0)
            eligible.AddRange(Eligible(maps, request));
        if ((record.Flags & TraceFlags.Masquerade) != 0)
            notes.Add("masqueraded: the backend sees the node's address, and its replies come back through this node");
        if ((record.Flags & TraceFlags.SnatReply) != 0)
            notes.Add("a reply of a masqueraded connection: the client and the frontend are restored");
        if ((record.Flags & TraceFlags.Wildcard) != 0)
            notes.Add($"{request.Destination} is a ClusterIP, but no service defines port {request.DestinationPort}/{request.Protocol.ToString().ToUpperInvariant()} on it");
        if ((record.Flags & TraceFlags.ConntrackHit) != 0)
            notes.Add("an existing connection's conntrack entry decided (established flows keep their backend)");
        if ((record.Flags & TraceFlags.Affinity) != 0)
            notes.Add("a session-affinity pin decided");

        TraceBackend? chosen = null;
        if (record.BackendId != 0 && maps.Lb4Backends.TryLookup(record.BackendId, out var be))
            chosen = new TraceBackend(record.BackendId, $"{be.AddressBe}:{be.PortBe}", eligible.FirstOrDefault(e => e.Id == record.BackendId)?.Fallback ?? false);

        string? nat = null;
        if (run.ReturnValue == TcActOk && run.DataSizeOut >= 34 + 4)
        {
            var o = output.AsSpan(0, run.DataSizeOut);
            var src = new IPAddress(o.Slice(26, 4));
            var dst = new IPAddress(o.Slice(30, 4));
            var sport = BinaryPrimitives.ReadUInt16BigEndian(o[34..]);
            var dport = BinaryPrimitives.ReadUInt16BigEndian(o[36..]);
            if (!dst.Equals(request.Destination) || dport != request.DestinationPort)
                nat = $"DNAT {request.Destination}:{request.DestinationPort} -> {dst}:{dport}";
            if (!src.Equals(request.Source) || sport != request.SourcePort)
                nat = (nat is null ? "" : nat + ", ") + $"SNAT {request.Source}:{request.SourcePort} -> {src}:{sport}";
        }
        if (verdict == "REJECT")
            notes.Add("an ICMP port unreachable goes back to the client");
        TracePolicy? policy = record.PolicyVerdict == PolicyVerdict.None ? null : new(record.PolicyEndpoint, record.PolicyIdentity, record.PolicyVerdict);
        if (policy is not null)
            notes.Add(PolicyNote(policy, request));

        var result = new TraceResult(request, verdict, ReasonInfo.Name(reason), ReasonInfo.IsDrop(reason), frontend, service, record.RevNatId,
            eligible, chosen, nat, notes) { Policy = policy };
        return (result, run.ReturnValue == TcActOk ? output.AsSpan(0, run.DataSizeOut).ToArray() : null);
    }

    private static string PolicyNote(TracePolicy policy, TraceRequest request)
    {
        var direction = request.Hook == TraceHook.FromPod ? "egress" : "ingress";
        var peer = policy.RemoteIdentity switch
        {
            PolicyIdentity.Host => "this node",
            PolicyIdentity.World => "the world (identity 2)",
            var id => $"identity {id}",
        };
        return policy.Verdict switch
        {
            PolicyVerdict.Tracked => $"policy: a connection endpoint {policy.EndpointId} admitted earlier (replies and later packets pass unjudged)",
            PolicyVerdict.NotIsolated => $"policy: endpoint {policy.EndpointId} is not isolated for {direction}; the connection is tracked for its replies",
            PolicyVerdict.AllowIdentity => $"policy: endpoint {policy.EndpointId} admits {peer} on this port for {direction}",
            PolicyVerdict.AllowAny => $"policy: endpoint {policy.EndpointId} admits any peer on this port for {direction}",
            PolicyVerdict.AllowHost => "policy: traffic from this node is always admitted",
            PolicyVerdict.Deny => $"policy: endpoint {policy.EndpointId} is isolated for {direction} and no rule admits {peer} on this port",
            var v => $"policy: verdict {(byte)v}",
        };
    }

    private static bool InClusterCidr(LbMaps maps, IPAddress source)
    {
        if (!maps.NatConfig.TryLookup(0u, out var nat))
            return false;
        int prefix = System.Numerics.BitOperations.PopCount(BinaryPrimitives.ReadUInt32BigEndian(nat.ClusterMaskBe.ToAddress().GetAddressBytes()));
        return prefix > 0 && new IPNetwork(nat.ClusterCidrBe.ToAddress(), prefix).Contains(source);
    }

    /// <summary>The backends the frontend's slots name: active ones, then the fallback tail.</summary>
    private static IEnumerable<TraceBackend> Eligible(LbMaps maps, TraceRequest request)
    {
        var fk = new FrontendKey(new Frontend(request.Destination, request.DestinationPort, request.Protocol), FrontendScope.External);
        var key = LbMapIo.ToKey(fk, 0);
        if (!maps.Lb4Services.TryLookup(key, out var svc))
            yield break;
        // Pods (and, from a netdev, sources inside --cluster-cidr) use the internal scope of an
        // eTP=Local frontend (the cluster-wide set); outside clients the node-local set.
        if ((svc.Flags & (ushort)ServiceFlags.TwoScopes) != 0 && (request.Hook == TraceHook.FromPod || InClusterCidr(maps, request.Source)))
        {
            var internalKey = LbMapIo.ToKey(fk with { Scope = FrontendScope.Internal }, 0);
            if (maps.Lb4Services.TryLookup(internalKey, out var internalSvc))
                (key, svc) = (internalKey, internalSvc);
        }
        int total = svc.Count + svc.TerminatingCount;
        for (ushort slot = 1; slot <= total; slot++)
        {
            key.Slot = slot;
            if (maps.Lb4Services.TryLookup(key, out var s) && maps.Lb4Backends.TryLookup(s.BackendId, out var be))
            {
                // With no active backend the fallback tail starts at slot 1.
                bool fallback = svc.Count == 0 || slot > svc.Count;
                yield return new TraceBackend(s.BackendId, $"{be.AddressBe}:{be.PortBe}", fallback);
            }
        }
    }
}
