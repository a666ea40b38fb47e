using System.CommandLine;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using EbpfProxy.Datapath.Attach;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Observability;

namespace EbpfProxy.Commands;

/// <summary>
/// `ebpf-proxy status`: asks the running daemon (its health server, /status) how the last sync
/// went and what it could not program: skipped services, NetworkPolicies and pods that fail
/// closed, a policy pass the kernel refused.
/// </summary>
internal static class StatusCommand
{
    public static Command Create()
    {
        var address = new Option<string>("--address") { Description = "the daemon's --healthz-bind-address (0.0.0.0 means this host)", DefaultValueFactory = _ => "127.0.0.1:10256" };
        var output = CommonOptions.Output();
        var bpffs = CommonOptions.BpfFs();
        var cmd = new Command("status", "the daemon's last sync, what it could not program, attached hooks and map usage (exit 1 when something is failing)") { address, output, bpffs };
        cmd.SetAction(async (parse, ct) =>
        {
            var target = parse.GetValue(address)!.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal);
            string body;
            try
            {
                using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
                body = await http.GetStringAsync(new Uri($"http://{target}/status"), ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or UriFormatException)
            {
                await Console.Error.WriteLineAsync($"error: no ebpf-proxy daemon answers on {target} ({ex.Message}). Is it running on this node, with --healthz-bind-address {target}?").ConfigureAwait(false);
                // What the kernel still holds (the datapath outlives the daemon), when readable.
                var local = LocalView(parse.GetValue(bpffs)!);
                if (local is not null)
                    Console.Write(parse.GetValue(output) == "json" ? local.ToJsonString(Json) + "\n" : FormatLocal(local));
                return 2;
            }
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            bool failing = !root.GetProperty("health").GetProperty("healthy").GetBoolean()
                || root.GetProperty("status").GetProperty("skipped").GetInt32() > 0
                || root.GetProperty("status").GetProperty("policyErrors").GetArrayLength() > 0
                || root.GetProperty("status").GetProperty("policyWriteError").ValueKind == JsonValueKind.String;
            Console.Write(parse.GetValue(output) == "json" ? body + "\n" : Format(root));
            return failing ? 1 : 0;
        });
        return cmd;
    }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    /// <summary>
    /// With no daemon to ask: the hooks and map usage read here from the kernel and the pins, and
    /// this binary's version; null, after one error line, without the privileges or the pins.
    /// </summary>
    private static JsonObject? LocalView(string bpffs)
    {
        var pinPath = Path.Combine(bpffs, "ebpf-proxy");
        if (!PinnedMaps.Ready(bpffs, "status"))
            return null;
        try
        {
            var maps = MapPressure.Read(pinPath).Where(m => m.Type != LibBpf.Net.BpfMapType.RingBuf)
                .Select(m => new MapUsage(m.Name, m.Type.ToString(), m.Entries ?? m.MaxEntries, m.MaxEntries));
            return new JsonObject
            {
                ["daemon"] = "not answering",
                ["version"] = Daemon.DaemonTelemetry.Version,
                ["maps"] = JsonSerializer.SerializeToNode(maps, Json),
                ["attachments"] = JsonSerializer.SerializeToNode(AttachmentInspector.Read(pinPath), Json),
            };
        }
        catch (LibBpf.Net.BpfException ex)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return null;
        }
    }

    private static string FormatLocal(JsonObject local)
    {
        var sb = new StringBuilder("(read from the kernel and the pins, the daemon not answering)\n");
        sb.Append($"version      {local["version"]} (this binary)\n");
        using var doc = JsonDocument.Parse(local.ToJsonString());
        AppendDatapath(sb, doc.RootElement);
        return sb.ToString();
    }

    /// <summary>Attached hooks and map usage (both in /status and in the local view).</summary>
    private static void AppendDatapath(StringBuilder sb, JsonElement root)
    {
        var hooks = Array(root, "attachments").ToList();
        var tc = hooks.Where(h => h.GetProperty("hook").GetString() != "link").GroupBy(h => h.GetProperty("interface").GetString()).ToList();
        sb.Append($"attached     {tc.Count} interfaces, {hooks.Count - tc.Sum(g => g.Count())} pinned links\n");
        foreach (var itf in tc)
        {
            var parts = itf.Select(h => $"{h.GetProperty("hook").GetString()}={h.GetProperty("program").GetString()}"
                + (h.GetProperty("current").GetBoolean() ? "" : " (NOT THE LOADED PROGRAM)"));
            sb.Append($"  {itf.Key,-12} {string.Join(", ", parts)}\n");
        }
        foreach (var link in hooks.Where(h => h.GetProperty("hook").GetString() == "link"))
            sb.Append($"  link         {link.GetProperty("program").GetString()}\n");
        var maps = Array(root, "maps").ToList();
        if (maps.Count > 0)
        {
            sb.Append("maps         entries / capacity\n");
            foreach (var m in maps.OrderByDescending(m => Fill(m)))
            {
                long entries = m.GetProperty("entries").GetInt64(), capacity = m.GetProperty("capacity").GetInt64();
                sb.Append($"  {m.GetProperty("name").GetString(),-16} {entries,9} / {capacity,-9} {Fill(m),4:P0}{(Fill(m) >= 0.9 ? "  NEAR FULL" : "")}\n");
            }
        }
    }

    private static double Fill(JsonElement m) =>
        m.GetProperty("capacity").GetInt64() is > 0 and var c ? (double)m.GetProperty("entries").GetInt64() / c : 0;

    /// <summary>The array <paramref name="name"/>, or none when an older daemon did not send it.</summary>
    private static IEnumerable<JsonElement> Array(JsonElement status, string name) =>
        status.TryGetProperty(name, out var list) && list.ValueKind == JsonValueKind.Array ? list.EnumerateArray() : [];

    internal static string Format(JsonElement root)
    {
        var h = root.GetProperty("health");
        var s = root.GetProperty("status");
        var sb = new StringBuilder();
        sb.Append($"health       {(h.GetProperty("healthy").GetBoolean() ? "ok" : "FAILING: " + h.GetProperty("problem").GetString())}\n");
        sb.Append($"last sync    {s.GetProperty("lastSync")}\n");
        sb.Append($"services     {s.GetProperty("frontends").GetInt32()} frontends, {s.GetProperty("skipped").GetInt32()} objects skipped\n");
        foreach (var e in s.GetProperty("serviceErrors").EnumerateArray())
            sb.Append($"  skipped    {e.GetString()}\n");
        foreach (var e in Array(s, "programErrors"))
            sb.Append($"  left out   {e.GetString()}\n");
        foreach (var e in Array(s, "manifestErrors"))
            sb.Append($"  manifest   {e.GetString()}\n");
        if (s.TryGetProperty("attach", out var attach) && attach.ValueKind == JsonValueKind.Object)
        {
            var mechanism = attach.GetProperty("mechanism").GetString() switch
            {
                "tc" => "clsact filters",
                "tcx" => "tcx links",
                var other => other,
            };
            sb.Append($"attach       {mechanism} on {attach.GetProperty("interfaces").GetInt32()} interfaces; new interfaces by {attach.GetProperty("discovery").GetString()}\n");
        }
        sb.Append($"policy       {s.GetProperty("isolatedPods").GetInt32()} isolated local pods, {s.GetProperty("policyRules").GetInt32()} rules, {s.GetProperty("policyErrors").GetArrayLength()} errors\n");
        foreach (var e in s.GetProperty("policyErrors").EnumerateArray())
            sb.Append($"  FAILS CLOSED  {e.GetString()}\n");
        if (s.GetProperty("policyWriteError").GetString() is { } write)
            sb.Append($"  WRITE FAILED  {write}; {s.GetProperty("policyFailedClosed").GetInt32()} pods' isolation forced on until a pass succeeds\n");
        if (root.TryGetProperty("version", out var version))
            sb.Append($"version      {version.GetString()}\n");
        AppendDatapath(sb, root);
        return sb.ToString();
    }
}
