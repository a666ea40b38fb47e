using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using EbpfProxy.Core.Policy;
using EbpfProxy.Datapath.Maps;
using LibBpf.Net;

namespace EbpfProxy.Datapath.Sync;

/// <summary>Outcome of one policy map pass.</summary>
public sealed record PolicyApplyResult(int Writes, int Deletes, TimeSpan Duration);

/// <summary>What a pass wrote to pol_ep_names and pol_id_names, or why it could not (<see cref="Error"/>).</summary>
public sealed record PolicyNamesResult(int Writes, int Deletes, string? Error = null)
{
    public static PolicyNamesResult None { get; } = new(0, 0);
}

/// <summary>
/// The policy stage of <see cref="DatapathSync"/>: the NetworkPolicy maps' writer. Feeds Core's
/// computation (<see cref="DesiredPolicyState"/>, mapped to a <see cref="PolicyState"/>) to the
/// maps, in the order Core's <see cref="PolicyPlanner"/> gives, then the CLI's names; and reads
/// back what a predecessor left so Core re-adopts its identity numbers and endpoint ids
/// (<see cref="ReadHints"/>).
/// <para>
/// Same change-tracking shape as the service stage: a model of what the maps hold, read back
/// from the pins on the first pass (a restarted daemon that computes the same state writes
/// nothing) and on full passes (healing drift), kept in step by <see cref="PolicyState.Apply"/>
/// after each write. A failed write forgets the model; the next pass reads the maps again and is
/// retried whole: every write is idempotent.
/// </para>
/// </summary>
public sealed class PolicyStage
{
    private readonly IDatapathMaps _maps;
    private PolicyState? _current;
    // The CLI's names: what pol_ep_names and pol_id_names hold.
    private Dictionary<IPAddress, PolEndpointName>? _endpointNames;
    private Dictionary<uint, HeldIdentity>? _identityNames;

    public PolicyStage(IDatapathMaps maps) => _maps = maps;

    /// <summary>Called after each policy write reached the maps (tests watch the order through it).</summary>
    public Action<PolicyOp>? Written { get; init; }

    /// <summary>The model of the maps after the last pass (null before the first, and after a failure).</summary>
    public PolicyState? Current => _current;

    /// <summary>What the last good pass wrote to pol_ep_names and pol_id_names, or why it could not.</summary>
    public PolicyNamesResult Names { get; private set; } = PolicyNamesResult.None;

    /// <summary>Endpoints whose isolation the last failed pass forced on (0 after a good pass).</summary>
    public int FailedClosed { get; private set; }

    /// <summary>
    /// The identities and endpoint ids the pinned maps hold (for Core's first computation). Ids of
    /// pods no policy isolates (absent from pol_endpoints) come from pol_ep_names, so they keep
    /// their numbers too and a restart rewrites no name.
    /// </summary>
    public PolicyHints ReadHints()
    {
        var held = _maps.ReadPolicy();
        var endpointIds = held.Endpoints.ToDictionary(kv => kv.Key, kv => kv.Value.EndpointId);
        foreach (var (address, name) in _maps.ReadEndpointNames())
            endpointIds.TryAdd(address, name.EndpointId);
        return new PolicyHints(held.Ipcache, endpointIds);
    }

    /// <summary>
    /// Brings the maps to <paramref name="desired"/> (with <paramref name="reread"/>: after reading
    /// them back, healing drift). When a write is refused (a map full, most likely), the pass
    /// fails closed before the error goes up: see <see cref="FailClose"/>. After a good pass the
    /// CLI's names are brought up to date (<see cref="Names"/>); their failure is reported there
    /// and never fails the pass, since the datapath does not read them.
    /// </summary>
    public PolicyApplyResult Sync(DesiredPolicyState desired, bool reread = false)
    {
        var state = ToMapState(desired);
        PolicyApplyResult result;
        try
        {
            result = Apply(state, reread);
            FailedClosed = 0;
        }
        catch (BpfException)
        {
            FailedClosed = FailClose(state);
            throw;
        }
        try
        {
            Names = ApplyNames(desired, reread);
        }
        catch (BpfException ex)
        {
            Names = new PolicyNamesResult(0, 0, ex.Message);
        }
        return result;
    }

    /// <summary>
    /// Brings pol_ipcache, pol_endpoints and pol_rules to <paramref name="desired"/>. With
    /// <paramref name="reread"/> the maps are read back first. An invalid state is refused before
    /// anything is written.
    /// </summary>
    /// <exception cref="ArgumentException">The state cannot be written; the message lists why.</exception>
    public PolicyApplyResult Apply(PolicyState desired, bool reread = false)
    {
        var problems = desired.Validate();
        if (problems.Count > 0)
            throw new ArgumentException("policy state not written: " + string.Join("; ", problems), nameof(desired));
        var sw = Stopwatch.StartNew();
        if (_current is null || reread)
            _current = _maps.ReadPolicy();

        var ops = PolicyPlanner.Plan(_current, desired);
        int writes = 0, deletes = 0;
        try
        {
            foreach (var op in ops)
            {
                _maps.Apply(op);
                _current.Apply(op);
                Written?.Invoke(op);
                if (op.IsDelete)
                    deletes++;
                else
                    writes++;
            }
        }
        catch
        {
            // Unknown how far the kernel got: the next pass starts from what the maps really hold.
            _current = null;
            throw;
        }
        return new PolicyApplyResult(writes, deletes, sw.Elapsed);
    }

