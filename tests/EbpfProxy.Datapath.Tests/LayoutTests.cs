using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using EbpfProxy.Datapath.Maps;
using LibBpf.Net;

namespace EbpfProxy.Datapath.Tests;

/// <summary>
/// Every C# mirror of a map struct must have the size and field offsets of its C definition, as
/// recorded in the BTF of the built object (the same check Cilium's alignchecker makes). Field
/// names map by convention: C `address_be` is C# `AddressBe`.
/// </summary>
public class LayoutTests
{
    public static TheoryData<string, Type> Mirrors() => new()
    {
        { "lb4_key", typeof(Lb4Key) },
        { "lb4_service", typeof(Lb4Service) },
        { "lb4_backend", typeof(Lb4Backend) },
        { "lb4_reverse_nat", typeof(Lb4ReverseNat) },
        { "lb_name", typeof(LbName) },
        { "ct4_key", typeof(Ct4Key) },
        { "ct_entry", typeof(CtEntry) },
        { "metrics_value", typeof(MetricsValue) },
        { "drop_event", typeof(DropEvent) },
        { "lb_config", typeof(LbConfig) },
        { "lb_nat_config", typeof(LbNatConfig) },
        { "lb4_src_range_key", typeof(Lb4SrcRangeKey) },
        { "snat4_entry", typeof(Snat4Entry) },
        { "frag4_key", typeof(Frag4Key) },
        { "frag4_entry", typeof(Frag4Entry) },
        { "lb_host_config", typeof(LbHostConfig) },
        { "lb4_sock_key", typeof(Lb4SockKey) },
        { "lb4_sock_value", typeof(Lb4SockValue) },
        { "lb4_affinity_key", typeof(Lb4AffinityKey) },
        { "lb_affinity_value", typeof(LbAffinityValue) },
        { "trace_record", typeof(TraceRecord) },
        { "pol_ipcache_key", typeof(PolIpcacheKey) },
        { "pol_ipcache_entry", typeof(PolIpcacheEntry) },
        { "pol_endpoint", typeof(PolEndpoint) },
        { "pol_rule_key", typeof(PolRuleKey) },
        { "pol_rule", typeof(PolRule) },
        { "pol_ep_name", typeof(PolEpName) },
        { "pol_id_name", typeof(PolIdName) },
        { "pol_ct_entry", typeof(PolCtEntry) },
        { "flow_config", typeof(FlowConfig) },
        { "flow_rate_state", typeof(FlowRateState) },
        { "flow_event", typeof(FlowEvent) },
    };

    [Theory]
    [MemberData(nameof(Mirrors))]
    public void MirrorMatchesTheCStruct(string cName, Type mirror)
    {
        using var btf = BtfFile.ParseElf(Path.Combine(AppContext.BaseDirectory, Loading.ProgramNames.PodObject));
        var c = btf.FindStruct(cName);
        Assert.True(c is not null, $"struct {cName} not found in the object's BTF");

        Assert.Equal((int)c.Size, SizeOf(mirror));
        var fields = mirror.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic).ToDictionary(f => f.Name);
        Assert.Equal(c.Members.Count, fields.Count);
        foreach (var m in c.Members)
        {
            var name = PascalCase(m.Name);
            Assert.True(fields.TryGetValue(name, out var field), $"{mirror.Name} has no field {name} for C member {cName}.{m.Name}");
            Assert.True(m.BitOffset % 8 == 0, $"{cName}.{m.Name} is a bit field");
            Assert.Equal((int)m.ByteOffset, (int)Marshal.OffsetOf(mirror, field.Name));
            Assert.Equal(m.Size, FieldSize(field));
        }
    }

    [Fact]
    public void NetworkOrderFieldsUseNetworkOrderTypes()
    {
        foreach (var (_, t) in Mirrors().Select(r => ((string)r[0], (Type)r[1])))
        {
            foreach (var f in t.GetFields(BindingFlags.Instance | BindingFlags.Public))
            {
                bool be = f.Name.EndsWith("Be", StringComparison.Ordinal);
                bool beType = f.FieldType == typeof(Be16) || f.FieldType == typeof(Be32Address);
                Assert.True(be == beType, $"{t.Name}.{f.Name}: network-order fields (named *_be in C) must use Be16/Be32Address, and only they");
            }
        }
    }

    private static int SizeOf(Type t) => (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(t).Invoke(null, null)!;

    private static long FieldSize(FieldInfo f)
    {
        var fixedBuffer = f.GetCustomAttribute<FixedBufferAttribute>();
        if (fixedBuffer is not null)
            return SizeOf(fixedBuffer.ElementType) * fixedBuffer.Length;
        return f.FieldType.IsEnum ? SizeOf(Enum.GetUnderlyingType(f.FieldType)) : SizeOf(f.FieldType);
    }

    private static string PascalCase(string snake)
    {
        var sb = new StringBuilder();
        foreach (var part in snake.Split('_', StringSplitOptions.RemoveEmptyEntries))
            sb.Append(char.ToUpperInvariant(part[0])).Append(part.AsSpan(1));
        return sb.ToString();
    }
}
