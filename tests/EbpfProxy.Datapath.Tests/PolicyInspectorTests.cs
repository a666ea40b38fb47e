using EbpfProxy.Datapath.Sync;
using EbpfProxy.Core.Policy;
using System.Net;
using System.Text;
using EbpfProxy.Core.Model;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Policy;

namespace EbpfProxy.Datapath.Tests;

/// <summary>
/// `policy get` and `ipcache list` over hand-built map contents (no kernel): prefix-to-range
/// rendering, merging of port blocks, lookups by name and address, errors, and the text forms.
/// The same code runs over the real maps in <see cref="PolicyCliKernelTests"/>.
/// </summary>
public class PolicyInspectorTests
{
    private const PolicyDirection In = PolicyDirection.Ingress, Out = PolicyDirection.Egress;
    private static readonly IPAddress A = IPAddress.Parse("10.244.1.11"), B = IPAddress.Parse("10.244.1.12");

    private static PolicyMapsView View(IEnumerable<PolicyRule> rules) => new(
        new PolicyState
        {
            Ipcache = new Dictionary<IPNetwork, uint>
            {
                [IPNetwork.Parse("10.244.1.11/32")] = 300,
                [IPNetwork.Parse("10.244.1.12/32")] = 301,
                [IPNetwork.Parse("10.244.2.13/32")] = 302,
                [IPNetwork.Parse("192.0.2.0/24")] = 303,
                [IPNetwork.Parse("192.0.2.128/25")] = 304,
                [IPNetwork.Parse("10.244.1.2/32")] = PolicyIdentity.Host,
                [IPNetwork.Parse("0.0.0.0/0")] = 305,
            },
            Endpoints = new Dictionary<IPAddress, EndpointEntry> { [A] = new(7, 300, PolicyIsolation.Ingress) },
            Rules = rules.ToHashSet(),
        },
        new Dictionary<IPAddress, PolEndpointName> { [A] = new(7, "x/web"), [B] = new(8, "x/client") },
        new Dictionary<uint, string>
        {
            [300] = "pod ns=x labels=[pod=web] ns-labels=[kubernetes.io/metadata.name=x]",
            [301] = "pod ns=x labels=[pod=client] ns-labels=[kubernetes.io/metadata.name=x]",
            [302] = "pod ns=y labels=[pod=c] ns-labels=[kubernetes.io/metadata.name=y,ns=y]",
            [303] = "cidr [192.0.2.0/24]",
            [304] = "cidr [192.0.2.0/24,192.0.2.128/25]",
            [305] = "cidr [0.0.0.0/0]",
        });

    private static IEnumerable<PolicyRule> WebRules() =>
    [
        PolicyRule.AllTraffic(7, PolicyIdentity.Host, In),
        PolicyRule.SinglePort(7, 302, In, L4Protocol.Tcp, 80),
        .. PolicyRule.PortRange(7, 303, In, L4Protocol.Tcp, 8000, 8010),
        PolicyRule.AllPorts(7, PolicyIdentity.Any, In, L4Protocol.Udp),
        PolicyRule.SinglePort(8, 302, In, L4Protocol.Tcp, 81), // another endpoint's: not shown
    ];

    [Theory]
    [InlineData(80, 16, 80, 80)]
    [InlineData(8000, 13, 8000, 8007)]
    [InlineData(8008, 15, 8008, 8009)]
    [InlineData(0, 0, 0, 65535)]
    [InlineData(32768, 1, 32768, 65535)]
    public void ARulesPortPrefixIsTheRangeItCovers(int port, int bits, int first, int last)
    {
        var rule = new PolicyRule(1, 300, In, L4Protocol.Tcp, (ushort)port, (byte)bits);
        Assert.Null(rule.Problem());
        Assert.Equal(((ushort)first, (ushort)last), rule.Ports);
    }