    /// <summary>
    /// After a failed pass the maps hold part of the new rules. Every endpoint the desired state
    /// isolates gets its isolation written now (added to what it had, never removed), so a
    /// direction whose allow entries are missing denies instead of admitting everything; what was
    /// written still admits. The next pass (retried with backoff) completes or fails again.
    /// </summary>
    private int FailClose(PolicyState state)
    {
        int forced = 0;
        foreach (var (address, ep) in state.Endpoints)
        {
            var isolation = ep.Isolation;
            if (_maps.TryReadEndpoint(address, out var held))
            {
                if ((held.Isolation & isolation) == isolation)
                    continue;
                isolation |= held.Isolation;
            }
            try
            {
                _maps.Apply(new PolicyOp.UpsertEndpoint(address, ep with { Isolation = isolation }));
                forced++;
            }
            catch (BpfException)
            {
                // The endpoint map itself is full: nothing more can be done here; the error goes up.
            }
        }
        return forced;
    }

    /// <summary>
    /// The maps' view of Core's state: pods that no policy isolates get no pol_endpoints entry (one
    /// lookup and nothing else per packet), and only isolated endpoints' rules are written.
    /// </summary>
    public static PolicyState ToMapState(DesiredPolicyState desired)
    {
        var endpoints = new Dictionary<IPAddress, EndpointEntry>();
        var rules = new HashSet<PolicyRule>();
        foreach (var (address, ep) in desired.Endpoints)
        {
            if (ep.Flags == EndpointFlags.None)
                continue;
            endpoints[address] = new EndpointEntry(ep.Id, ep.Identity, (PolicyIsolation)(uint)ep.Flags);
            if (desired.RulesByEndpoint.TryGetValue(ep.Id, out var keys))
                foreach (var k in keys)
                    rules.Add(ToRule(k));
        }
        return new PolicyState { Ipcache = desired.IpCache, Endpoints = endpoints, Rules = rules };
    }

    internal static PolicyRule ToRule(PolicyRuleKey k) =>
        k.PrefixLength <= PolicyRuleKey.AnyProtocolPrefix
            ? new PolicyRule(k.EndpointId, k.Identity, k.Direction, Core.Model.L4Protocol.Any, 0, 0)
            : new PolicyRule(k.EndpointId, k.Identity, k.Direction, k.Protocol, k.Port, (byte)k.PortBits);

    /// <summary>
    /// The operator-only maps pol_ep_names (local pod address -> endpoint id, "namespace/name") and
    /// pol_id_names (identity -> its key's text), which `policy get` and `ipcache list` join with
    /// the numeric maps. The datapath never reads them, so they go after the policy maps. Texts are
    /// compared in their stored, possibly cut, form; an identity whose key is the same instance as
    /// last time is skipped without formatting its text, so a pass costs a dictionary walk plus the
    /// changes. A failed write forgets the model; the next pass reads again.
    /// </summary>
    private PolicyNamesResult ApplyNames(DesiredPolicyState desired, bool reread)
    {
        if (_endpointNames is null || _identityNames is null || reread)
        {
            _endpointNames = _maps.ReadEndpointNames();
            _identityNames = _maps.ReadIdentityNames().ToDictionary(kv => kv.Key, kv => new HeldIdentity(null, kv.Value));
        }
        int writes = 0, deletes = 0;
        try
        {
            foreach (var (address, ep) in desired.Endpoints)
            {
                if (address.AddressFamily != AddressFamily.InterNetwork)
                    continue;
                var want = new PolEndpointName(ep.Id, FixedText.Fit($"{ep.Namespace}/{ep.Name}", PolEpName.NameLength));
                if (_endpointNames.TryGetValue(address, out var held) && held == want)
                    continue;
                _maps.WriteEndpointName(address, want);
                _endpointNames[address] = want;
                writes++;
            }
            // Local pods are few (a node's): look for stale ones every pass.
            foreach (var address in _endpointNames.Keys.Where(a => !desired.Endpoints.ContainsKey(a)).ToList())
            {
                _maps.DeleteEndpointName(address);
                _endpointNames.Remove(address);
                deletes++;
            }

            int identityWrites = 0;
            foreach (var (id, key) in desired.Identities)
            {
                if (_identityNames.TryGetValue(id, out var held) && ReferenceEquals(held.Key, key))
                    continue;
                var text = FixedText.Fit(key.ToString(), PolIdName.TextLength);
                if (held is null || held.Text != text)
                {
                    _maps.WriteIdentityName(id, text);
                    identityWrites++;
                }
                _identityNames[id] = new HeldIdentity(key, text);
            }
            writes += identityWrites;
            // With no write, every desired identity is held: a stale one exists only if more are held.
            if (_identityNames.Count > desired.Identities.Count || identityWrites > 0)
            {
                foreach (var id in _identityNames.Keys.Where(i => !desired.Identities.ContainsKey(i)).ToList())
                {
                    _maps.DeleteIdentityName(id);
                    _identityNames.Remove(id);
                    deletes++;
                }
            }
        }
        catch
        {
            _endpointNames = null;
            _identityNames = null;
            throw;
        }
        return new PolicyNamesResult(writes, deletes);
    }

    /// <summary>The key last written for an identity (null: read back from the map) and its stored text.</summary>
    private sealed record HeldIdentity(IdentityKey? Key, string Text);
}
