using System.CommandLine;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Health;
using EbpfProxy.Core.Metrics;
using EbpfProxy.Daemon;
using EbpfProxy.Datapath;
using EbpfProxy.Datapath.Loading;
using EbpfProxy.Kubernetes.Api;
using EbpfProxy.Kubernetes.Manifests;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EbpfProxy.Commands;

/// <summary>`ebpf-proxy run`: the daemon.</summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var manifests = new Option<string?>("--manifests") { Description = "standalone mode: follow the Kubernetes YAML/JSON manifests in this folder instead of an API server" };
        var kubeconfig = new Option<string?>("--kubeconfig") { Description = "kubeconfig of the API server (default: the in-cluster service account)" };
        var nodeName = new Option<string>("--node-name")
        {
            Description = "this node's name (default: $NODE_NAME, else the host name)",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("NODE_NAME") is { Length: > 0 } n ? n : Environment.MachineName,
        };
        var bpffs = CommonOptions.BpfFs();
        var bpfDir = new Option<string>("--bpf-dir") { Description = "folder holding the compiled BPF objects", DefaultValueFactory = _ => AppContext.BaseDirectory };
        var podInterfaces = new Option<string[]>("--pod-interfaces")
        {
            Description = "globs of pod host-side interfaces",
            DefaultValueFactory = _ => ["veth*", "lxc*", "cali*"],
            AllowMultipleArgumentsPerToken = true,
        };
        var minSync = new Option<double>("--min-sync-interval") { Description = "seconds between two syncs at least (kube-proxy's --min-sync-period)", DefaultValueFactory = _ => 1.0 };
        var syncPeriod = new Option<double>("--sync-period") { Description = "seconds between full resyncs that heal drift in the maps", DefaultValueFactory = _ => 30.0 };
        var serviceCidr = new Option<string?>("--service-cidr") { Description = "the cluster's service CIDR: unallocated addresses in it are dropped, as kube-proxy's nftables mode does" };
        var nodePortAddresses = new Option<string[]>("--nodeport-addresses")
        {
            Description = "CIDRs of the local addresses NodePorts are served on (default: primary, the node's addresses)",
            AllowMultipleArgumentsPerToken = true,
        };
        var netdevInterfaces = new Option<string[]>("--netdev-interfaces")
        {
            Description = "globs of the node's network devices (NodePort/ExternalIP/LB traffic from outside); default: every non-pod interface with a global IPv4 address",
            AllowMultipleArgumentsPerToken = true,
        };
        var clusterCidr = new Option<string?>("--cluster-cidr") { Description = "the pods' CIDR: ClusterIP traffic from outside it is masqueraded (kube-proxy's --cluster-cidr)" };
        var masqueradeAll = new Option<bool>("--masquerade-all") { Description = "masquerade all service traffic, pods included (kube-proxy's --masquerade-all)" };
        var masqueradeAddress = new Option<string?>("--masquerade-address") { Description = "the address masqueraded traffic leaves with (default: the node's primary address)" };
        var hostServices = new Option<bool>("--host-services")
        {
            Description = "translate services for the node's own processes (host network) with cgroup socket hooks",
            DefaultValueFactory = _ => true,
        };
        var cgroupRoot = new Option<string?>("--cgroup-root") { Description = "cgroup v2 directory the socket hooks attach to (default: the cgroup2 mount, mounted at /run/ebpf-proxy/cgroupv2 when absent)" };
        var healthz = new Option<string>("--healthz-bind-address") { Description = "where /healthz and /livez are served; empty disables", DefaultValueFactory = _ => "0.0.0.0:10256" };
        var metrics = new Option<string>("--metrics-bind-address") { Description = "where /metrics (Prometheus text format) is served; empty disables", DefaultValueFactory = _ => "0.0.0.0:10249" };
        var metricsMapInterval = new Option<double>("--metrics-map-interval") { Description = "seconds between walks of the pinned maps for their fill (scrapes serve the last walk)", DefaultValueFactory = _ => 30 };
        var attachMode = new Option<AttachMode>("--attach-mode")
        {
            Description = "how the tc programs attach: auto (tcx links where the kernel has them, 6.6+, else clsact), tcx, tc (clsact filters)",
            DefaultValueFactory = _ => AttachMode.Auto,
        };
        // Map sizes (docs/datapath.md, "Map sizes"). 0 for a connection map: sized from the node's memory (MapSizing).
        var sizeRatio = new Option<double>("--map-dynamic-size-ratio") { Description = "share of the node's memory for the connection maps whose size is not given (Cilium's --bpf-map-dynamic-size-ratio); 0: fixed defaults", DefaultValueFactory = _ => MapSizing.DefaultRatio };
        var ctMax = new Option<uint>("--conntrack-max") { Description = "service conntrack map size, entries (a connection takes two; default: from memory)" };
        var polCtMax = new Option<uint>("--policy-conntrack-max") { Description = "NetworkPolicy conntrack map size (connections local pods' policies admitted; default: from memory)" };
        var masqMax = new Option<uint>("--masquerade-max") { Description = "masquerade map size, connections (default: from memory)" };
        var sockMax = new Option<uint>("--sock-revnat-max") { Description = "host-socket reverse translation map size (default: from memory)" };
        var affinityMax = new Option<uint>("--affinity-max") { Description = "session affinity map size, client and service pairs (default: from memory)" };
        var servicesMax = new Option<uint>("--services-max") { Description = "services map size: a frontend takes 1 + its backends", DefaultValueFactory = _ => 262144u };
        var backendsMax = new Option<uint>("--backends-max") { Description = "backends map size: distinct backend address, port and protocol", DefaultValueFactory = _ => 262144u };
        var frontendsMax = new Option<uint>("--frontends-max") { Description = "frontend ids (rev-NAT map size): one per service IP and port, NodePort and LB address; at most 65536", DefaultValueFactory = _ => 65536u };
        var srcRangesMax = new Option<uint>("--source-ranges-max") { Description = "loadBalancerSourceRanges map size: prefixes of all frontends", DefaultValueFactory = _ => 65536u };
        var fragMax = new Option<uint>("--fragments-max") { Description = "fragment map size: fragmented datagrams in flight", DefaultValueFactory = _ => 8192u };
        var ipcacheMax = new Option<uint>("--policy-ipcache-max") { Description = "NetworkPolicy ipcache size: pod addresses, ipBlocks and node addresses", DefaultValueFactory = _ => 262144u };
        var polEpMax = new Option<uint>("--policy-endpoints-max") { Description = "NetworkPolicy endpoints map size: local pods", DefaultValueFactory = _ => 16384u };
        var polRulesMax = new Option<uint>("--policy-rules-max") { Description = "NetworkPolicy rules map size: rule entries of all local pods", DefaultValueFactory = _ => 262144u };
        var eventsBytes = new Option<uint>("--events-bytes") { Description = "size of each event ring buffer (drops, flows) in bytes (a power of two)", DefaultValueFactory = _ => 256u * 1024 };

        var cmd = new Command("run", "run the proxy daemon on this node")
        {
            manifests, kubeconfig, nodeName, bpffs, bpfDir, podInterfaces, netdevInterfaces, minSync, syncPeriod, serviceCidr, clusterCidr,
            masqueradeAll, masqueradeAddress, nodePortAddresses, hostServices, cgroupRoot, healthz, metrics, metricsMapInterval, ctMax, polCtMax,
            sizeRatio, masqMax, sockMax, affinityMax, servicesMax, backendsMax, frontendsMax, srcRangesMax, fragMax, ipcacheMax, polEpMax, polRulesMax, eventsBytes, attachMode,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var proxyOptions = new ProxyOptions
            {
                ManifestsDirectory = parse.GetValue(manifests),
                KubeconfigPath = parse.GetValue(kubeconfig),
                HealthzBindAddress = parse.GetValue(healthz) ?? "",
                MetricsBindAddress = parse.GetValue(metrics) ?? "",
                MetricsMapInterval = TimeSpan.FromSeconds(parse.GetValue(metricsMapInterval)),
                NodeName = parse.GetValue(nodeName) ?? "",
                MinSyncInterval = TimeSpan.FromSeconds(parse.GetValue(minSync)),
                SyncPeriod = TimeSpan.FromSeconds(parse.GetValue(syncPeriod)),
            };
            var datapathOptions = new DatapathOptions
            {
                BpfFsRoot = parse.GetValue(bpffs)!,
                ObjectDirectory = parse.GetValue(bpfDir)!,
                PodInterfaces = [.. parse.GetValue(podInterfaces)!.SelectMany(s => s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))],
                NetdevInterfaces = [.. (parse.GetValue(netdevInterfaces) ?? []).SelectMany(s => s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))],
                MasqueradeAll = parse.GetValue(masqueradeAll),
                HostServices = parse.GetValue(hostServices),
                CgroupRoot = parse.GetValue(cgroupRoot),
                ConntrackMax = parse.GetValue(ctMax),
                PolicyConntrackMax = parse.GetValue(polCtMax),
                AttachMode = parse.GetValue(attachMode),
                MasqueradeMax = parse.GetValue(masqMax),
                SockRevNatMax = parse.GetValue(sockMax),
                AffinityMax = parse.GetValue(affinityMax),
                ServicesMax = parse.GetValue(servicesMax),
                BackendsMax = parse.GetValue(backendsMax),
                RevNatMax = parse.GetValue(frontendsMax),
                SourceRangesMax = parse.GetValue(srcRangesMax),
                FragmentsMax = parse.GetValue(fragMax),
                PolicyIpcacheMax = parse.GetValue(ipcacheMax),
                PolicyEndpointsMax = parse.GetValue(polEpMax),
                PolicyRulesMax = parse.GetValue(polRulesMax),
                DropEventsBytes = parse.GetValue(eventsBytes),
            };
            try
            {
                if (proxyOptions.ManifestsDirectory is null)
                    new KubernetesApiSourceOptions { KubeconfigPath = proxyOptions.KubeconfigPath, NodeName = proxyOptions.NodeName }.Validate();
                var nodePortCidrs = new List<System.Net.IPNetwork>();
                foreach (var text in (parse.GetValue(nodePortAddresses) ?? []).SelectMany(s => s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
                {
                    if (text == "primary")
                        continue;
                    nodePortCidrs.Add(System.Net.IPNetwork.TryParse(text, out var n)
                        ? n
                        : throw new ArgumentException($"--nodeport-addresses '{text}' is not a CIDR or 'primary'"));
                }
                proxyOptions.NodePortCidrs = nodePortCidrs;
                if (parse.GetValue(serviceCidr) is { Length: > 0 } cidrText)
                    datapathOptions.ServiceCidr = System.Net.IPNetwork.TryParse(cidrText.Trim(), out var cidr)
                        ? cidr
                        : throw new ArgumentException($"--service-cidr '{cidrText}' is not a CIDR (for example 10.96.0.0/12)");
                if (parse.GetValue(clusterCidr) is { Length: > 0 } clusterText)
                    datapathOptions.ClusterCidr = System.Net.IPNetwork.TryParse(clusterText.Trim(), out var cc)
                        ? cc
                        : throw new ArgumentException($"--cluster-cidr '{clusterText}' is not a CIDR (for example 10.244.0.0/16)");
                if (parse.GetValue(masqueradeAddress) is { Length: > 0 } masqText)
                    datapathOptions.MasqueradeAddress = System.Net.IPAddress.TryParse(masqText.Trim(), out var ma)
                        ? ma
                        : throw new ArgumentException($"--masquerade-address '{masqText}' is not an IP address");
                MapSizing.Apply(datapathOptions, MapSizing.TotalMemory(), parse.GetValue(sizeRatio));
                proxyOptions.Validate();
                datapathOptions.Validate();
            }
            catch (ArgumentException ex)
            {
                await Console.Error.WriteLineAsync($"ebpf-proxy run: {ex.Message}").ConfigureAwait(false);
                return 2;
            }
            if (!Privileges.RequireLoader("run"))
                return 1;
            return await RunDaemonAsync(proxyOptions, datapathOptions, ct).ConfigureAwait(false);
        });
        return cmd;
    }

    private static async Task<int> RunDaemonAsync(ProxyOptions options, DatapathOptions datapath, CancellationToken ct)
    {
        // The generic host's defaults, but without reloading appsettings.json on change: that
        // watches the content root (the working directory, "/" in a pod) recursively with inotify
        // at start-up, for a file the daemon does not use.
        var configuration = new ConfigurationManager();
        configuration.AddInMemoryCollection([new("hostBuilder:reloadConfigOnChange", "false")]);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Configuration = configuration });
        builder.Logging.ClearProviders();
        // Kestrel logs each request at Information: scrapes and probes every few seconds.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
            o.UseUtcTimestamp = true;
        });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(datapath);
        builder.Services.AddSingleton<ClusterStore>();
        builder.Services.AddDaemonTelemetry(options, datapath);
        builder.Services.AddSingleton(sp => new ProxyHealth(sp.GetRequiredService<TimeProvider>(), options.HealthTimeout, options.SyncPeriod));
        builder.Services.AddSingleton<ProxyStatus>();
        builder.Services.AddHostedService<DaemonHttpServer>();
        if (options.ManifestsDirectory is not null)
            builder.Services.AddManifestSource(options.ManifestsDirectory);
        else
            builder.Services.AddKubernetesApiSource(new KubernetesApiSourceOptions { KubeconfigPath = options.KubeconfigPath, NodeName = options.NodeName });
        builder.Services.AddHostedService<PinFolderLockService>(); // before ProxyService: one daemon per pin folder
        builder.Services.AddHostedService<ProxyService>();

        using var host = builder.Build();
        try
        {
            await host.RunAsync(ct).ConfigureAwait(false);
        }
        catch (PinFolderBusyException ex)
        {
            await Console.Error.WriteLineAsync($"ebpf-proxy run: {ex.Message}").ConfigureAwait(false);
            return 1;
        }
        return Environment.ExitCode;
    }
}
