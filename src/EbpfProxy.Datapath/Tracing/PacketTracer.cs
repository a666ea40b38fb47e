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
}

/// <summary>
/// Runs the daemon's own loaded program (pinned under the pin path) on a synthetic packet with
/// BPF_PROG_TEST_RUN against the live pinned maps, marked so that it creates no state, and
/// explains the decision: the frontend matched, the eligible backends, the one chosen, the
/// translation applied, the verdict and its reason.
/// </summary>
public static class PacketTracer
{
    private const uint TcActOk = 0, TcActShot = 2, TcActRedirect = 7;

    public static TraceResult Run(string pinPath, TraceRequest request)
    {
        var progName = request.Hook switch
        {
            TraceHook.FromPod => ProgramNames.FromPod,
            TraceHook.ToPod => ProgramNames.ToPod,
            TraceHook.FromNetdev => ProgramNames.FromNetdev,
            _ => ProgramNames.ToNetdev,
        };
        var progPath = Path.Combine(pinPath, DatapathLoader.ProgramPinFolder, progName);
        if (!File.Exists(progPath))
            throw new FileNotFoundException($"no {progName} program is pinned at {progPath}: is the daemon (this version or newer) running on this node?", progPath);
        using var program = BpfProgram.OpenPinned(progPath);
        using var maps = LbMaps.OpenPinned(pinPath);

        var packet = TracePacket.Build(request.Source, request.SourcePort, request.Destination, request.DestinationPort, request.Protocol);
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

        return new TraceResult(request, verdict, ReasonInfo.Name(reason), ReasonInfo.IsDrop(reason), frontend, service, record.RevNatId,
            eligible, chosen, nat, notes) { Policy = policy };
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
