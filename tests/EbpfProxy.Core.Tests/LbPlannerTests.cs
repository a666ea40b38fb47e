using System.Collections.Immutable;
using System.Net;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Planning;

namespace EbpfProxy.Core.Tests;

public class LbPlannerTests
{
    private static readonly FrontendKey Vip = Key("10.96.0.42", 80);

    private static FrontendKey Key(string ip, ushort port, L4Protocol proto = L4Protocol.Tcp) =>
        new(new Frontend(IPAddress.Parse(ip), port, proto), FrontendScope.External);

    private static Backend B(int last, BackendFlags flags = BackendFlags.None) =>
        new(new BackendAddress(IPAddress.Parse($"10.244.0.{last}"), 8080, L4Protocol.Tcp), flags);

    private static DesiredLbState Desired(params (FrontendKey Key, Backend[] Active, Backend[] Terminating)[] frontends) =>
        new(frontends.ToDictionary(
            f => f.Key,
            f => new FrontendState(f.Key, new ServicePortName("default", "svc" + f.Key.Frontend.Port, ""), ServiceFlags.None, 0,
                [.. f.Active], [.. f.Terminating])));

    /// <summary>
    /// What a packet in flight could observe after each single write: every published slot
    /// (1..count+terminating) names an existing backend, and every published service has its
    /// rev-NAT entry.
    /// </summary>
    private static void AssertConsistent(LbState s, string when)
    {
        foreach (var (key, fe) in s.Frontends)
        {
            if (fe.Service is not { } svc)
                continue;
            Assert.True(s.RevNat.ContainsKey(svc.RevNatId), $"{when}: {key} published without rev-NAT {svc.RevNatId}");
            for (ushort slot = 1; slot <= svc.Count + svc.TerminatingCount; slot++)
            {
                Assert.True(fe.Slots.TryGetValue(slot, out var id), $"{when}: {key} publishes slot {slot} which does not exist");
                Assert.True(s.Backends.ContainsKey(id), $"{when}: {key} slot {slot} names deleted backend {id}");
            }
        }
    }

    /// <summary>Runs a plan op by op, checking consistency after each op, and returns the result.</summary>
    private static LbState ApplyChecked(LbState current, DesiredLbState desired, IReadOnlyCollection<FrontendKey>? changed = null) =>
        ApplyChecked(current, desired, LbLimits.Default, changed);

    private static LbState ApplyChecked(LbState current, DesiredLbState desired, LbLimits limits, IReadOnlyCollection<FrontendKey>? changed = null)
    {
        var plan = LbPlanner.Plan(current, desired, limits, changed);
        var s = current.Clone();
        for (int i = 0; i < plan.Ops.Count; i++)
        {
            s.Apply(plan.Ops[i]);
            AssertConsistent(s, $"after op {i} ({plan.Ops[i]})");
        }
        return s;
    }

    [Fact]
    public void ScalingDownNeverLeavesAPublishedSlotOnADeletedBackend()
    {
        var s = ApplyChecked(new LbState(), Desired((Vip, [B(1), B(2), B(3)], [])));
        s = ApplyChecked(s, Desired((Vip, [B(3)], [])));
        Assert.Equal(1, s.Frontends[Vip].Service!.Value.Count);
        Assert.Single(s.Backends);
        s = ApplyChecked(s, Desired((Vip, [], [])));
        Assert.Empty(s.Backends);
        Assert.Empty(s.Frontends[Vip].Slots);
        s = ApplyChecked(s, Desired((Vip, [B(4), B(5)], [])));
        Assert.Equal(2, s.Frontends[Vip].Service!.Value.Count);
    }

