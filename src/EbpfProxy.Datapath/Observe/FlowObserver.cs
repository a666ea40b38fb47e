using System.Net;
using EbpfProxy.Datapath.Attach;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Observability;
using LibBpf.Net;

namespace EbpfProxy.Datapath.Observe;

/// <summary>One event `observe` shows: a dropped packet (drop_events) or a new connection (flow_events).</summary>
public sealed record ObservedEvent(
    DateTimeOffset Time,
    ulong KtimeNs,
    bool Dropped,
    Reason Reason,
    MetricsDirection Direction,
    byte Protocol,
    IPEndPoint Source,
    IPEndPoint Destination,
    IPEndPoint? TranslatedSource,
    IPEndPoint? TranslatedDestination,
    string? Service,
    int Ifindex,
    string? Interface,
    uint PolicyEndpoint,
    uint PolicyIdentity)
{
    public string Verdict => Dropped ? "dropped" : "forwarded";

    public override string ToString()
    {
        var proto = ServiceLabels.ProtocolName(Protocol);
        var text = $"{Time.ToLocalTime():HH:mm:ss.ffffff} {(Dropped ? "DROP" : "NEW ")} {ReasonInfo.Name(Reason)} {KernelCounters.DirectionName(Direction)} {Interface ?? $"ifindex {Ifindex}"}: {Source} -> {Destination} {proto}";
        if (TranslatedSource is { } ts && TranslatedDestination is { } td && (!ts.Equals(Source) || !td.Equals(Destination)))
            text += $" => {ts} -> {td}";
        if (Service is not null)
            text += $" service {Service}";
        if (PolicyEndpoint != 0)
            text += $" (endpoint {PolicyEndpoint}, peer identity {PolicyIdentity})";
        return text;
    }
}

/// <summary>Which events `observe` keeps; null = any.</summary>
public sealed record ObserveFilter(IReadOnlySet<IPAddress>? PodAddresses = null, string? Service = null, bool? Dropped = null, Reason? Reason = null)
{
    public bool Matches(ObservedEvent e)
    {
        if (Dropped is { } d && e.Dropped != d)
            return false;
        if (Reason is { } r && e.Reason != r)
            return false;
        if (Service is not null && !ConntrackFilter.ServiceMatches(e.Service, Service))
            return false;
        if (PodAddresses is { } pods && !new[] { e.Source, e.Destination, e.TranslatedSource, e.TranslatedDestination }.Any(ep => ep is not null && pods.Contains(ep.Address)))
            return false;
        return true;
    }
}

/// <summary>
/// Reads both event rings, drops (always) and new connections (when <c>flow_config</c> has a rate),
/// converts kernel timestamps to wall-clock time, names interfaces and services. Flow events are
/// turned on for the time it runs: the constructor writes the rate, <see cref="Dispose"/> restores
/// what was there, so nobody pays for flows nobody reads.
/// </summary>
public sealed class FlowObserver : IDisposable
{
    private readonly BpfMap? _dropMap, _flowMap;
    private readonly BpfRingBuffer? _drops, _flows;
    private readonly BpfMap<uint, FlowConfig>? _config;
    private readonly FlowConfig _previous;
    private readonly List<ObservedEvent> _batch = [];
    private readonly Func<ushort, string?> _serviceById;
    private readonly Func<IPEndPoint, string?> _serviceByFrontend;
    private long _wallOffsetNs;
    private Dictionary<int, string> _interfaces = new();

