using System.CommandLine;
using System.Text;
using System.Text.Json;

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
        var cmd = new Command("status", "the daemon's last sync and what it could not program (exit 1 when something is failing)") { address, output };
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
        return sb.ToString();
    }
}