    [Fact]
    public void DeletesComeAfterTheServiceEntryStopsNamingTheBackend()
    {
        var s = ApplyChecked(new LbState(), Desired((Vip, [B(1), B(2), B(3)], [])));
        var plan = LbPlanner.Plan(s, Desired((Vip, [B(1)], [])));
        var entryIndex = plan.Ops.ToList().FindIndex(o => o is LbOp.UpsertService);
        Assert.True(entryIndex >= 0);
        foreach (var (op, i) in plan.Ops.Select((o, i) => (o, i)))
        {
            if (op is LbOp.DeleteBackend or LbOp.DeleteSlot)
                Assert.True(i > entryIndex, $"{op} at {i} precedes the service entry update at {entryIndex}");
        }
        Assert.Equal(2, plan.Ops.Count(o => o is LbOp.DeleteBackend));
    }

    [Fact]
    public void RemovedFrontendIsUnpublishedBeforeItsSlotsAndBackendsGo()
    {
        var other = Key("10.96.0.43", 80);
        var s = ApplyChecked(new LbState(), Desired((Vip, [B(1), B(2)], []), (other, [B(2)], [])));
        var plan = LbPlanner.Plan(s, Desired((other, [B(2)], [])));
        var ops = plan.Ops.ToList();
        Assert.IsType<LbOp.DeleteService>(ops.First(o => o is LbOp.DeleteService or LbOp.DeleteSlot));
        Assert.Contains(ops, o => o is LbOp.DeleteBackend { Id: var id } && s.Backends[id].Address == B(1).Address);
        Assert.DoesNotContain(ops, o => o is LbOp.DeleteBackend { Id: var id } && s.Backends[id].Address == B(2).Address);
        ApplyChecked(s, Desired((other, [B(2)], [])));
    }

    [Fact]
    public void ReplanningTheSameStateWritesNothing()
    {
        var desired = Desired((Vip, [B(1), B(2), B(3)], []), (Key("10.96.0.10", 53, L4Protocol.Udp), [B(7)], [B(8)]));
        var s = ApplyChecked(new LbState(), desired);
        Assert.Empty(LbPlanner.Plan(s, desired).Ops);
    }

    [Fact]
    public void IdsAndSlotsAreReadoptedFromTheMaps()
    {
        var s = ApplyChecked(new LbState(), Desired((Vip, [B(1), B(2), B(3)], [])));
        var revNat = s.Frontends[Vip].Service!.Value.RevNatId;
        var idOf3 = s.Backends.Single(kv => kv.Value.Address == B(3).Address).Key;

        var s2 = ApplyChecked(s, Desired((Vip, [B(3), B(4)], [])));
        Assert.Equal(revNat, s2.Frontends[Vip].Service!.Value.RevNatId);
        Assert.Contains(idOf3, s2.Frontends[Vip].Slots.Values);
        Assert.Equal(idOf3, s2.Backends.Single(kv => kv.Value.Address == B(3).Address).Key);
    }

    [Fact]
    public void RemovingOneBackendRewritesAtMostOneSlot()
    {
        var s = ApplyChecked(new LbState(), Desired((Vip, [.. Enumerable.Range(1, 10).Select(i => B(i))], [])));
        var plan = LbPlanner.Plan(s, Desired((Vip, [.. Enumerable.Range(1, 10).Where(i => i != 4).Select(i => B(i))], [])));
        Assert.True(plan.Ops.Count(o => o is LbOp.UpsertSlot) <= 1, string.Join("\n", plan.Ops));
    }

    [Fact]
    public void RemovedBackendIdsAreNotReusedRightAway()
    {
        var s = ApplyChecked(new LbState(), Desired((Vip, [B(1), B(2)], [])));
        var oldIds = s.Backends.Keys.ToHashSet();
        s = ApplyChecked(s, Desired((Vip, [], [])));
        s = ApplyChecked(s, Desired((Vip, [B(3), B(4)], [])));
        Assert.Empty(s.Backends.Keys.Intersect(oldIds));
    }

