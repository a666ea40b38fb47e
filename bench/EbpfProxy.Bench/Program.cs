using System.Diagnostics;
using EbpfProxy.Bench;
using EbpfProxy.Core.Model;
using EbpfProxy.Core.Planning;
using EbpfProxy.Core.Translation;

// Quick control-plane probe: translation and planning at scale (no kernel).
int services = args.Length > 0 ? int.Parse(args[0]) : 10000;
int eps = args.Length > 1 ? int.Parse(args[1]) : 10;
var sw = Stopwatch.StartNew();
var store = ScaleModel.Populate(services, eps);
Console.WriteLine($"populate {services} services x {eps}: {sw.ElapsedMilliseconds} ms");
var translator = new ServiceTranslator(new NodeContext("node-1"));
var state = new LbState();
DesiredLbState? previous = null;
var samples = new List<double>();
for (int round = 0; round < 200; round++)
{
    sw.Restart();
    var t = translator.Translate(store.Snapshot());
    var tt = sw.Elapsed.TotalMilliseconds;
    var changed = previous is null ? null : t.State.ChangedSince(previous);
    var plan = LbPlanner.Plan(state, t.State, changed: changed);
    foreach (var op in plan.Ops)
        state.Apply(op);
    var total = sw.Elapsed.TotalMilliseconds;
    if (round < 3 || round % 50 == 0)
        Console.WriteLine($"round {round}: translate {tt:F1} ms, translate+plan+apply {total:F1} ms, ops {plan.Ops.Count}");
    if (round > 0)
        samples.Add(total);
    previous = t.State;
    store.Upsert(ScaleModel.Slice(round % services, eps, generation: round + 2));
}
samples.Sort();
Console.WriteLine($"per change: p50 {samples[samples.Count / 2]:F1} ms, p99 {samples[(int)(samples.Count * 0.99)]:F1} ms");
Console.WriteLine($"managed heap {GC.GetTotalMemory(true) / 1048576} MiB, working set {Environment.WorkingSet / 1048576} MiB");
