using EbpfProxy.Core.Model;
using EbpfProxy.Core.Policy;
using EbpfProxy.Datapath.Maps;
using LibBpf.Net;

namespace EbpfProxy.Datapath.Tests;

/// <summary>
/// Every constant the datapath shares with user space is an enumerator of a named C enum that
/// bpf/lib/constants.h compiles into the object's BTF (as Cilium checks its constants against its
/// object). Each C enum is compared, name by name, with the C# values written here; each C# enum
/// that mirrors one must cover exactly the same numbers. A constant added, renumbered or removed
/// on one side only fails.
/// </summary>
public class ConstantTests
{
    private sealed record Mirror(string CEnum, (string Name, long Value)[] Values, Type[] CSharpEnums);

    private static (string, long) V(string name, long value) => (name, value);

    private static (string, long) V<T>(string name, T value) where T : struct, Enum => (name, Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture));

    private static readonly Mirror[] Mirrors =
    [
        new("reason",
        [
            V("REASON_UNSPEC", Reason.Unspecified),
            V("REASON_FWD_SERVICE_NEW", Reason.ForwardServiceNew),
            V("REASON_FWD_SERVICE_ESTABLISHED", Reason.ForwardServiceEstablished),
            V("REASON_FWD_REVNAT", Reason.ForwardReverseNat),
            V("REASON_PASS_NOT_SERVICE", Reason.PassNotService),
            V("REASON_PASS_UNSUPPORTED", Reason.PassUnsupported),
            V("REASON_FWD_SERVICE_RESELECTED", Reason.ForwardServiceReselected),
            V("REASON_FWD_SNAT_REVERSE", Reason.ForwardSnatReverse),
            V("REASON_FWD_ICMP_REVNAT", Reason.ForwardIcmpReverseNat),
            V("REASON_FWD_ICMP_SNAT_REVERSE", Reason.ForwardIcmpSnatReverse),
            V("REASON_DROP_MIN", 128),
            V("REASON_DROP_INVALID", Reason.DropInvalid),
            V("REASON_DROP_NO_BACKEND", Reason.DropNoBackend),
            V("REASON_DROP_BACKEND_MISSING", Reason.DropBackendMissing),
            V("REASON_DROP_CT_CREATE", Reason.DropConntrackCreate),
            V("REASON_DROP_NAT", Reason.DropNat),
            V("REASON_REJECT_NO_ENDPOINT", Reason.RejectNoEndpoint),
            V("REASON_REJECT_NO_PORT", Reason.RejectNoPort),
            V("REASON_DROP_UNALLOCATED_VIP", Reason.DropUnallocatedVip),
            V("REASON_DROP_REJECT_FAILED", Reason.DropRejectFailed),
            V("REASON_DROP_NO_LOCAL_ENDPOINT", Reason.DropNoLocalEndpoint),
            V("REASON_DROP_SCTP_PORT", Reason.DropSctpPort),
            V("REASON_DROP_POLICY_INGRESS", Reason.PolicyIngressDenied),
            V("REASON_DROP_POLICY_EGRESS", Reason.PolicyEgressDenied),
            V("REASON_DROP_SOURCE_RANGE", Reason.DropSourceRange),
            V("REASON_DROP_SNAT_PORT", Reason.DropSnatPort),
            V("REASON_DROP_FRAG_NOT_FOUND", Reason.DropFragmentNotFound),
            V("REASON_DROP_POLICY_ICMP_UNRELATED", Reason.PolicyIcmpUnrelated),
            V("REASON_MAX", ReasonInfo.Max),
        ], [typeof(Reason)]),
        new("metrics_dir",
        [
            V("METRICS_DIR_INGRESS", MetricsDirection.Ingress),
            V("METRICS_DIR_EGRESS", MetricsDirection.Egress),
            V("METRICS_DIR_MAX", ReasonInfo.DirectionCount),
        ], [typeof(MetricsDirection)]),
        new("lb_scope",
        [
            V("LB_SCOPE_EXTERNAL", FrontendScope.External),
            V("LB_SCOPE_INTERNAL", FrontendScope.Internal),
        ], [typeof(FrontendScope)]),
        new("lb_svc_flags",
        [
            V("LB_SVC_F_AFFINITY", ServiceFlags.Affinity),
            V("LB_SVC_F_ETP_LOCAL", ServiceFlags.ExternalTrafficLocal),
            V("LB_SVC_F_ITP_LOCAL", ServiceFlags.InternalTrafficLocal),
            V("LB_SVC_F_NODEPORT", ServiceFlags.NodePort),
            V("LB_SVC_F_EXTERNAL_IP", ServiceFlags.ExternalIp),
            V("LB_SVC_F_LOADBALANCER", ServiceFlags.LoadBalancer),
            V("LB_SVC_F_WILDCARD", ServiceFlags.Wildcard),
            V("LB_SVC_F_TWO_SCOPES", ServiceFlags.TwoScopes),
            V("LB_SVC_F_DROP_NO_LOCAL", ServiceFlags.DropWithoutLocal),
            V("LB_SVC_F_SOURCE_RANGES", ServiceFlags.SourceRanges),
        ], [typeof(ServiceFlags)]),
        new("lb_be_flags",
        [
            V("LB_BE_F_LOCAL", BackendFlags.Local),
            V("LB_BE_F_TERMINATING", BackendFlags.Terminating),
        ], [typeof(BackendFlags)]),
        new("lb_nat_flags", [V("LB_NAT_F_MASQUERADE_ALL", LbNatFlags.MasqueradeAll)], [typeof(LbNatFlags)]),
        new("lb_src_range_bits", [V("LB_SRC_RANGE_FRONTEND_BITS", Lb4SrcRangeKey.FrontendBits)], []),
        new("lb_name_len", [V("LB_NAME_LEN", LbName.Length)], []),
        new("ct_dir",
        [
            V("CT_DIR_SERVICE", CtDirection.Service),
            V("CT_DIR_REPLY", CtDirection.Reply),
            V("CT_DIR_SNAT_OUT", CtDirection.SnatOut),
            V("CT_DIR_SNAT_IN", CtDirection.SnatIn),
            V("CT_DIR_POLICY", CtDirection.Policy),
        ], [typeof(CtDirection)]),
        new("ct_flags",
        [
            V("CT_F_SEEN_REPLY", CtFlags.SeenReply),
            V("CT_F_CLOSING", CtFlags.Closing),
            V("CT_F_SNAT", CtFlags.Snat),
            V("CT_F_POLICY_INBOUND", CtFlags.PolicyInbound),
        ], [typeof(CtFlags)]),
        new("trace_mark", [V("TRACE_MARK", TraceRecord.Mark)], []),
        new("trace_flags",
        [
            V("TRACE_F_FRONTEND", TraceFlags.Frontend),
            V("TRACE_F_CT_HIT", TraceFlags.ConntrackHit),
            V("TRACE_F_AFFINITY", TraceFlags.Affinity),
            V("TRACE_F_WILDCARD", TraceFlags.Wildcard),
            V("TRACE_F_MASQUERADE", TraceFlags.Masquerade),
            V("TRACE_F_SNAT_REPLY", TraceFlags.SnatReply),
        ], [typeof(TraceFlags)]),
        new("pol_id",
        [
            V("POL_ID_ANY", PolicyIdentity.Any),
            V("POL_ID_HOST", PolicyIdentity.Host),
            V("POL_ID_WORLD", PolicyIdentity.World),
            V("POL_ID_FIRST_ALLOCATED", PolicyIdentity.FirstAllocated),
        ], []),
        new("pol_id",
        [
            V("POL_ID_ANY", ReservedIdentity.Any),
            V("POL_ID_HOST", ReservedIdentity.Host),
            V("POL_ID_WORLD", ReservedIdentity.World),
            V("POL_ID_FIRST_ALLOCATED", ReservedIdentity.FirstAllocated),
        ], []),
        new("pol_dir",
        [
            V("POL_DIR_INGRESS", Core.Policy.PolicyDirection.Ingress),
            V("POL_DIR_EGRESS", Core.Policy.PolicyDirection.Egress),
        ], [typeof(Core.Policy.PolicyDirection)]),
        new("pol_ep_flags",
        [
            V("POL_EP_F_INGRESS_ISOLATED", PolicyIsolation.Ingress),
            V("POL_EP_F_EGRESS_ISOLATED", PolicyIsolation.Egress),
        ], [typeof(PolicyIsolation), typeof(EndpointFlags)]),
        new("pol_prefix",
        [
            V("POL_PREFIX_ALL", PolRuleKey.PrefixAll),
            V("POL_PREFIX_PROTO", PolRuleKey.PrefixProto),
            V("POL_PREFIX_FULL", PolRuleKey.PrefixFull),
        ], []),
        new("pol_ep_name_len", [V("POL_EP_NAME_LEN", PolEpName.NameLength)], []),
        new("pol_id_name_len", [V("POL_ID_NAME_LEN", PolIdName.TextLength)], []),
        new("pol_verdict",
        [
            V("POL_VERDICT_NONE", PolicyVerdict.None),
            V("POL_VERDICT_TRACKED", PolicyVerdict.Tracked),
            V("POL_VERDICT_NOT_ISOLATED", PolicyVerdict.NotIsolated),
            V("POL_VERDICT_ALLOW_IDENTITY", PolicyVerdict.AllowIdentity),
            V("POL_VERDICT_ALLOW_ANY", PolicyVerdict.AllowAny),
            V("POL_VERDICT_ALLOW_HOST", PolicyVerdict.AllowHost),
            V("POL_VERDICT_DENY", PolicyVerdict.Deny),
        ], [typeof(PolicyVerdict)]),
        new("pol_ct_flags",
        [
            V("POL_CT_F_INBOUND", PolCtFlags.Inbound),
            V("POL_CT_F_CLOSING", PolCtFlags.Closing),
        ], [typeof(PolCtFlags)]),
    ];

    public static TheoryData<int> Indexes()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < Mirrors.Length; i++)
            data.Add(i);
        return data;
    }

    [Theory]
    [MemberData(nameof(Indexes))]
    public void CEnumMatchesItsCSharpMirror(int index)
    {
        var mirror = Mirrors[index];
        using var btf = BtfFile.ParseElf(Path.Combine(AppContext.BaseDirectory, Loading.ProgramNames.PodObject));
        var c = btf.FindEnum(mirror.CEnum);
        Assert.True(c is not null, $"enum {mirror.CEnum} not found in the object's BTF (is it a member of struct btf_constants in bpf/lib/constants.h?)");

        var cValues = c.Values.ToDictionary(v => v.Key, v => v.Value);
        var expected = mirror.Values.ToDictionary(v => v.Name, v => v.Value);
        foreach (var (name, value) in cValues)
        {
            Assert.True(expected.ContainsKey(name), $"{name} (enum {mirror.CEnum}) has no C# mirror in ConstantTests");
            Assert.True(expected[name] == value, $"{name}: C says {value}, C# says {expected[name]}");
        }
        foreach (var name in expected.Keys)
            Assert.True(cValues.ContainsKey(name), $"C# mirrors {name}, which enum {mirror.CEnum} does not define");

        // The C# enums hold exactly the C numbers (flag enums may add None = 0; counts and bounds
        // such as REASON_MAX are constants elsewhere, not members).
        var cNumbers = cValues.Values.ToHashSet();
        foreach (var t in mirror.CSharpEnums)
        {
            var numbers = Enum.GetValues(t).Cast<object>().Select(v => Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture)).ToHashSet();
            foreach (var n in numbers)
                Assert.True(cNumbers.Contains(n) || (n == 0 && t.IsDefined(typeof(FlagsAttribute), false)),
                    $"{t.FullName} has a member {Enum.ToObject(t, n)} = {n} that enum {mirror.CEnum} does not define");
            foreach (var (name, value) in mirror.Values.Where(v => v.Name.Contains("_MAX", StringComparison.Ordinal) == false && v.Name != "REASON_DROP_MIN"))
                Assert.True(numbers.Contains(value), $"{t.FullName} has no member for {name} = {value}");
        }
    }

    [Fact]
    public void EveryEnumOfTheConstantsStructIsChecked()
    {
        using var btf = BtfFile.ParseElf(Path.Combine(AppContext.BaseDirectory, Loading.ProgramNames.PodObject));
        var holder = btf.FindStruct("btf_constants");
        Assert.True(holder is not null, "struct btf_constants not found in the object's BTF");
        var checkedEnums = Mirrors.Select(m => m.CEnum).ToHashSet();
        foreach (var m in holder.Members)
            Assert.True(checkedEnums.Contains(m.Name), $"btf_constants.{m.Name}: enum {m.Name} has no ConstantTests entry");
    }
}
