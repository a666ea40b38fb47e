using EbpfProxy.Datapath.Sync;
using System.Collections.Immutable;
using System.Net;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Policy;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Policy;
using EbpfProxy.Testing;
using EbpfProxy.Testing.Packets;
using CoreEndpoint = EbpfProxy.Core.Policy.PolicyEndpoint;
using CoreDirection = EbpfProxy.Core.Policy.PolicyDirection;

namespace EbpfProxy.Datapath.Tests;

/// <summary>
/// Fail closed: when the kernel refuses part of a policy pass (pol_rules full), the pods the new
/// state isolates deny what is missing instead of staying open, and the error still goes up.
/// </summary>
public class PolicyFailClosedTests
{
    private static readonly IPAddress Server = IPAddress.Parse("10.244.0.11"), Remote = IPAddress.Parse("10.244.1.5");
    private const uint ServerId = 300, RemoteId = 301, EndpointId = 7;

    private static DesiredPolicyState Isolating(int allowedIdentities)
    {
        var rules = Enumerable.Range(0, allowedIdentities)
            .Select(i => PolicyRuleKey.PortBlock(EndpointId, 400u + (uint)i, CoreDirection.Ingress, L4Protocol.Tcp, 8080, 16))
            .ToHashSet();
        return new DesiredPolicyState(
            new Dictionary<IPNetwork, uint> { [new IPNetwork(Server, 32)] = ServerId, [new IPNetwork(Remote, 32)] = RemoteId },
            new Dictionary<IPAddress, CoreEndpoint> { [Server] = new(EndpointId, ServerId, EndpointFlags.IngressIsolated, "x", "server") },
            new Dictionary<uint, IReadOnlySet<PolicyRuleKey>> { [EndpointId] = rules },
            new Dictionary<uint, IdentityKey>(),
            ImmutableArray<TranslationError>.Empty);
    }

    [PrivilegedFact]
    public void APassThatOverflowsTheRuleMapLeavesTheNewlyIsolatedPodDenying()
    {
        using var dp = new PodDatapath(configure: o => o.PolicyRulesMax = 8);
        var syncer = new PolicyStage(dp.Loaded.DatapathMaps);
        var probe = () => dp.ToPod(PacketBuilder.Tcp(Remote, 40000, Server, 8080, TcpFlags.Syn)).Verdict;
        Assert.Equal(PodDatapath.TcActOk, probe()); // not isolated yet

        Assert.ThrowsAny<LibBpf.Net.BpfException>(() => syncer.Sync(Isolating(allowedIdentities: 20)));

        Assert.True(syncer.FailedClosed > 0, "the isolation was forced on");
        Assert.True(dp.Loaded.Policy.Endpoints.TryLookup(Be32Address.FromAddress(Server), out var ep));
        Assert.Equal(PolicyIsolation.Ingress, ep.Flags);
        Assert.Equal(PodDatapath.TcActShot, probe()); // the remote pod was never admitted: denied, not open

        // A pass that fits heals it: nothing stays forced.
        var result = syncer.Sync(Isolating(allowedIdentities: 4));
        Assert.True(result.Writes > 0);
        Assert.Equal(PodDatapath.TcActShot, probe());
    }
}
