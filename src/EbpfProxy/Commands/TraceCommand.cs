using System.CommandLine;
using System.Net;
using System.Text;
using System.Text.Json;
using EbpfProxy.Core.Model;
using EbpfProxy.Datapath.Tracing;

namespace EbpfProxy.Commands;

/// <summary>`ebpf-proxy trace`: what the datapath does with one packet, answered by the real program.</summary>
internal static class TraceCommand
{
    public static Command Create()
    {
        var src = new Option<string>("--src") { Description = "source ADDR[:PORT] (port defaults to 40000)", Required = true };
        var dst = new Option<string>("--dst") { Description = "destination ADDR:PORT", Required = true };
        var proto = new Option<string>("--proto") { Description = "tcp or udp", DefaultValueFactory = _ => "tcp" }.AcceptOnlyFromAmong("tcp", "udp");
        var from = new Option<string>("--from") { Description = "where the packet enters: pod (sent by a pod) or netdev", DefaultValueFactory = _ => "pod" }.AcceptOnlyFromAmong("pod", "netdev");
        var reply = new Option<bool>("--reply") { Description = "trace a packet leaving towards a pod (to_pod) or a netdev (to_netdev), e.g. a backend's reply" };
        var bpffs = CommonOptions.BpfFs();
        var output = CommonOptions.Output();
        var cmd = new Command("trace", "run the loaded datapath on a synthetic packet and explain the decision (no state is created)")
        {
            src, dst, proto, from, reply, bpffs, output,
        };
        cmd.SetAction(parse =>
        {
            if (!TryEndpoint(parse.GetValue(src)!, 40000, out var s, out var sport) || !TryEndpoint(parse.GetValue(dst)!, null, out var d, out var dport))
            {
                Console.Error.WriteLine("error: --src must be ADDR[:PORT] and --dst ADDR:PORT, IPv4");
                return 2;
            }
            bool netdev = parse.GetValue(from) == "netdev";
            var hook = (netdev, parse.GetValue(reply)) switch
            {
                (false, false) => TraceHook.FromPod,
                (false, true) => TraceHook.ToPod,
                (true, false) => TraceHook.FromNetdev,
                (true, true) => TraceHook.ToNetdev,
            };
            var request = new TraceRequest(s, sport, d, dport, parse.GetValue(proto) == "udp" ? L4Protocol.Udp : L4Protocol.Tcp, hook);
            var result = PinnedMaps.Ready(parse.GetValue(bpffs)!, "trace") ? Run(parse.GetValue(bpffs)!, request) : null;
            if (result is null)
                return 1;
            Console.Write(parse.GetValue(output) == "json" ? JsonSerializer.Serialize(result, JsonOptions) + "\n" : TraceText.Format(result));
            return 0;
        });
        return cmd;
    }

    private static TraceResult? Run(string bpffs, TraceRequest request)
    {
        try
        {
            return PacketTracer.Run(Path.Combine(bpffs, "ebpf-proxy"), request);
        }
        catch (Exception ex) when (ex is FileNotFoundException or LibBpf.Net.BpfException)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return null;
        }
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase, Converters = { new IPAddressJsonConverter(), new System.Text.Json.Serialization.JsonStringEnumConverter() } };

    private static bool TryEndpoint(string text, ushort? defaultPort, out IPAddress address, out ushort port)
    {
        port = defaultPort ?? 0;
        var parts = text.Split(':');
        if (!IPAddress.TryParse(parts[0], out address!) || address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
            return false;
        if (parts.Length == 2)
            return ushort.TryParse(parts[1], out port) && port != 0;
        return parts.Length == 1 && defaultPort is not null;
    }

    private sealed class IPAddressJsonConverter : System.Text.Json.Serialization.JsonConverter<IPAddress>
    {
        public override IPAddress Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => IPAddress.Parse(reader.GetString()!);

        public override void Write(Utf8JsonWriter writer, IPAddress value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
    }
}
