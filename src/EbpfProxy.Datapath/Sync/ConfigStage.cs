using System.Net;
using System.Net.Sockets;
using EbpfProxy.Core.Translation;
using EbpfProxy.Datapath.Maps;

namespace EbpfProxy.Datapath.Sync;

/// <summary>
/// The config stage of <see cref="DatapathSync"/>: the node-wide settings the programs read —
/// lb_config (the service CIDR), lb_nat_config (the masquerade address, --cluster-cidr,
/// --masquerade-all) and lb_host_config (the network namespace the socket hooks translate for).
/// Nothing else writes them: not the loader (a starting daemon keeps what its predecessor left
/// until its first sync, issue 9 item 1), not the host-hook attach. Each pass computes them from
/// the options and the node's addresses and writes only what differs from what the maps hold
/// (read back on full passes).
/// </summary>
public sealed class ConfigStage
{
    private readonly IDatapathMaps _maps;
    private readonly DatapathSyncOptions _options;
    private (LbConfig Config, LbNatConfig Nat, LbHostConfig? Host)? _held;

    public ConfigStage(IDatapathMaps maps, DatapathSyncOptions options)
    {
        _maps = maps;
        _options = options;
    }

    /// <summary>The masquerade address written by the last pass (null: masquerade off).</summary>
    public IPAddress? MasqueradeAddress { get; private set; }

    /// <summary>Brings the config maps to what <paramref name="node"/> and <paramref name="localAddresses"/> make them. Returns the number of writes.</summary>
    public int Sync(NodeContext node, IReadOnlyList<IPAddress> localAddresses, bool full)
    {
        if (_held is null || full)
            _held = (_maps.ReadConfig(), _maps.ReadNatConfig(), _options.NetnsCookie is null ? null : _maps.ReadHostConfig());
        var held = _held.Value;
        var snat = ChooseMasqueradeAddress(_options.MasqueradeAddress, node, localAddresses, MasqueradeAddress);
        var config = Config(_options);
        var nat = NatConfig(_options, snat);
        int writes = 0;
        try
        {
            if (!config.Equals(held.Config))
            {
                _maps.WriteConfig(config);
                writes++;
            }
            if (!nat.Equals(held.Nat))
            {
                _maps.WriteNatConfig(nat);
                writes++;
            }
            if (_options.NetnsCookie is { } cookie)
            {
                var host = new LbHostConfig { NetnsCookie = cookie };
                if (!host.Equals(held.Host))
                {
                    _maps.WriteHostConfig(host);
                    writes++;
                }
                held.Host = host;
            }
        }
        catch
        {
            _held = null;
            throw;
        }
        _held = (config, nat, held.Host);
        MasqueradeAddress = snat;
        return writes;
    }

    /// <summary>
    /// The address masqueraded traffic leaves with: --masquerade-address, else the node's primary
    /// address (its Node object's first InternalIP, or the first NodePort address), else the
    /// current choice while this namespace still has it, else its first global IPv4 address.
    /// Null: masquerade stays off.
    /// </summary>
    public static IPAddress? ChooseMasqueradeAddress(IPAddress? configured, NodeContext node, IReadOnlyList<IPAddress> localAddresses, IPAddress? current)
    {
        if (configured is not null)
            return configured;
        if (!node.Addresses.IsDefaultOrEmpty && node.Addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) is { } primary)
            return primary;
        if (current is not null && localAddresses.Contains(current))
            return current;
        return localAddresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a) && !(a.GetAddressBytes() is [169, 254, ..]));
    }

    /// <summary>lb_config: the service CIDR.</summary>
    public static LbConfig Config(DatapathSyncOptions options)
    {
        var config = default(LbConfig);
        if (options.ServiceCidr is { } cidr)
        {
            config.ServiceCidrBe = Be32Address.FromAddress(cidr.BaseAddress);
            config.ServiceMaskBe = Be32Address.FromAddress(Mask(cidr.PrefixLength));
        }
        return config;
    }

    /// <summary>lb_nat_config: <paramref name="snatAddress"/> (null: no masquerade), --cluster-cidr and --masquerade-all.</summary>
    public static LbNatConfig NatConfig(DatapathSyncOptions options, IPAddress? snatAddress)
    {
        var nat = new LbNatConfig { Flags = options.MasqueradeAll ? LbNatFlags.MasqueradeAll : LbNatFlags.None };
        if (snatAddress is { AddressFamily: AddressFamily.InterNetwork })
            nat.SnatAddrBe = Be32Address.FromAddress(snatAddress);
        if (options.ClusterCidr is { } cidr)
        {
            nat.ClusterCidrBe = Be32Address.FromAddress(cidr.BaseAddress);
            nat.ClusterMaskBe = Be32Address.FromAddress(Mask(cidr.PrefixLength));
        }
        return nat;
    }

    private static IPAddress Mask(int prefixLength)
    {
        Span<byte> mask = stackalloc byte[4];
        uint bits = prefixLength == 0 ? 0 : uint.MaxValue << (32 - prefixLength);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(mask, bits);
        return new IPAddress(mask);
    }
}