    /// <param name="flowRate">Flow events per second and CPU; 0 reads drops only.</param>
    public FlowObserver(string pinPath, uint flowRate, Func<ushort, string?> serviceById, Func<IPEndPoint, string?> serviceByFrontend)
    {
        _serviceById = serviceById;
        _serviceByFrontend = serviceByFrontend;
        try
        {
            _dropMap = BpfMap.OpenPinned(Path.Combine(pinPath, LbMaps.DropEventsMap));
            _drops = new BpfRingBuffer(_dropMap, record =>
            {
                if (DropEvent.Read(record) is { } ev)
                    _batch.Add(FromDrop(ev));
            });
            var flowPin = Path.Combine(pinPath, LbMaps.FlowEventsMap);
            if (flowRate > 0 && File.Exists(flowPin))
            {
                _flowMap = BpfMap.OpenPinned(flowPin);
                _flows = new BpfRingBuffer(_flowMap, record =>
                {
                    if (FlowEvent.Read(record) is { } ev)
                        _batch.Add(FromFlow(ev));
                });
                _config = BpfMap.OpenPinned(Path.Combine(pinPath, LbMaps.FlowConfigMap)).As<uint, FlowConfig>();
                _previous = _config.TryLookup(0, out var held) ? held : default;
                _config.Update(0, new FlowConfig { Rate = flowRate });
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Whether new connections are reported (this datapath has flow events and a rate was asked for).</summary>
    public bool FlowsOn => _flows is not null;

    /// <summary>Waits up to <paramref name="timeoutMs"/> for events and returns those that arrived (maybe none).</summary>
    public IReadOnlyList<ObservedEvent> Poll(int timeoutMs)
    {
        _batch.Clear();
        // The kernel stamped each event (bpf_ktime_get_ns): the wall clock's offset, sampled per poll (NTP may step it).
        _wallOffsetNs = KernelClock.WallOffsetNs();
        if (_flows is null)
        {
            _drops!.Poll(timeoutMs);
        }
        else
        {
            // Two rings: wait on one for half the time, then take what the other holds.
            _drops!.Poll(timeoutMs / 2);
            _flows.Poll(timeoutMs / 2);
            _drops.Consume();
        }
        _batch.Sort((a, b) => a.Time.CompareTo(b.Time));
        return [.. _batch];
    }

    /// <summary>Events the rate limiter or a full ring kept from user space (summed over the CPUs).</summary>
    public static ulong Suppressed(string pinPath)
    {
        var pin = Path.Combine(pinPath, LbMaps.FlowRateMap);
        if (!File.Exists(pin))
            return 0;
        using var map = BpfMap.OpenPinned(pin);
        var values = new BpfPerCpuMap<uint, FlowRateState>(map).Lookup(0);
        return values is null ? 0 : values.Aggregate(0UL, (sum, v) => sum + v.Suppressed);
    }

    private DateTimeOffset Wall(ulong tsNs) => KernelClock.ToWallClock(tsNs, _wallOffsetNs);

    private string? InterfaceName(int ifindex)
    {
        if (!_interfaces.TryGetValue(ifindex, out var name))
        {
            _interfaces = InterfaceAttacher.ListInterfaces().ToDictionary(i => i.IfIndex, i => i.Name);
            name = _interfaces.GetValueOrDefault(ifindex);
        }
        return name;
    }

    private ObservedEvent FromDrop(DropEvent ev)
    {
        var dst = new IPEndPoint(ev.DaddrBe.ToAddress(), ev.DportBe.ToHost());
        return new ObservedEvent(Wall(ev.TsNs), ev.TsNs, true, (Reason)ev.Reason, (MetricsDirection)ev.Dir, ev.Proto,
            new IPEndPoint(ev.SaddrBe.ToAddress(), ev.SportBe.ToHost()), dst, null, null,
            _serviceByFrontend(dst), (int)ev.Ifindex, InterfaceName((int)ev.Ifindex), ev.PolicyEndpoint, ev.PolicyIdentity);
    }

    private ObservedEvent FromFlow(FlowEvent ev)
    {
        var dst = new IPEndPoint(ev.DaddrBe.ToAddress(), ev.DportBe.ToHost());
        return new ObservedEvent(Wall(ev.TsNs), ev.TsNs, false, (Reason)ev.Reason, (MetricsDirection)ev.Dir, ev.Proto,
            new IPEndPoint(ev.SaddrBe.ToAddress(), ev.SportBe.ToHost()), dst,
            new IPEndPoint(ev.XlatSaddrBe.ToAddress(), ev.XlatSportBe.ToHost()), new IPEndPoint(ev.XlatDaddrBe.ToAddress(), ev.XlatDportBe.ToHost()),
            ev.RevNatId != 0 ? _serviceById(ev.RevNatId) : _serviceByFrontend(dst), (int)ev.Ifindex, InterfaceName((int)ev.Ifindex), ev.PolicyEndpoint, ev.PolicyIdentity);
    }

    public void Dispose()
    {
        if (_config is not null)
        {
            try
            {
                _config.Update(0, _previous);
            }
            catch (BpfException)
            {
            }
        }
        _drops?.Dispose();
        _flows?.Dispose();
        _config?.Map.Dispose();
        _dropMap?.Dispose();
        _flowMap?.Dispose();
    }
}
