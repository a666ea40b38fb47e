using System.Diagnostics;
using EbpfProxy.Bench;
using EbpfProxy.Core.Planning;
using EbpfProxy.Core.Translation;

// Quick control-plane probe: translation and planning at scale (no kernel).
int services = args.Length > 0 ? int.Parse(args[0]) : 10000;
int eps = args.Length > 1 ? int.Parse(args[1]) : 10;
var sw = Stopwatch.StartNew();
var store = ScaleModel.Populate(services, eps);
Console.WriteLine($"populate {services} services x {eps}: {sw.ElapsedMilliseconds} ms");
var node = new NodeContext("node-1");
LbState state = new();
for (int round = 0; round < 5; round++)
{
    sw.Restart();
    var t = ServiceTranslator.Translate(store.Snapshot(), node);
    var tt = sw.Elapsed.TotalMilliseconds;
    sw.Restart();
    var plan = LbPlanner.Plan(state, t.State);
    Console.WriteLine($"round {round}: translate {tt:F1} ms, plan {sw.Elapsed.TotalMilliseconds:F1} ms, ops {plan.Ops.Count}");
    state = plan.Next;
    store.Upsert(ScaleModel.Slice(round, eps, generation: round + 2));
}
Console.WriteLine($"managed heap {GC.GetTotalMemory(true) / 1048576} MiB, working set {Environment.WorkingSet / 1048576} MiB");
