using System.Net;
using EbpfProxy.Core.Planning;
using EbpfProxy.Datapath.Maps;
using EbpfProxy.Datapath.Sync;

namespace EbpfProxy.Datapath.Observability;

/// <summary>
/// One conntrack entry as `ebpf-proxy ct list` shows it: the tuple the map is keyed by, what the
/// datapath rewrites for it (<see cref="Translation"/>), the service it belongs to, its state and
/// its age. Tables: <c>service</c> (ct4: a connection's service entry and its reply entry),
/// <c>masquerade</c> (snat4: the source rewrite each way) and <c>policy</c> (pol_ct4: connections
/// a local pod's NetworkPolicy admitted, pod first).
/// </summary>
public sealed record ConntrackRow(
    string Table,
    string Kind,
    string Protocol,
    string Source,
    string Destination,
    string? Translation,
    string? Service,
    string? Pod,
    string State,
    double AgeSeconds,
    double IdleSeconds,
    uint? BackendId,
    ushort? RevNatId);

/// <summary>Which entries `ct list` keeps: every filter given must match (null = any).</summary>
public sealed record ConntrackFilter(IPAddress? Address = null, ushort? Port = null, string? Service = null, string? Table = null)
{
    public bool Matches(ConntrackRow row, IEnumerable<IPEndPoint> endpoints)
    {
        if (Table is not null && !string.Equals(row.Table, Table, StringComparison.Ordinal))
            return false;
        if (Service is not null && !ServiceMatches(row.Service, Service))
            return false;
        var all = endpoints.ToList();
        if (Address is not null && !all.Any(e => e.Address.Equals(Address)))
            return false;
        return Port is not { } port || all.Any(e => e.Port == port);
    }

    /// <summary>"ns/name" matches every port of the service, "ns/name:port" one.</summary>
    public static bool ServiceMatches(string? rowService, string wanted) =>
        rowService is not null && (rowService == wanted || rowService.StartsWith(wanted + ":", StringComparison.Ordinal));
}

/// <summary>
/// Reads the three conntrack tables from the maps (pinned or not) into <see cref="ConntrackRow"/>s,
/// naming services through lb_names and pods through pol_ep_names. Ages are measured against the
/// kernel's monotonic clock (bpf_ktime_get_ns, read through KernelClock). An entry
/// past its lifetime is shown as <c>expired</c>: the datapath ignores it and the LRU reclaims it.
/// </summary>
public static class ConntrackListing
{
    // bpf/lib/conntrack.h: lifetimes since the last packet.
    private const ulong NsPerSec = 1_000_000_000UL;
    private const ulong LifetimeTcp = 21600 * NsPerSec, LifetimeOther = 60 * NsPerSec, LifetimeClosing = 10 * NsPerSec;

