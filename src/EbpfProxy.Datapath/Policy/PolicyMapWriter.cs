using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using EbpfProxy.Datapath.Maps;

namespace EbpfProxy.Datapath.Policy;

/// <summary>Outcome of one <see cref="PolicyMapWriter.Apply"/>.</summary>
public sealed record PolicyApplyResult(int Writes, int Deletes, TimeSpan Duration);

/// <summary>
/// The only writer of the NetworkPolicy maps. Keeps a model of what they hold (read back from the
/// pins on the first pass, so a restarted daemon that computes the same state writes nothing),
/// diffs the desired state against it and performs <see cref="PolicyPlanner"/>'s writes in its
/// order. A failed pass forgets the model: the next one reads the maps again and is retried
/// whole; every write is idempotent.
/// </summary>
public sealed class PolicyMapWriter
{
    private readonly PolicyMaps _maps;
    private PolicyState? _current;

    public PolicyMapWriter(PolicyMaps maps) => _maps = maps;

    /// <summary>Called after each write reached the kernel (tests watch the order through it).</summary>
    public Action<PolicyOp>? Written { get; init; }

    /// <summary>The model of the maps after the last pass (null before the first, and after a failure).</summary>
    public PolicyState? Current => _current;

    /// <summary>
    /// Brings the maps to <paramref name="desired"/>. With <paramref name="reread"/> (periodic
    /// resync) the maps are read back first, which heals drift. An invalid state is refused
    /// before anything is written.
    /// </summary>
    /// <exception cref="ArgumentException">The state cannot be written; the message lists why.</exception>
    public PolicyApplyResult Apply(PolicyState desired, bool reread = false)
    {
        var problems = desired.Validate();
        if (problems.Count > 0)
            throw new ArgumentException("policy state not written: " + string.Join("; ", problems), nameof(desired));
        var sw = Stopwatch.StartNew();
        if (_current is null || reread)
            _current = Read(_maps);

        var ops = PolicyPlanner.Plan(_current, desired);
        int writes = 0, deletes = 0;
        try
        {
            foreach (var op in ops)
            {
                Perform(_maps, op);
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
        // A copy: the caller may go on changing its collections.
        _current = new PolicyState { Ipcache = new Dictionary<IPNetwork, uint>(desired.Ipcache), Endpoints = new Dictionary<IPAddress, PolicyEndpoint>(desired.Endpoints), Rules = new HashSet<PolicyRule>(desired.Rules) };
        return new PolicyApplyResult(writes, deletes, sw.Elapsed);
    }

    /// <summary>What the maps hold.</summary>
    public static PolicyState Read(PolicyMaps maps)
    {
        var ipcache = new Dictionary<IPNetwork, uint>();
        foreach (var (k, v) in maps.Ipcache.Entries())
            ipcache[ToPrefix(k)] = v.Identity;
        var endpoints = new Dictionary<IPAddress, PolicyEndpoint>();
        foreach (var (k, v) in maps.Endpoints.Entries())
            endpoints[k.ToAddress()] = new PolicyEndpoint(v.EndpointId, v.Identity, v.Flags);
        var rules = new HashSet<PolicyRule>();
        foreach (var k in maps.Rules.Keys())
            rules.Add(PolicyRule.FromKey(k));
        return new PolicyState { Ipcache = ipcache, Endpoints = endpoints, Rules = rules };
    }

    private static void Perform(PolicyMaps maps, PolicyOp op)
    {
        switch (op)
        {
            case PolicyOp.UpsertIpcache u:
                maps.Ipcache.Update(ToKey(u.Prefix), new PolIpcacheEntry { Identity = u.Identity });
                break;
            case PolicyOp.DeleteIpcache d:
                maps.Ipcache.Delete(ToKey(d.Prefix));
                break;
            case PolicyOp.UpsertEndpoint u:
                maps.Endpoints.Update(Be32Address.FromAddress(u.Address), new PolEndpoint { EndpointId = u.Endpoint.EndpointId, Identity = u.Endpoint.Identity, Flags = u.Endpoint.Isolation });
                break;
            case PolicyOp.DeleteEndpoint d:
                maps.Endpoints.Delete(Be32Address.FromAddress(d.Address));
                break;
            case PolicyOp.UpsertRule u:
                maps.Rules.Update(u.Rule.ToKey(), default);
                break;
            case PolicyOp.DeleteRule d:
                maps.Rules.Delete(d.Rule.ToKey());
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op, "unknown operation");
        }
    }

    public static PolIpcacheKey ToKey(IPNetwork prefix) =>
        new() { PrefixLen = (uint)prefix.PrefixLength, AddrBe = Be32Address.FromAddress(prefix.BaseAddress) };

    /// <summary>The prefix a key read from the trie stands for (bits beyond the length, which the trie ignores, cleared).</summary>
    public static IPNetwork ToPrefix(PolIpcacheKey key)
    {
        Span<byte> bytes = stackalloc byte[4];
        key.AddrBe.ToAddress().TryWriteBytes(bytes, out _);
        int len = (int)Math.Min(key.PrefixLen, 32);
        uint masked = len == 0 ? 0 : BinaryPrimitives.ReadUInt32BigEndian(bytes) & (uint.MaxValue << (32 - len));
        BinaryPrimitives.WriteUInt32BigEndian(bytes, masked);
        return new IPNetwork(new IPAddress(bytes), len);
    }
}
