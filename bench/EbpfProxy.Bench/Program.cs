using System.CommandLine;
using EbpfProxy.Bench;

// `make bench`: see docs/benchmarks.md for what each run measures and the last figures.
var root = new RootCommand("ebpf-proxy benchmarks");

var exe = new Option<string>("--ebpf-proxy") { Description = "path to the ebpf-proxy executable", DefaultValueFactory = _ => "artifacts/bin/ebpf-proxy" };
var services = new Option<int>("--services") { DefaultValueFactory = _ => 10000 };
var eps = new Option<int>("--endpoints-per-service") { DefaultValueFactory = _ => 10 };
var pods = new Option<int>("--pods") { DefaultValueFactory = _ => 0 };
var changes = new Option<int>("--changes") { DefaultValueFactory = _ => 200 };
var apiScale = new Command("api-scale", "the daemon against the fake API server at scale (issue 3)") { exe, services, eps, pods, changes };
apiScale.SetAction((p, ct) => ApiScaleBench.RunAsync(p.GetValue(exe)!, p.GetValue(services), p.GetValue(eps), p.GetValue(pods), p.GetValue(changes)));
root.Add(apiScale);

var planner = new Command("control-plane", "translation and planning at scale, in process (no kernel)") { services, eps };
planner.SetAction(p => ControlPlaneProbe.Run(p.GetValue(services), p.GetValue(eps)));
root.Add(planner);

var policyCount = new Option<int>("--policies") { DefaultValueFactory = _ => 1000 };
var policyPods = new Option<int>("--pods") { DefaultValueFactory = _ => 10000 };
var nodes = new Option<int>("--nodes") { DefaultValueFactory = _ => 50 };
var runs = new Option<int>("--runs") { DefaultValueFactory = _ => 7 };
var broad = new Option<bool>("--broad") { Description = "one policy kind admits every pod of two thirds of the namespaces (the cost of broad selectors)" };
var bpfDir = new Option<string?>("--bpf-dir") { Description = "folder with pod.bpf.o: as root, also write the state into a real datapath and time a relabel to the map write" };
var policy = new Command("policy-scale", "NetworkPolicy computation at scale, in process (issue 5)") { policyPods, policyCount, nodes, runs, broad, bpfDir };
policy.SetAction(p => PolicyScaleProbe.Run(p.GetValue(policyPods), p.GetValue(policyCount), p.GetValue(nodes), p.GetValue(runs), p.GetValue(broad), p.GetValue(bpfDir)));
root.Add(policy);

return await root.Parse(args).InvokeAsync();