    public static IReadOnlyList<ConntrackRow> Read(LbMaps lb, PolicyMaps? policy, ConntrackFilter filter)
    {
        var now = LibBpf.Net.KernelClock.NowNs();
        var state = LbMapIo.Read(lb);
        var rows = new List<ConntrackRow>();
        // ct4, kept by key so the masquerade entries can name their connection's service.
        var ct = new Dictionary<Ct4Key, CtEntry>();
        foreach (var (k, v) in lb.Ct4.Entries())
            ct[k] = v;
        foreach (var (k, v) in ct)
        {
            var service = ServiceName(state, v.RevNatId);
            string kind;
            string? translation;
            if (k.Dir == CtDirection.Service)
            {
                kind = "service";
                translation = state.Backends.TryGetValue(v.BackendId, out var be)
                    ? $"dst {Endpoint(be.Address.Address, be.Address.Port)}"
                    : $"dst backend {v.BackendId} (removed)";
            }
            else if (k.Dir == CtDirection.Reply)
            {
                kind = "reply";
                translation = state.RevNat.TryGetValue(v.RevNatId, out var rn) ? $"src {Endpoint(rn.Address, rn.Port)}" : $"src rev-NAT {v.RevNatId} (removed)";
            }
            else
            {
                // Policy entries an older version kept in ct4 (moved to pol_ct4 at load).
                kind = k.Dir.ToString().ToLowerInvariant();
                translation = null;
                service = null;
            }
            var row = new ConntrackRow("service", kind, Protocol(k.Proto), Endpoint(k.SaddrBe, k.SportBe), Endpoint(k.DaddrBe, k.DportBe),
                translation, service, null, State(v.Flags, v.LastSeenNs, k.Proto, now), Seconds(now, v.CreatedNs), Seconds(now, v.LastSeenNs),
                k.Dir == CtDirection.Service ? v.BackendId : null, v.RevNatId == 0 ? null : v.RevNatId);
            Add(rows, row, filter, k, default);
        }
        foreach (var (k, v) in lb.Snat4.Entries())
        {
            // SNAT_OUT is keyed like its connection's service entry; SNAT_IN like the reply entry
            // once the client is put back (backend -> client).
            string? service = null;
            string kind = k.Dir == CtDirection.SnatOut ? "snat-out" : k.Dir == CtDirection.SnatIn ? "snat-in" : k.Dir.ToString().ToLowerInvariant();
            var twin = k.Dir == CtDirection.SnatOut ? k with { Dir = CtDirection.Service }
                : k with { DaddrBe = v.AddrBe, DportBe = v.PortBe, Dir = CtDirection.Reply };
            ulong lastSeen = v.CreatedNs;
            CtFlags flags = CtFlags.None;
            if (ct.TryGetValue(twin, out var conn))
            {
                service = ServiceName(state, conn.RevNatId);
                lastSeen = conn.LastSeenNs;
                flags = conn.Flags;
            }
            var translation = k.Dir == CtDirection.SnatOut ? $"src {Endpoint(v.AddrBe, v.PortBe)}" : $"dst {Endpoint(v.AddrBe, v.PortBe)}";
            var row = new ConntrackRow("masquerade", kind, Protocol(k.Proto), Endpoint(k.SaddrBe, k.SportBe), Endpoint(k.DaddrBe, k.DportBe),
                translation, service, null, State(flags, lastSeen, k.Proto, now), Seconds(now, v.CreatedNs), Seconds(now, lastSeen), null, null);
            Add(rows, row, filter, k, new IPEndPoint(v.AddrBe.ToAddress(), v.PortBe.ToHost()));
        }
        if (policy is not null)
        {
            var pods = new Dictionary<Be32Address, string>();
            foreach (var (addr, name) in policy.EndpointNames.Entries())
                pods[addr] = name.NameText();
            foreach (var (k, v) in policy.Conntrack.Entries())
            {
                var closing = (v.Flags & PolCtFlags.Closing) != 0;
                var flags = closing ? CtFlags.Closing : CtFlags.None;
                var state2 = State(flags, v.LastSeenNs, k.Proto, now) + ((v.Flags & PolCtFlags.Inbound) != 0 ? ",inbound" : ",outbound");
                var peer = new IPEndPoint(v.PeerBe.ToAddress(), v.PeerPortBe.ToHost());
                var daddr = new IPEndPoint(k.DaddrBe.ToAddress(), k.DportBe.ToHost());
                var row = new ConntrackRow("policy", "policy", Protocol(k.Proto), Endpoint(k.SaddrBe, k.SportBe), Endpoint(k.DaddrBe, k.DportBe),
                    peer.Equals(daddr) ? null : $"peer {peer}", null, pods.GetValueOrDefault(k.SaddrBe),
                    state2, Seconds(now, v.CreatedNs), Seconds(now, v.LastSeenNs), null, null);
                Add(rows, row, filter, k, peer);
            }
        }
        return rows;
    }

    private static void Add(List<ConntrackRow> rows, ConntrackRow row, ConntrackFilter filter, Ct4Key key, IPEndPoint? translated)
    {
        IEnumerable<IPEndPoint> Endpoints()
        {
            yield return new IPEndPoint(key.SaddrBe.ToAddress(), key.SportBe.ToHost());
            yield return new IPEndPoint(key.DaddrBe.ToAddress(), key.DportBe.ToHost());
            if (translated is not null)
                yield return translated;
            // The address the translation names (a backend, a frontend).
            if (row.Translation is { } t && IPEndPoint.TryParse(t[(t.IndexOf(' ') + 1)..], out var ep))
                yield return ep;
        }
        if (filter.Matches(row, Endpoints()))
            rows.Add(row);
    }

    private static string? ServiceName(LbState state, ushort revNatId) =>
        revNatId != 0 && state.Names.TryGetValue(revNatId, out var name) ? name : null;

    internal static string State(CtFlags flags, ulong lastSeenNs, byte proto, ulong now)
    {
        var lifetime = (flags & CtFlags.Closing) != 0 ? LifetimeClosing : proto == 6 ? LifetimeTcp : LifetimeOther;
        var parts = new List<string>();
        if (now > lastSeenNs && now - lastSeenNs > lifetime)
            parts.Add("expired");
        else if ((flags & CtFlags.Closing) != 0)
            parts.Add("closing");
        else
            parts.Add("active"); // the datapath does not track TCP states beyond closing (CT_F_SEEN_REPLY is never set)
        if ((flags & CtFlags.Snat) != 0)
            parts.Add("masqueraded");
        return string.Join(',', parts);
    }

    private static double Seconds(ulong now, ulong then) => now > then ? Math.Round((now - then) / 1e9, 1) : 0;

    private static string Endpoint(Be32Address a, Be16 p) => $"{a.ToAddress()}:{p.ToHost()}";

    private static string Endpoint(IPAddress a, ushort p) => $"{a}:{p}";

    internal static string Protocol(byte proto) => ServiceLabels.ProtocolName(proto);
}