    [Fact]
    public void PortBlocksOfOneRangeMergeBackIntoTheRange()
    {
        var names = new Dictionary<uint, string> { [303] = "cidr [192.0.2.0/24]" };
        var blocks = PolicyRule.PortRange(1, 303, In, L4Protocol.Tcp, 8000, 8010).ToList();
        Assert.Equal(3, blocks.Count);
        var entry = Assert.Single(PolicyInspector.Merge(blocks, names));
        Assert.Equal(new AllowEntry(303, "cidr [192.0.2.0/24]", "TCP", "8000-8010", 8000, 8010, 3), entry);

        var all = PolicyInspector.Merge(PolicyRule.PortRange(1, 0, Out, L4Protocol.Udp, 1, 65535), names);
        Assert.Equal(new AllowEntry(0, "any peer", "UDP", "1-65535", 1, 65535, 16), Assert.Single(all));

        // Disjoint ranges stay apart; other protocols and identities are other entries.
        var mixed = PolicyInspector.Merge(
            [PolicyRule.SinglePort(1, 303, In, L4Protocol.Tcp, 80), PolicyRule.SinglePort(1, 303, In, L4Protocol.Tcp, 443),
             PolicyRule.SinglePort(1, 303, In, L4Protocol.Udp, 80), PolicyRule.AllPorts(1, 2, In, L4Protocol.Sctp), PolicyRule.AllTraffic(1, 1, In)],
            names);
        Assert.Equal(
            ["1 any any", "2 SCTP any", "303 TCP 80", "303 TCP 443", "303 UDP 80"],
            mixed.Select(e => $"{e.Identity} {e.Protocol} {e.Ports}"));
        Assert.Equal(["this node", "world (no ipcache entry)"], mixed.Take(2).Select(e => e.Peer));
    }

    [Fact]
    public void PolicyGetShowsTheIdentityIsolationAndMergedAllowEntriesPerDirection()
    {
        var p = PolicyInspector.DescribePod(View(WebRules()), "x/web");

        Assert.Equal("""
            pod        x/web
            addresses  10.244.1.11
            endpoint   7
            identity   300  pod ns=x labels=[pod=web] ns-labels=[kubernetes.io/metadata.name=x]
            ingress    isolated: admits
              IDENTITY  PROTOCOL  PORTS      PEER
              0         UDP       any        any peer
              1         any       any        this node
              302       TCP       80         pod ns=y labels=[pod=c] ns-labels=[kubernetes.io/metadata.name=y,ns=y]
              303       TCP       8000-8010  cidr [192.0.2.0/24]
            egress     not isolated: all traffic admitted

            """.Replace("\r\n", "\n"), PolicyInspector.Format(p));
        Assert.True(p.Selected);
        Assert.Empty(p.Problems);
        Assert.Equal(PolicyInspector.Format(p), PolicyInspector.Format(PolicyInspector.DescribePod(View(WebRules()), "10.244.1.11")));
    }

    [Fact]
    public void APodNoPolicySelectsSaysSoWithItsIdentityFromTheIpcache()
    {
        var p = PolicyInspector.DescribePod(View(WebRules()), "10.244.1.12");
        Assert.Equal("x/client", p.Pod);
        Assert.False(p.Selected);
        Assert.Equal(8u, p.EndpointId);
        Assert.Equal(new IdentityView(301, "pod ns=x labels=[pod=client] ns-labels=[kubernetes.io/metadata.name=x]"), p.Identity);
        // Rules of endpoint 8 exist (stale, say) but it is not isolated: reported, not listed.
        Assert.Empty(p.Ingress.Allow);
        Assert.Contains("no policy selects it: all traffic admitted", PolicyInspector.Format(p));
        Assert.Contains(p.Problems, x => x.Contains("not isolated", StringComparison.Ordinal));
    }

    [Fact]
    public void AnIsolatedDirectionWithoutEntriesAdmitsNothing()
    {
        var view = View([]);
        view = view with { Maps = view.Maps with { Endpoints = new Dictionary<IPAddress, EndpointEntry> { [A] = new(7, 300, PolicyIsolation.Ingress | PolicyIsolation.Egress) } } };
        var text = PolicyInspector.Format(PolicyInspector.DescribePod(view, "x/web"));
        Assert.Contains("ingress    isolated: admits nothing\n", text);
        Assert.Contains("egress     isolated: admits nothing\n", text);
    }

