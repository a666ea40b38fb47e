using System.Diagnostics;
using System.Net;
using System.Text.Json;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Testing;
using Xunit.Abstractions;

namespace EbpfProxy.E2E.Tests;

/// <summary>
/// `ct list` and `status` against real traffic: a client's service connection, a pod reaching
/// itself through its service (masqueraded) and a NetworkPolicy that isolates the backend (so
/// its connections are tracked in pol_ct4); outputs parsed as JSON and checked against those
/// connections, with the daemon running and after it stopped; the errors without root and
/// without pins.
/// </summary>
public sealed class InspectionCliTests(ITestOutputHelper output)
{
    [PrivilegedFact]
    public async Task CtListAndStatusShowTheConnectionsHooksAndMapsWithAndWithoutTheDaemon()
    {
        // The node's own address (a real node has one): the hairpin below is masqueraded to it.
        await using var s = await ProxyScenario.StartAsync(output, 1, ["echo-1"], ["--masquerade-address", "192.168.99.1", "--metrics-map-interval", "1"]);
        s.NodeNs.Ip("addr", "add", "192.168.99.1/32", "dev", "lo");
        var echo = s.Echo["echo-1"];
        // The backend admits every peer, but is isolated: its connections get policy entries.
        s.WriteExtraManifest("allow.yaml", """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: allow-all, namespace: default}
            spec: {podSelector: {matchLabels: {app: echo}}, policyTypes: [Ingress], ingress: [{}]}
            """);
        await WaitUntilAsync(() =>
        {
            using var policy = PolicyMaps.OpenPinned(s.PinPath);
            return policy.Endpoints.TryLookup(Be32Address.FromAddress(echo.Ip), out _);
        }, "the policy to isolate echo-1");

        using var client = await TcpProbe.ConnectAsync(s.Client.Ns, ProxyScenario.Vip, ProxyScenario.ServicePort, TimeSpan.FromSeconds(5));
        Assert.EndsWith(" one", await client.RequestAsync("one", TimeSpan.FromSeconds(5)));
        using var hairpin = await TcpProbe.ConnectAsync(echo.Ns, ProxyScenario.Vip, ProxyScenario.ServicePort, TimeSpan.FromSeconds(5));
        Assert.EndsWith(" two", await hairpin.RequestAsync("two", TimeSpan.FromSeconds(5)));
        var clientEp = client.LocalEndPoint;
        var hairpinEp = hairpin.LocalEndPoint;
        var vip = $"{ProxyScenario.Vip}:{ProxyScenario.ServicePort}";
        var backend = $"{echo.Ip}:{ProxyScenario.TargetPort}";

        void CheckConnections(List<JsonElement> rows)
        {
            // The client's connection: its service entry (DNAT to the backend) and the reply entry.
            var svc = Single(rows, r => Is(r, "table", "service") && Is(r, "kind", "service") && Is(r, "source", clientEp.ToString()));
            Assert.Equal(vip, svc.GetProperty("destination").GetString());
            Assert.Equal($"dst {backend}", svc.GetProperty("translation").GetString());
            Assert.Equal("default/echo:http", svc.GetProperty("service").GetString());
            Assert.Equal("TCP", svc.GetProperty("protocol").GetString());
            Assert.Equal("active", svc.GetProperty("state").GetString());
            Assert.InRange(svc.GetProperty("ageSeconds").GetDouble(), 0, 600);
            var reply = Single(rows, r => Is(r, "kind", "reply") && Is(r, "destination", clientEp.ToString()));
            Assert.Equal(backend, reply.GetProperty("source").GetString());
            Assert.Equal($"src {vip}", reply.GetProperty("translation").GetString());
            // The hairpin: masqueraded to the node, both rewrites in snat4, named after the service.
            var hairpinSvc = Single(rows, r => Is(r, "kind", "service") && Is(r, "source", hairpinEp.ToString()));
            Assert.Contains("masqueraded", hairpinSvc.GetProperty("state").GetString(), StringComparison.Ordinal);
            var snatOut = Single(rows, r => Is(r, "table", "masquerade") && Is(r, "kind", "snat-out") && Is(r, "source", hairpinEp.ToString()));
            Assert.Equal(vip, snatOut.GetProperty("destination").GetString());
            Assert.StartsWith("src ", snatOut.GetProperty("translation").GetString(), StringComparison.Ordinal);
            Assert.Equal("default/echo:http", snatOut.GetProperty("service").GetString());
            var snatIn = Single(rows, r => Is(r, "kind", "snat-in") && Is(r, "translation", $"dst {hairpinEp}"));
            Assert.Equal(backend, snatIn.GetProperty("source").GetString());
            Assert.Equal("default/echo:http", snatIn.GetProperty("service").GetString());
            // The isolated backend's policy entry for the client's connection, pod first.
            var pol = Single(rows, r => Is(r, "table", "policy") && Is(r, "source", backend) && Is(r, "destination", clientEp.ToString()));
            Assert.Equal("default/echo-1", pol.GetProperty("pod").GetString());
            Assert.Contains("inbound", pol.GetProperty("state").GetString(), StringComparison.Ordinal);
        }

        var all = CtList(s);
        output.WriteLine(Cmd.Run(Binaries.EbpfProxy, "ct", "list", "--bpffs", s.BpfFsPath).Stdout);
        CheckConnections(all);
        // Filters: each keeps exactly the rows that match, and loses none.
        var byService = CtList(s, "--service", "default/echo");
        Assert.All(byService, r => Assert.StartsWith("default/echo:", r.GetProperty("service").GetString(), StringComparison.Ordinal));
        Assert.Equal(all.Count(r => r.GetProperty("service").GetString()?.StartsWith("default/echo:", StringComparison.Ordinal) == true), byService.Count);
        Assert.Empty(CtList(s, "--service", "default/nothing"));
        var byPort = CtList(s, "--port", clientEp.Port.ToString());
        Assert.Equal(3, byPort.Count); // service, reply, policy entries of the client's connection
        var byAddress = CtList(s, "--address", s.Client.Ip.ToString());
        Assert.All(byAddress, r => Assert.Contains(s.Client.Ip.ToString() + ":", r.GetProperty("source").GetString() + r.GetProperty("destination").GetString(), StringComparison.Ordinal));
        Assert.True(byAddress.Count >= 3);
        var masq = CtList(s, "--table", "masquerade");
        Assert.True(masq.Count >= 2 && masq.All(r => Is(r, "table", "masquerade")));
        Assert.Contains("default/echo:http", Cmd.Run(Binaries.EbpfProxy, "ct", "list", "--bpffs", s.BpfFsPath, "--port", clientEp.Port.ToString()).Stdout, StringComparison.Ordinal);
        var bad = Cmd.TryRun(Binaries.EbpfProxy, "ct", "list", "--bpffs", s.BpfFsPath, "--address", "nonsense");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("--address 'nonsense' is not an IP address", bad.Stderr, StringComparison.Ordinal);

        // status, from the daemon: version, every pod interface's two hooks, map usage against capacity.
        var status = Cmd.TryRun("ip", "netns", "exec", s.NodeNs.Name, Binaries.EbpfProxy, "status", "-o", "json");
        Assert.True(status.ExitCode == 0, status.Stdout + status.Stderr);
        using (var doc = JsonDocument.Parse(status.Stdout))
            CheckDatapath(doc.RootElement, expectCt: true);
        var statusText = Cmd.TryRun("ip", "netns", "exec", s.NodeNs.Name, Binaries.EbpfProxy, "status");
        output.WriteLine(statusText.Stdout);
        Assert.Matches(@"attached\s+\d+ interfaces, 4 pinned links", statusText.Stdout);
        Assert.Matches(@"ct4\s+\d+ / 65536", statusText.Stdout);

        // The daemon stopped: the pins and the attachments stay, and the commands still read them.
        await s.Daemon.StopAsync(TimeSpan.FromSeconds(15));
        CheckConnections(CtList(s));
        var offline = Cmd.TryRun("ip", "netns", "exec", s.NodeNs.Name, Binaries.EbpfProxy, "status", "-o", "json", "--bpffs", s.BpfFsPath);
        Assert.Equal(2, offline.ExitCode);
        Assert.Contains("no ebpf-proxy daemon answers", offline.Stderr, StringComparison.Ordinal);
        using (var doc = JsonDocument.Parse(offline.Stdout))
        {
            Assert.Equal("not answering", doc.RootElement.GetProperty("daemon").GetString());
            CheckDatapath(doc.RootElement, expectCt: true);
        }

        // Without pins, and without root: one error line each.
        var empty = Directory.CreateTempSubdirectory("ebpfproxy-empty-");
        try
        {
            foreach (var args in new[] { new[] { "ct", "list" }, ["status"] })
            {
                var none = Cmd.TryRun("ip", ["netns", "exec", s.NodeNs.Name, Binaries.EbpfProxy, .. args, "--bpffs", empty.FullName]);
                Assert.NotEqual(0, none.ExitCode);
                Assert.Contains($"error: no bpffs is mounted at {empty.FullName}", none.Stderr, StringComparison.Ordinal);
            }
        }
        finally
        {
            empty.Delete();
        }
        foreach (var args in new[] { new[] { "ct", "list" }, ["status"] })
        {
            var unprivileged = Cmd.TryRun("ip", ["netns", "exec", s.NodeNs.Name, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                Binaries.EbpfProxy, .. args, "--bpffs", s.BpfFsPath]);
            Assert.NotEqual(0, unprivileged.ExitCode);
            Assert.Contains("needs root", unprivileged.Stderr, StringComparison.Ordinal);
        }

        void CheckDatapath(JsonElement root, bool expectCt)
        {
            Assert.False(string.IsNullOrEmpty(root.GetProperty("version").GetString()));
            var hooks = root.GetProperty("attachments").EnumerateArray().ToList();
            foreach (var pod in new[] { s.Client, echo })
            {
                var mine = hooks.Where(h => Is(h, "interface", pod.HostInterface)).ToList();
                Assert.Equal(["tcx-egress:to_pod", "tcx-ingress:from_pod"], // tcx links on this kernel (6.6+)
                    mine.Select(h => $"{h.GetProperty("hook").GetString()}:{h.GetProperty("program").GetString()}").Order(StringComparer.Ordinal));
                Assert.All(mine, h => Assert.True(h.GetProperty("current").GetBoolean()));
            }
            Assert.Contains(hooks, h => Is(h, "hook", "link") && Is(h, "program", "sock4_connect"));
            var maps = root.GetProperty("maps").EnumerateArray().ToList();
            var ct = Single(maps, m => Is(m, "name", "ct4"));
            Assert.Equal(65536, ct.GetProperty("capacity").GetInt64());
            if (expectCt)
                Assert.True(ct.GetProperty("entries").GetInt64() >= 4);
        }
    }

    private static List<JsonElement> CtList(ProxyScenario s, params string[] filter)
    {
        var r = Cmd.TryRun(Binaries.EbpfProxy, ["ct", "list", "--bpffs", s.BpfFsPath, "-o", "json", .. filter]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return [.. JsonDocument.Parse(r.Stdout).RootElement.EnumerateArray().Select(e => e.Clone())];
    }

    private static bool Is(JsonElement e, string property, string value) =>
        e.TryGetProperty(property, out var p) && p.ValueKind == JsonValueKind.String && p.GetString() == value;

    private static JsonElement Single(List<JsonElement> rows, Func<JsonElement, bool> match)
    {
        var found = rows.Where(match).ToList();
        Assert.True(found.Count == 1, $"{found.Count} matching rows in:\n{string.Join("\n", rows)}");
        return found[0];
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.Elapsed > TimeSpan.FromSeconds(30))
                throw new TimeoutException($"waited 30 s for {what}");
            await Task.Delay(200);
        }
    }
}