    [Fact]
    public void TerminatingTailFollowsActiveSlots()
    {
        var s = ApplyChecked(new LbState(), Desired((Vip, [B(1)], [B(2, BackendFlags.Terminating)])));
        var svc = s.Frontends[Vip].Service!.Value;
        Assert.Equal((1, 1), ((int)svc.Count, (int)svc.TerminatingCount));
        Assert.Equal(s.Backends.Single(kv => kv.Value.Address == B(2).Address).Key, s.Frontends[Vip].Slots[2]);
    }

    [Fact]
    public void IdsWrapAtTheLimitAndAreNeverHandedOutTwice()
    {
        // Up to 5 backends in use and up to 5 new ones per plan, with room for 10: plans need
        // free ids on both sides of where the allocator wraps.
        var limits = new LbLimits(MaxBackends: 10);
        var rng = new Random(3);
        var s = new LbState();
        int next = 1;
        var wanted = new List<Backend>();
        for (int round = 0; round < 60; round++)
        {
            wanted = [.. wanted.Where(_ => rng.Next(3) != 0)];
            wanted.AddRange(Enumerable.Range(0, rng.Next(0, 6 - wanted.Count)).Select(_ => B(next++ % 250 + 1)));
            var desired = Desired((Vip, [.. wanted], []));
            var plan = LbPlanner.Plan(s, desired, limits);
            Assert.Empty(plan.Errors);
            var allocated = plan.Ops.OfType<LbOp.UpsertBackend>().Select(o => o.Id).ToList();
            Assert.Equal(allocated.Count, allocated.Distinct().Count());
            Assert.Empty(allocated.Intersect(s.Backends.Keys));
            s = ApplyChecked(s, desired, limits);
            Assert.All(s.Backends.Keys, id => Assert.InRange(id, 1u, 10u));
            var named = s.Frontends[Vip].Slots.Values.Select(id => s.Backends[id].Address).ToHashSet();
            Assert.True(named.SetEquals(wanted.Select(b => b.Address)));
        }
    }

    [Fact]
    public void AWrappedAllocatorSkipsIdsItHandedOutBeforeTheWrap()
    {
        // Names left without their rev-NAT entry (damaged maps) occupy ids 1 and 2 without being
        // counted as rev-NAT entries, so the allocator wraps and scans ids it already handed out.
        var s = new LbState { RevNatIdHighWater = 2 };
        s.Apply(new LbOp.UpsertName(1, "stray/a:"));
        s.Apply(new LbOp.UpsertName(2, "stray/b:"));
        var desired = Desired((Key("10.96.0.1", 80), [B(1)], []), (Key("10.96.0.2", 80), [B(2)], []), (Key("10.96.0.3", 80), [B(3)], []));
        var plan = LbPlanner.Plan(s, desired, new LbLimits(MaxRevNat: 4));
        var ids = plan.Ops.OfType<LbOp.UpsertService>().Select(o => o.Entry.RevNatId).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.DoesNotContain((ushort)1, ids);
        Assert.DoesNotContain((ushort)2, ids);
        Assert.Single(plan.Errors);
    }

    /// <summary>Frontends added, removed or changed (by instance) between two states.</summary>
    private static List<FrontendKey> ChangedSince(DesiredLbState current, DesiredLbState previous)
    {
        var changed = current.Frontends.Where(kv => !previous.Frontends.TryGetValue(kv.Key, out var old) || !ReferenceEquals(old, kv.Value)).Select(kv => kv.Key).ToList();
        changed.AddRange(previous.Frontends.Keys.Where(k => !current.Frontends.ContainsKey(k)));
        return changed;
    }

