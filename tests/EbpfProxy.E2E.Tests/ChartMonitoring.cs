using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests;

/// <summary>
/// The chart's Grafana dashboard and alert rules (charts/ebpf-proxy/files) checked against a real
/// Prometheus scraping a real daemon: every expression parses, every alert rule loaded healthy,
/// and every dashboard panel returns at least one series.
/// </summary>
internal static class ChartMonitoring
{
    public static string ChartFiles => Path.Combine(Binaries.RepoRoot, "charts", "ebpf-proxy", "files");
    public static string RulesFile => Path.Combine(ChartFiles, "prometheus-rules.yaml");
    public static string DashboardFile => Path.Combine(ChartFiles, "dashboards", "ebpf-proxy.json");

    /// <summary>Grafana's variables as an instant query sees them: every node, a one-minute window.</summary>
    internal static string Substitute(string expr) => expr
        .Replace("$__rate_interval", "1m", StringComparison.Ordinal)
        .Replace("$__interval", "1m", StringComparison.Ordinal)
        .Replace("$instance", ".*", StringComparison.Ordinal);

    public static async Task CheckAsync(Prometheus prom, ITestOutputHelper output)
    {
        // Alerts: Prometheus loaded the file (it would not have started otherwise); each rule is
        // healthy after an evaluation, and its expression runs as a query.
        int declared = Regex.Matches(File.ReadAllText(RulesFile), @"^\s*- alert:", RegexOptions.Multiline).Count;
        Assert.True(declared >= 6, $"{declared} alerts in {RulesFile}");
        var rules = await WaitForRulesAsync(prom, declared);
        foreach (var (name, query, health) in rules)
        {
            Assert.True(health == "ok", $"alert {name}: health {health}");
            await prom.QueryAsync(query); // throws with Prometheus's message when it does not parse
        }
        output.WriteLine($"{rules.Count} alert rules loaded and evaluated: {string.Join(", ", rules.Select(r => r.Name))}");

        // Dashboard: every target parses; every panel shows at least one series.
        using var doc = JsonDocument.Parse(File.ReadAllText(DashboardFile));
        var panels = doc.RootElement.GetProperty("panels").EnumerateArray().Where(p => p.GetProperty("type").GetString() != "row").ToList();
        Assert.NotEmpty(panels);
        var empty = new List<string>();
        var sw = Stopwatch.StartNew();
        foreach (var panel in panels)
        {
            var title = panel.GetProperty("title").GetString()!;
            var exprs = panel.GetProperty("targets").EnumerateArray().Select(t => Substitute(t.GetProperty("expr").GetString()!)).ToList();
            Assert.NotEmpty(exprs);
            int series = 0;
            // Rates need two scrapes inside the window: poll, with one deadline for all panels.
            while (true)
            {
                series = 0;
                foreach (var expr in exprs)
                    series += (await prom.QueryAsync(expr)).Count;
                if (series > 0 || sw.Elapsed > TimeSpan.FromSeconds(60))
                    break;
                await Task.Delay(500);
            }
            output.WriteLine($"panel '{title}': {series} series");
            if (series == 0)
                empty.Add($"'{title}': {string.Join(" | ", exprs)}");
        }
        Assert.True(empty.Count == 0, "panels without data:\n" + string.Join("\n", empty));
    }

    private static async Task<List<(string Name, string Query, string Health)>> WaitForRulesAsync(Prometheus prom, int declared)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var (status, body) = await prom.GetAsync("/api/v1/rules");
            Assert.Equal(200, status);
            using var doc = JsonDocument.Parse(body);
            var rules = doc.RootElement.GetProperty("data").GetProperty("groups").EnumerateArray()
                .SelectMany(g => g.GetProperty("rules").EnumerateArray())
                .Select(r => (r.GetProperty("name").GetString()!, r.GetProperty("query").GetString()!, r.GetProperty("health").GetString()!))
                .ToList();
            // Health is "unknown" until a rule's first evaluation.
            if (rules.Count == declared && rules.All(r => r.Item3 != "unknown"))
                return rules;
            if (sw.Elapsed > TimeSpan.FromSeconds(30))
                throw new TimeoutException($"Prometheus has {rules.Count} rules of {declared}: {body}");
            await Task.Delay(250);
        }
    }
}
