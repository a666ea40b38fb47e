using System.CommandLine;
using System.Text.Json;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Observe;

namespace EbpfProxy.Commands;

/// <summary>`ebpf-proxy observe`: dropped packets as they happen, read from the pinned drop_events ring buffer.</summary>
internal static class ObserveCommand
{
    public static Command Create()
    {
        var bpffs = CommonOptions.BpfFs();
        var output = CommonOptions.Output();
        var count = new Option<int>("--count") { Description = "stop after this many events (0: no limit)" };
        var duration = new Option<double>("--duration") { Description = "stop after this many seconds (0: no limit)" };
        var cmd = new Command("observe", "print every packet the datapath drops, with its reason (one reader at a time)") { bpffs, output, count, duration };
        cmd.SetAction(async (parse, ct) =>
        {
            if (!PinnedMaps.Ready(parse.GetValue(bpffs)!, "observe"))
                return 1;
            var pin = Path.Combine(parse.GetValue(bpffs)!, "ebpf-proxy", LbMaps.DropEventsMap);
            if (!File.Exists(pin))
            {
                await Console.Error.WriteLineAsync($"error: no drop_events ring buffer is pinned at {pin} (a daemon of this version has not run here)").ConfigureAwait(false);
                return 1;
            }
            bool json = parse.GetValue(output) == "json";
            int limit = parse.GetValue(count);
            var until = parse.GetValue(duration) is > 0 and var seconds ? DateTime.UtcNow.AddSeconds(seconds) : DateTime.MaxValue;
            using var map = LibBpf.Net.BpfMap.OpenPinned(pin);
            using var reader = new DropEventReader(map);
            int seen = 0;
            while (!ct.IsCancellationRequested && DateTime.UtcNow < until && (limit == 0 || seen < limit))
            {
                var events = reader.Poll(200);
                // The kernel stamped each drop (bpf_ktime_get_ns): print when it happened, not when it was read.
                long offset = LibBpf.Net.KernelClock.WallOffsetNs();
                foreach (var ev in events)
                {
                    var at = LibBpf.Net.KernelClock.ToWallClock(ev.TsNs, offset);
                    Console.WriteLine(json ? JsonSerializer.Serialize(Json(ev, at)) : $"{at.ToLocalTime():HH:mm:ss.ffffff} DROP {ev}");
                    if (limit != 0 && ++seen >= limit)
                        break;
                }
            }
            return 0;
        });
        return cmd;
    }

    private static object Json(DropEvent ev, DateTimeOffset at) => new
    {
        time = at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", System.Globalization.CultureInfo.InvariantCulture),
        ktimeNs = ev.TsNs,
        reason = ReasonInfo.Name((Reason)ev.Reason),
        direction = ((MetricsDirection)ev.Dir).ToString().ToLowerInvariant(),
        source = $"{ev.SaddrBe}:{ev.SportBe}",
        destination = $"{ev.DaddrBe}:{ev.DportBe}",
        protocol = ev.Proto,
        ifindex = ev.Ifindex,
        policyEndpoint = ev.PolicyEndpoint,
        policyIdentity = ev.PolicyIdentity,
    };
}