    [Fact]
    public void IncrementalPlansMatchFullPlans()
    {
        var rng = new Random(7);
        var keys = Enumerable.Range(0, 8).Select(i => Key($"10.96.1.{i}", 80)).ToArray();
        var full = new LbState();
        var incremental = new LbState();
        var previous = DesiredLbState.Empty;
        for (int round = 0; round < 200; round++)
        {
            // Each round changes a few frontends; unchanged ones keep their FrontendState instance.
            var next = new Dictionary<FrontendKey, FrontendState>(previous.Frontends);
            foreach (var k in keys.Where(_ => rng.Next(4) == 0))
            {
                if (rng.Next(5) == 0)
                    next.Remove(k);
                else
                    next[k] = new FrontendState(k, new ServicePortName("default", "svc" + k.Frontend.Address, ""), ServiceFlags.None, 0,
                        [.. Enumerable.Range(1, 15).Where(_ => rng.Next(3) == 0).Select(i => B(i))], []);
            }
            var desired = new DesiredLbState(next);
            full = ApplyChecked(full, desired);
            incremental = ApplyChecked(incremental, desired, ChangedSince(desired, previous));
            Assert.Equal(LbStateFormatter.ToText(full), LbStateFormatter.ToText(incremental));
            Assert.Empty(LbPlanner.Plan(incremental, desired).Ops);
            previous = desired;
        }
    }

    [Fact]
    public void RandomChurnKeepsEveryIntermediateStateConsistent()
    {
        var rng = new Random(42);
        var keys = new[] { Vip, Key("10.96.0.43", 80), Key("10.96.0.43", 80, L4Protocol.Udp), Key("10.96.0.44", 443) };
        var s = new LbState();
        for (int round = 0; round < 300; round++)
        {
            var frontends = keys.Where(_ => rng.Next(4) != 0)
                .Select(k => (k,
                    Enumerable.Range(1, 12).Where(_ => rng.Next(3) == 0).Select(i => B(i)).ToArray(),
                    Enumerable.Range(20, 4).Where(_ => rng.Next(4) == 0).Select(i => B(i, BackendFlags.Terminating)).ToArray()))
                .ToArray();
            var desired = Desired(frontends);
            s = ApplyChecked(s, desired);
            Assert.Empty(LbPlanner.Plan(s, desired).Ops);
            // The maps hold exactly what is wanted.
            foreach (var (k, active, term) in frontends)
            {
                var fe = s.Frontends[k];
                var named = fe.Slots.Values.Select(id => s.Backends[id].Address).ToHashSet();
                Assert.True(named.SetEquals(active.Concat(term).Select(b => b.Address)));
            }
            Assert.Equal(keys.Length - frontends.Length, keys.Count(k => !s.Frontends.ContainsKey(k)));
        }
    }