    [Theory]
    [InlineData("x/nope", "no pod x/nope on this node")]
    [InlineData("10.244.2.13", "10.244.2.13 is not the address of a pod on this node (the ipcache gives it identity 302: pod ns=y labels=[pod=c]")]
    [InlineData("203.0.113.9", "203.0.113.9 is not the address of a pod on this node (the ipcache gives it identity 305: cidr [0.0.0.0/0])")]
    [InlineData("web", "'web' is neither namespace/name nor an IPv4 address")]
    [InlineData("x/web/extra", "neither namespace/name")]
    public void AnUnknownPodIsAnErrorNamingIt(string pod, string message)
    {
        var ex = Assert.Throws<PolicyLookupException>(() => PolicyInspector.DescribePod(View(WebRules()), pod));
        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void IpcacheListIsSortedByAddressThenPrefixLengthAndDescribesEachIdentity()
    {
        var rows = PolicyInspector.Ipcache(View([]));
        Assert.Equal(
            ["0.0.0.0/0", "10.244.1.2/32", "10.244.1.11/32", "10.244.1.12/32", "10.244.2.13/32", "192.0.2.0/24", "192.0.2.128/25"],
            rows.Select(r => r.Prefix));
        Assert.Equal(new IpcacheRow("10.244.1.2/32", 1, "this node"), rows[1]);
        Assert.Equal("""
            PREFIX         IDENTITY  DESCRIPTION
            0.0.0.0/0      305       cidr [0.0.0.0/0]
            10.244.1.2/32  1         this node

            """.Replace("\r\n", "\n"), PolicyInspector.Format(rows.Take(2).ToList()));
        Assert.Equal("(no ipcache entries)\n", PolicyInspector.Format([]));
    }

    [Fact]
    public void AnIdentityWithoutANameIsShownAsUnknownNotHidden()
    {
        Assert.Equal("? (no pol_id_names entry)", PolicyInspector.Describe(999, new Dictionary<uint, string>()));
        Assert.Equal("reserved", PolicyInspector.Describe(7, new Dictionary<uint, string>()));
    }

    [Theory]
    [InlineData("x/a", 320, "x/a")]
    [InlineData("", 16, "")]
    [InlineData("0123456789abcdefXYZ", 16, "0123456789ab...")]
    [InlineData("éééééééé", 16, "éééééé...")] // 2 bytes each: 16 > 15, so 6 fit in the 12 bytes before "..." and the NUL
    [InlineData("a€€€€€", 12, "a€€...")] // 3 bytes each: 1 + 6 of 7
    [InlineData("a\0b", 16, "ab")]
    public void LongTextIsCutAtACharacterBoundaryAndReadsBackAsFit(string text, int field, string expected)
    {
        Assert.Equal(expected, FixedText.Fit(text, field));
        Assert.True(Encoding.UTF8.GetByteCount(expected) <= field - 1);
        var buffer = new byte[field];
        FixedText.Write(text, buffer);
        Assert.Equal(0, buffer[^1]);
        Assert.Equal(expected, FixedText.Read(buffer));
    }

    [Fact]
    public void TheMirrorsHoldTheirFieldsWholeOrCut()
    {
        var longest = new string('n', 63) + "/" + new string('p', 253);
        Assert.Equal(longest, PolEpName.From(9, longest).NameText());
        Assert.Equal(9u, PolEpName.From(9, longest).EndpointId);
        var text = "pod ns=x labels=[" + string.Join(",", Enumerable.Range(0, 40).Select(i => $"label-{i}=value-{i}")) + "]";
        var stored = PolIdName.From(text).ToString();
        Assert.Equal(FixedText.Fit(text, PolIdName.TextLength), stored);
        Assert.EndsWith("...", stored, StringComparison.Ordinal);
        Assert.Equal(PolIdName.TextLength - 1, Encoding.UTF8.GetByteCount(stored));
    }
}
