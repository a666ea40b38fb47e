using System.CommandLine;
using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Observability;
using EbpfProxy.Datapath.Observe;
using EbpfProxy.Datapath.Sync;

namespace EbpfProxy.Commands;

/// <summary>
/// `ebpf-proxy observe`: dropped packets and new connections as they happen, read from the pinned
/// drop_events and flow_events ring buffers, with filters by pod, service, verdict and reason.
/// New connections are reported only while observe runs (it sets the rate in flow_config, and
/// puts back what was there when it stops).
/// </summary>
internal static class ObserveCommand
{
    public static Command Create()
    {
        var bpffs = CommonOptions.BpfFs();
        var output = CommonOptions.Output();
        var count = new Option<int>("--count") { Description = "stop after this many events (0: no limit)" };
        var duration = new Option<double>("--duration") { Description = "stop after this many seconds (0: no limit)" };
        var pod = new Option<string?>("--pod") { Description = "only events to or from this local pod: NAMESPACE/NAME" };
        var service = new Option<string?>("--service") { Description = "only events of this service: NAMESPACE/NAME or NAMESPACE/NAME:PORT" };
        var verdict = new Option<string?>("--verdict") { Description = "only dropped packets, or only new connections (forwarded)" };
        verdict.AcceptOnlyFromAmong("dropped", "forwarded");
        var reason = new Option<string?>("--reason") { Description = "only this reason (as `ebpf-proxy metrics` names it, e.g. policy_ingress_denied, service_new)" };
        var flowRate = new Option<uint>("--flow-rate")
        {
            Description = "new-connection events per second and CPU while observe runs (the datapath suppresses the rest; 0: drops only)",
            DefaultValueFactory = _ => 1000,
        };
        var cmd = new Command("observe", "print dropped packets and new connections as they happen (one reader at a time)")
        {
            bpffs, output, count, duration, pod, service, verdict, reason, flowRate,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var root = parse.GetValue(bpffs)!;
            if (!PinnedMaps.Ready(root, "observe"))
                return 1;
            var pinPath = Path.Combine(root, "ebpf-proxy");
            if (!File.Exists(Path.Combine(pinPath, LbMaps.DropEventsMap)))
            {
                await Console.Error.WriteLineAsync($"error: no drop_events ring buffer is pinned at {pinPath} (a daemon of this version has not run here)").ConfigureAwait(false);
                return 1;
            }
            Reason? wantedReason = null;
            if (parse.GetValue(reason) is { } reasonName)
            {
                var known = KernelCounters.Reasons.Concat([Reason.ForwardServiceNew]).Distinct().ToList();
                if (known.FirstOrDefault(r => ReasonInfo.Name(r) == reasonName) is var match && ReasonInfo.Name(match) != reasonName)
                {
                    await Console.Error.WriteLineAsync($"error: --reason '{reasonName}' is not a reason; one of: {string.Join(", ", known.Select(ReasonInfo.Name))}").ConfigureAwait(false);
                    return 1;
                }
                wantedReason = match;
            }
            var names = ReadNames(pinPath);
            HashSet<IPAddress>? podAddresses = null;
            if (parse.GetValue(pod) is { } podName)
            {
                podAddresses = PodAddresses(pinPath, podName);
                if (podAddresses.Count == 0)
                {
                    await Console.Error.WriteLineAsync($"error: --pod '{podName}': no such pod on this node (pods are named NAMESPACE/NAME, as `ebpf-proxy policy get` shows them)").ConfigureAwait(false);
                    return 1;
                }
            }
            var serviceName = parse.GetValue(service);
            if (serviceName is not null && !names.ById.Values.Any(n => ConntrackFilter.ServiceMatches(n, serviceName)))
            {
                await Console.Error.WriteLineAsync($"error: --service '{serviceName}': no such service in the maps (NAMESPACE/NAME, as `ebpf-proxy lb list` shows it)").ConfigureAwait(false);
                return 1;
            }
            var filter = new ObserveFilter(podAddresses, serviceName, parse.GetValue(verdict) is { } v ? v == "dropped" : null, wantedReason);
            uint rate = parse.GetValue(verdict) == "dropped" ? 0 : parse.GetValue(flowRate);

            bool json = parse.GetValue(output) == "json";
            int limit = parse.GetValue(count);
            var until = parse.GetValue(duration) is > 0 and var seconds ? DateTime.UtcNow.AddSeconds(seconds) : DateTime.MaxValue;
            using var observer = new FlowObserver(pinPath, rate,
                id => names.ById.GetValueOrDefault(id), ep => names.ByFrontend.GetValueOrDefault(ep));
            if (rate > 0 && !observer.FlowsOn)
                await Console.Error.WriteLineAsync("note: this datapath has no flow_events (its daemon predates them): dropped packets only").ConfigureAwait(false);
            await Console.Error.WriteLineAsync(observer.FlowsOn
                ? $"observing drops and new connections (at most {rate} new-connection events a second per CPU)"
                : "observing drops").ConfigureAwait(false);
            // SIGTERM and SIGHUP end the loop like Ctrl-C, so the flow rate is put back before exit.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
            using var hup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => { c.Cancel = true; stop.Cancel(); });
            int seen = 0;
            while (!stop.IsCancellationRequested && DateTime.UtcNow < until && (limit == 0 || seen < limit))
            {
                foreach (var ev in observer.Poll(200))
                {
                    if (!filter.Matches(ev))
                        continue;
                    Console.WriteLine(json ? JsonSerializer.Serialize(Json(ev)) : ev.ToString());
                    if (limit != 0 && ++seen >= limit)
                        break;
                }
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>rev-NAT id -> "namespace/name:port", and frontend -> the same (drop events carry no id).</summary>
    private static (Dictionary<ushort, string> ById, Dictionary<IPEndPoint, string> ByFrontend) ReadNames(string pinPath)
    {
        using var maps = LbMaps.OpenPinned(pinPath);
        var state = LbMapIo.Read(maps);
        var byFrontend = new Dictionary<IPEndPoint, string>();
        foreach (var (id, rn) in state.RevNat)
        {
            if (state.Names.TryGetValue(id, out var name))
                byFrontend.TryAdd(new IPEndPoint(rn.Address, rn.Port), name);
        }
        return (state.Names.ToDictionary(), byFrontend);
    }

    private static HashSet<IPAddress> PodAddresses(string pinPath, string name)
    {
        if (!File.Exists(Path.Combine(pinPath, PolicyMaps.EndpointNamesMap)))
            return [];
        using var policy = PolicyMaps.OpenPinned(pinPath);
        return [.. policy.EndpointNames.Entries().Where(e => e.Value.NameText() == name).Select(e => e.Key.ToAddress())];
    }

    private static object Json(ObservedEvent ev) => new
    {
        time = ev.Time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", System.Globalization.CultureInfo.InvariantCulture),
        ktimeNs = ev.KtimeNs,
        verdict = ev.Verdict,
        reason = ReasonInfo.Name(ev.Reason),
        direction = KernelCounters.DirectionName(ev.Direction),
        source = ev.Source.ToString(),
        destination = ev.Destination.ToString(),
        translatedSource = ev.TranslatedSource?.ToString(),
        translatedDestination = ev.TranslatedDestination?.ToString(),
        service = ev.Service,
        protocol = ev.Protocol,
        @interface = ev.Interface,
        ifindex = ev.Ifindex,
        policyEndpoint = ev.PolicyEndpoint,
        policyIdentity = ev.PolicyIdentity,
    };
}
