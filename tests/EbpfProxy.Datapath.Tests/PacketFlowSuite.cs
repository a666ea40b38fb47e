using System.Net;
using EbpfProxy.Core.Model;
using EbpfProxy.Datapath.Tracing;
using EbpfProxy.Testing;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace EbpfProxy.Datapath.Tests;

/// <summary>
/// The packet-flow suite: each file under testdata/flows is a cluster state (manifests, node,
/// service CIDR) and flows with the outcome kube-proxy's documented behaviour gives them; every
/// flow is run through `trace` on the real program against maps programmed by the real syncer.
/// Rows name where the packet enters: "pod" (from_pod, a local pod sends it) or "netdev"
/// (from_netdev: another node's pod or an outside client). With node addresses, masquerade is on
/// with the first one, as in the daemon; every forwarded row states whether it is masqueraded.
/// </summary>
public class PacketFlowSuite
{
    public sealed class FlowCase
    {
        public string Description { get; set; } = "";
        public NodeSpec Node { get; set; } = new();
        public string? ServiceCidr { get; set; }
        public string? ClusterCidr { get; set; }
        public bool MasqueradeAll { get; set; }
        public string Manifests { get; set; } = "";
        public List<Flow> Flows { get; set; } = [];
    }

    public sealed class NodeSpec
    {
        public string Name { get; set; } = "node-1";
        public string? Zone { get; set; }
        public List<string> Addresses { get; set; } = [];
    }

    public sealed class Flow
    {
        public string Name { get; set; } = "";
        public string From { get; set; } = "pod";
        public string Src { get; set; } = "10.244.0.2";
        public string Dst { get; set; } = "";
        public string Proto { get; set; } = "tcp";
        /// <summary>forward, REJECT or DROP.</summary>
        public string Verdict { get; set; } = "";
        public string? Reason { get; set; }
        /// <summary>The exact set of eligible backends (ADDR:PORT), for flows that reach a frontend.</summary>
        public List<string>? Backends { get; set; }
        /// <summary>dnat or none.</summary>
        public string Nat { get; set; } = "none";
        public bool Masquerade { get; set; }
    }

    private static readonly IDeserializer Yaml = new DeserializerBuilder().WithNamingConvention(CamelCaseNamingConvention.Instance).Build();

    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "testdata", "flows"), "*.yaml").Order())
            data.Add(Path.GetFileNameWithoutExtension(f));
        return data;
    }

    [PrivilegedTheory]
    [MemberData(nameof(Cases))]
    public void FlowsMeetTheirExpectedFate(string name)
    {
        var c = Yaml.Deserialize<FlowCase>(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "testdata", "flows", name + ".yaml")));
        Assert.NotEmpty(c.Flows);
        using var dp = new PodDatapath(c.ServiceCidr, c.ClusterCidr, c.MasqueradeAll);
        dp.Apply(c.Manifests, c.Node.Name, c.Node.Zone, [.. c.Node.Addresses]);
        if (c.Node.Addresses.Count > 0)
            dp.ConfigureMasquerade(c.Node.Addresses[0]);

        var failures = new List<string>();
        foreach (var f in c.Flows)
        {
            Assert.True(f.From is "pod" or "netdev", $"{name}/{f.Name}: source '{f.From}' must be pod or netdev");
            var (dst, dport) = Split(f.Dst);
            var (src, sport) = f.Src.Contains(':') ? Split(f.Src) : (IPAddress.Parse(f.Src), (ushort)40000);
            var hook = f.From == "pod" ? TraceHook.FromPod : TraceHook.FromNetdev;
            var r = PacketTracer.Run(dp.Options.PinPath, new TraceRequest(src, sport, dst, dport, f.Proto == "udp" ? L4Protocol.Udp : L4Protocol.Tcp, hook));

            void Expect(bool ok, string what)
            {
                if (!ok)
                    failures.Add($"{f.Name}: {what} (got verdict {r.Verdict}, reason {r.Reason}, backends [{string.Join(", ", r.EligibleBackends.Where(b => !b.Fallback || r.EligibleBackends.All(x => x.Fallback)).Select(b => b.Address))}], nat {r.Nat ?? "none"})");
            }

            Expect(r.Verdict == f.Verdict, $"verdict {f.Verdict}");
            if (f.Reason is not null)
                Expect(r.Reason == f.Reason, $"reason {f.Reason}");
            if (f.Backends is not null)
            {
                // The set a new connection draws from: active backends, or the fallback tail when none is active.
                var usable = r.EligibleBackends.Any(b => !b.Fallback) ? r.EligibleBackends.Where(b => !b.Fallback) : r.EligibleBackends;
                Expect(usable.Select(b => b.Address).Order().SequenceEqual(f.Backends.Order()), $"backends [{string.Join(", ", f.Backends)}]");
                if (f.Verdict == "forward")
                    Expect(r.ChosenBackend is { } chosen && f.Backends.Contains(chosen.Address), "the chosen backend among them");
            }
            Expect(f.Nat == "dnat" ? r.Nat?.StartsWith("DNAT", StringComparison.Ordinal) == true : r.Nat is null, $"nat {f.Nat}");
            bool masqueraded = r.Nat?.Contains($"SNAT {src}:{sport} -> {c.Node.Addresses.FirstOrDefault()}:", StringComparison.Ordinal) == true;
            Expect(masqueraded == f.Masquerade, f.Masquerade ? "masquerade to the node's address" : "no masquerade (client address preserved)");
        }
        Assert.True(failures.Count == 0, $"{name}: {c.Description}\n" + string.Join("\n", failures));
    }

    private static (IPAddress, ushort) Split(string endpoint)
    {
        var parts = endpoint.Split(':');
        return (IPAddress.Parse(parts[0]), ushort.Parse(parts[1]));
    }
}
