using EbpfProxy.Testing;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests.Policy;

/// <summary>NetworkPolicy end to end on the upstream 9-pod model (see <see cref="PolicyModel"/>).</summary>
public sealed class NetworkPolicyTests(ITestOutputHelper output)
{
    private static bool All(ModelPod from, ModelPod to) => true;

    [PrivilegedFact]
    public async Task WithoutPoliciesEveryPodReachesEveryPodByAddressAndService()
    {
        await using var m = await PolicyModel.StartAsync(output);
        foreach (var probe in new[] { Probe.Tcp80, Probe.Udp81 })
        {
            await m.ExpectAsync(All, probe);
            await m.ExpectAsync(All, probe, viaService: true);
        }
    }
}
