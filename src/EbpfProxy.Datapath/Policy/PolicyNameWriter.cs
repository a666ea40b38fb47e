using System.Net;
using System.Net.Sockets;
using EbpfProxy.Core.Policy;
using EbpfProxy.Datapath.Maps;

namespace EbpfProxy.Datapath.Policy;

/// <summary>Outcome of one <see cref="PolicyNameWriter.Apply"/>; <see cref="Error"/> when the kernel refused a write.</summary>
public sealed record PolicyNamesResult(int Writes, int Deletes, string? Error = null)
{
    public static PolicyNamesResult None { get; } = new(0, 0);
}

/// <summary>
/// Writes the operator-only maps `pol_ep_names` (local pod address -> endpoint id,
/// "namespace/name") and `pol_id_names` (identity -> its key's text), which the CLI's
/// `policy get` and `ipcache list` join with the numeric policy maps. The datapath never reads
/// them, so they are written after the policy maps and nothing depends on their order.
/// <para>
/// Like <see cref="PolicyMapWriter"/> it keeps a model of what the maps hold, read back on the
/// first pass (a restarted daemon computing the same state writes nothing: texts are compared in
/// their stored, possibly cut, form), and writes only differences. An identity whose key is the
/// same instance as last time is skipped without formatting its text, so a pass costs a
/// dictionary walk plus the changes. A failed write forgets the model; the next pass reads again.
/// </para>
/// </summary>
public sealed class PolicyNameWriter
{
    private readonly PolicyMaps _maps;
    private Dictionary<IPAddress, PolEndpointName>? _endpoints;
    private Dictionary<uint, HeldIdentity>? _identities;

    public PolicyNameWriter(PolicyMaps maps) => _maps = maps;

    /// <summary>Brings both maps to <paramref name="desired"/> (with <paramref name="reread"/>: after reading them back).</summary>
    public PolicyNamesResult Apply(DesiredPolicyState desired, bool reread = false)
    {
        if (_endpoints is null || _identities is null || reread)
        {
            _endpoints = ReadEndpointNames(_maps);
            _identities = ReadIdentityNames(_maps).ToDictionary(kv => kv.Key, kv => new HeldIdentity(null, kv.Value));
        }
        int writes = 0, deletes = 0;
        try
        {
            foreach (var (address, ep) in desired.Endpoints)
            {
                if (address.AddressFamily != AddressFamily.InterNetwork)
                    continue;
                var want = new PolEndpointName(ep.Id, FixedText.Fit($"{ep.Namespace}/{ep.Name}", PolEpName.NameLength));
                if (_endpoints.TryGetValue(address, out var held) && held == want)
                    continue;
                _maps.EndpointNames.Update(Be32Address.FromAddress(address), PolEpName.From(want.EndpointId, want.Name));
                _endpoints[address] = want;
                writes++;
            }
            // Local pods are few (a node's): look for stale ones every pass.
            foreach (var address in _endpoints.Keys.Where(a => !desired.Endpoints.ContainsKey(a)).ToList())
            {
                _maps.EndpointNames.Delete(Be32Address.FromAddress(address));
                _endpoints.Remove(address);
                deletes++;
            }

            int identityWrites = 0;
            foreach (var (id, key) in desired.Identities)
            {
                if (_identities.TryGetValue(id, out var held) && ReferenceEquals(held.Key, key))
                    continue;
                var text = FixedText.Fit(key.ToString(), PolIdName.TextLength);
                if (held is null || held.Text != text)
                {
                    _maps.IdentityNames.Update(id, PolIdName.From(text));
                    identityWrites++;
                }
                _identities[id] = new HeldIdentity(key, text);
            }
            writes += identityWrites;
            // With no write, every desired identity is held: a stale one exists only if more are held.
            if (_identities.Count > desired.Identities.Count || identityWrites > 0)
            {
                foreach (var id in _identities.Keys.Where(i => !desired.Identities.ContainsKey(i)).ToList())
                {
                    _maps.IdentityNames.Delete(id);
                    _identities.Remove(id);
                    deletes++;
                }
            }
        }
        catch
        {
            _endpoints = null;
            _identities = null;
            throw;
        }
        return new PolicyNamesResult(writes, deletes);
    }

    /// <summary>pol_ep_names: local pod address -> endpoint id and "namespace/name".</summary>
    public static Dictionary<IPAddress, PolEndpointName> ReadEndpointNames(PolicyMaps maps)
    {
        var names = new Dictionary<IPAddress, PolEndpointName>();
        foreach (var (k, v) in maps.EndpointNames.Entries())
            names[k.ToAddress()] = new PolEndpointName(v.EndpointId, v.NameText());
        return names;
    }

    /// <summary>pol_id_names: identity -> its text.</summary>
    public static Dictionary<uint, string> ReadIdentityNames(PolicyMaps maps)
    {
        var names = new Dictionary<uint, string>();
        foreach (var (id, v) in maps.IdentityNames.Entries())
            names[id] = v.ToString();
        return names;
    }

    /// <summary>The key last written for an identity (null: read back from the map) and its stored text.</summary>
    private sealed record HeldIdentity(IdentityKey? Key, string Text);
}

/// <summary>A pol_ep_names entry: the pod a local address belongs to ("namespace/name") and its endpoint id.</summary>
public readonly record struct PolEndpointName(uint EndpointId, string Name);