    /// <summary>
    /// Issue 14 item 1: under random churn into tiny maps, no write ever needs more room than the
    /// maps have (the kernel would refuse it with E2BIG), and after every plan each service is
    /// either exactly as desired or exactly as it was before the plan — never half-written.
    /// </summary>
    [Fact]
    public void UnderChurnIntoSmallMapsEveryServiceIsProgrammedWholeOrKeptAsItWas()
    {
        var rng = new Random(14);
        var limits = new LbLimits(MaxBackends: 12, MaxRevNat: 6, MaxServiceEntries: 24);
        // Six services of one or two ports each (a service's ports share its name in Desired2).
        var ports = Enumerable.Range(0, 6).SelectMany(i => Enumerable.Range(0, 1 + i % 2).Select(p => (Service: i, Key: Key($"10.96.2.{i}", (ushort)(80 + p))))).ToArray();
        var s = new LbState();
        int leftOutRounds = 0;
        for (int round = 0; round < 400; round++)
        {
            var wanted = Enumerable.Range(0, 6).Where(_ => rng.Next(3) != 0).ToHashSet();
            var desired = new DesiredLbState(ports.Where(p => wanted.Contains(p.Service)).ToDictionary(p => p.Key, p => new FrontendState(p.Key,
                new ServicePortName("default", $"svc{p.Service}", p.Key.Frontend.Port.ToString()), ServiceFlags.None, 0,
                [.. Enumerable.Range(1, 8).Where(_ => rng.Next(3) == 0).Select(i => B(10 * p.Service + i))], [])));
            var before = s.Clone();
            var plan = LbPlanner.Plan(s, desired, limits);
            var next = s.Clone();
            foreach (var op in plan.Ops)
            {
                next.Apply(op);
                AssertConsistent(next, $"round {round} after {op}");
                Assert.True(next.ServiceEntryCount <= limits.MaxServiceEntries, $"round {round}: {next.ServiceEntryCount} service entries after {op}");
                Assert.True(next.Backends.Count <= limits.MaxBackends, $"round {round}: {next.Backends.Count} backends after {op}");
                Assert.True(next.RevNat.Count <= limits.MaxRevNat, $"round {round}: {next.RevNat.Count} rev-NAT entries after {op}");
            }
            s = next;
            var errorNames = plan.Errors.Select(e => e.Object).ToHashSet();
            foreach (var svc in wanted)
            {
                var keys = ports.Where(p => p.Service == svc).Select(p => p.Key).ToList();
                bool asDesired = keys.All(k => s.Frontends.TryGetValue(k, out var fe) && fe.Service is { } e
                    && fe.Slots.Values.Select(id => s.Backends[id].Address).ToHashSet().SetEquals(desired.Frontends[k].Active.Select(b => b.Address))
                    && e.Count == desired.Frontends[k].Active.Length);
                bool asBefore = keys.All(k => LbStateFormatter.ToText(Only(before, k)) == LbStateFormatter.ToText(Only(s, k)));
                Assert.True(asDesired || asBefore, $"round {round}: svc{svc} is half-written");
                Assert.Equal(!asDesired, errorNames.Contains($"default/svc{svc}"));
                if (!asDesired)
                    leftOutRounds++;
            }
            // Whatever is not wanted is gone, always: deletions never wait for room.
            Assert.All(ports.Where(p => !wanted.Contains(p.Service)), p => Assert.False(s.Frontends.ContainsKey(p.Key)));
        }
        Assert.True(leftOutRounds > 20, $"the maps were too large to test anything ({leftOutRounds} services left out)");
    }

    /// <summary>One frontend's entries, with its backends' addresses, as a state of its own.</summary>
    private static LbState Only(LbState s, FrontendKey key)
    {
        var only = new LbState();
        if (!s.Frontends.TryGetValue(key, out var fe))
            return only;
        foreach (var (slot, id) in fe.Slots)
        {
            only.Apply(new LbOp.UpsertBackend(id, s.Backends[id]));
            only.Apply(new LbOp.UpsertSlot(key, slot, id));
        }
        if (fe.Service is { } svc)
            only.Apply(new LbOp.UpsertService(key, svc));
        return only;
    }

    [Fact]
    public void AtTheIdWallAServiceOfManyPortsIsOneErrorAndGetsNoneOfItsPorts()
    {
        var s = ApplyChecked(new LbState(), Desired((Key("10.96.0.1", 80), [B(1)], [])), new LbLimits(MaxRevNat: 100));
        var big = Enumerable.Range(0, 500).ToDictionary(p => Key("10.96.0.2", (ushort)(1000 + p)),
            p => new FrontendState(Key("10.96.0.2", (ushort)(1000 + p)), new ServicePortName("default", "big", $"p{p}"), ServiceFlags.None, 0, [B(2)], []));
        big[Key("10.96.0.1", 80)] = new FrontendState(Key("10.96.0.1", 80), new ServicePortName("default", "svc80", ""), ServiceFlags.None, 0, [B(1), B(3)], []);
        var plan = LbPlanner.Plan(s, new DesiredLbState(big), new LbLimits(MaxRevNat: 100));
        var error = Assert.Single(plan.Errors);
        Assert.Equal("default/big", error.Object);
        Assert.Equal(500, plan.LeftOut.Count);
        Assert.DoesNotContain(plan.Ops, o => o is LbOp.UpsertService { Key.Frontend.Port: >= 1000 });
        // The other service's change goes ahead.
        Assert.Equal(2, plan.ApplyTo(s).Frontends[Key("10.96.0.1", 80)].Service!.Value.Count);
    }
}
