using System.Diagnostics;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Planning;
using EbpfProxy.Core.Translation;

namespace EbpfProxy.Bench;

/// <summary>Translation and planning cost at scale, in process: the first full sync, then one EndpointSlice change at a time.</summary>
public static class ControlPlaneProbe
{
    public static int Run(int services, int eps)
    {
        var sw = Stopwatch.StartNew();
        var store = ScaleModel.Populate(services, eps);
        Console.WriteLine($"populate {services} services x {eps} endpoints: {sw.ElapsedMilliseconds} ms, retained heap {GC.GetTotalMemory(true) / 1048576} MiB");
        var translator = new ServiceTranslator(new NodeContext("node-1"));
        var state = new LbState();
        DesiredLbState? previous = null;
        var samples = new List<double>();
        for (int round = 0; round < 200; round++)
        {
            sw.Restart();
            var t = translator.Translate(store.TakeServiceChanges());
            var changed = previous is null ? null : t.ChangedFrontends;
            var plan = LbPlanner.Plan(state, t.State, changed: changed);
            foreach (var op in plan.Ops)
                state.Apply(op);
            if (round == 0)
            {
                Console.WriteLine($"first sync: translate+plan {sw.Elapsed.TotalMilliseconds:F0} ms, {plan.Ops.Count} map writes");
                Console.WriteLine($"retained heap with store + translator + map model: {GC.GetTotalMemory(true) / 1048576} MiB");
            }
            else
                samples.Add(sw.Elapsed.TotalMilliseconds);
            previous = t.State;
            store.Upsert(ScaleModel.Slice(round % services, eps, generation: round + 2));
        }
        samples.Sort();
        GC.KeepAlive(store);
        GC.KeepAlive(translator);
        GC.KeepAlive(state);
        Console.WriteLine($"one EndpointSlice change, translate+plan: p50 {samples[samples.Count / 2]:F1} ms, p99 {samples[(int)(samples.Count * 0.99)]:F1} ms");
        return 0;
    }
}
