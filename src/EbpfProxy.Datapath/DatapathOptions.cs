namespace EbpfProxy.Datapath;

/// <summary>How the interface programs are attached.</summary>
public enum AttachMode
{
    /// <summary>tcx links when the kernel has them (6.6+), else clsact filters.</summary>
    Auto,
    /// <summary>tcx links (BPF_TCX_INGRESS/EGRESS) pinned under the pin path; fails on older kernels.</summary>
    Tcx,
    /// <summary>Direct-action bpf filters on a clsact qdisc, ebpf-proxy's handle and priority.</summary>
    Tc,
}

/// <summary>Where the datapath lives and how large its maps are. Validated at start-up.</summary>
public sealed class DatapathOptions
{
    /// <summary>The bpffs mount; mounted there when absent, as Cilium's agent does.</summary>
    public string BpfFsRoot { get; set; } = "/sys/fs/bpf";

    /// <summary>Folder under <see cref="BpfFsRoot"/> holding ebpf-proxy's pinned maps.</summary>
    public string PinDirectoryName { get; set; } = "ebpf-proxy";

    public string PinPath => Path.Combine(BpfFsRoot, PinDirectoryName);

    /// <summary>Folder holding the compiled BPF objects (pod.bpf.o); by default next to the executable.</summary>
    public string ObjectDirectory { get; set; } = AppContext.BaseDirectory;

    /// <summary>Interface name globs that are pods' host-side veths ("from pod" / "to pod").</summary>
    public IList<string> PodInterfaces { get; set; } = ["veth*", "lxc*", "cali*"];

    /// <summary>
    /// Interface name globs of the node's network devices ("from netdev" / "to netdev": traffic of
    /// other nodes and outside clients). Empty: every non-pod interface holding a global IPv4 address.
    /// </summary>
    public IList<string> NetdevInterfaces { get; set; } = [];

    /// <summary>--cluster-cidr: the pods' addresses. ClusterIP traffic from outside it is masqueraded.</summary>
    public System.Net.IPNetwork? ClusterCidr { get; set; }

    /// <summary>--masquerade-all: masquerade ClusterIP traffic from pods too.</summary>
    public bool MasqueradeAll { get; set; }

    /// <summary>
    /// The address masqueraded traffic leaves with. Null: the node's primary address (first
    /// InternalIP of its Node object, else the first NodePort address, else the first global
    /// address of a netdev).
    /// </summary>
    public System.Net.IPAddress? MasqueradeAddress { get; set; }

    /// <summary>
    /// Translate services for the node's own processes (host network) with cgroup socket hooks.
    /// </summary>
    public bool HostServices { get; set; } = true;

    /// <summary>The cgroup v2 directory the socket hooks attach to; null: the cgroup2 mount's root (mounted when absent).</summary>
    public string? CgroupRoot { get; set; }

    /// <summary>
    /// How often the interface list is re-scanned. New interfaces are attached on netlink events as
    /// they appear; the scan is the safety net (and the only way when the netlink socket cannot be
    /// opened, then every second).
    /// </summary>
    public TimeSpan InterfaceScanInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>--attach-mode: how the tc programs are attached (tcx links where the kernel has them, else clsact filters).</summary>
    public AttachMode AttachMode { get; set; } = AttachMode.Auto;

    /// <summary>
    /// The service CIDR (--service-cidr): inside it, an address that is no ClusterIP is dropped.
    /// Null: not configured (such traffic passes).
    /// </summary>
    public System.Net.IPNetwork? ServiceCidr { get; set; }

    /// <summary>lb4_services: one entry per frontend (slot 0) and per backend slot of each (--services-max).</summary>
    public uint ServicesMax { get; set; } = 262144;
    /// <summary>lb4_backends: distinct backend address, port and protocol (--backends-max).</summary>
    public uint BackendsMax { get; set; } = 262144;
    /// <summary>Frontend ids: lb4_reverse_nat, lb_names, lb_svc_conns; ids are 16-bit, so at most 65536 (--frontends-max).</summary>
    public uint RevNatMax { get; set; } = 65536;
    /// <summary>ct4, service connections and their replies (LRU; --conntrack-max; by default from memory, <see cref="MapSizing"/>).</summary>
    public uint ConntrackMax { get; set; } = 524288;
    /// <summary>snat4, masqueraded connections (LRU; --masquerade-max; by default from memory).</summary>
    public uint MasqueradeMax { get; set; } = 262144;
    /// <summary>lb4_sock_revnat, host sockets the socket hooks translated (LRU; --sock-revnat-max; by default from memory).</summary>
    public uint SockRevNatMax { get; set; } = 65536;
    /// <summary>lb4_affinity, ClientIP session-affinity pins (LRU; --affinity-max; by default from memory).</summary>
    public uint AffinityMax { get; set; } = 65536;
    /// <summary>lb4_src_range, loadBalancerSourceRanges prefixes of all frontends (--source-ranges-max).</summary>
    public uint SourceRangesMax { get; set; } = 65536;
    /// <summary>frag4, fragmented datagrams in flight (LRU; --fragments-max).</summary>
    public uint FragmentsMax { get; set; } = 8192;
    /// <summary>Each event ring buffer (drop_events, flow_events) in bytes, a power of two of at least a page (--events-bytes).</summary>
    public uint DropEventsBytes { get; set; } = 256 * 1024;

    /// <summary>NetworkPolicy: address prefixes with an identity (every pod of the cluster, ipBlocks, node addresses); also sizes pol_id_names (every identity holds a prefix).</summary>
    public uint PolicyIpcacheMax { get; set; } = 262144;
    /// <summary>NetworkPolicy: local pods some policy selects; also sizes pol_ep_names (every local pod's address).</summary>
    public uint PolicyEndpointsMax { get; set; } = 16384;
    /// <summary>NetworkPolicy: rule entries of all local endpoints.</summary>
    public uint PolicyRulesMax { get; set; } = 262144;
    /// <summary>NetworkPolicy: connections local pods' policies admitted (pol_ct4, LRU; --policy-conntrack-max).</summary>
    public uint PolicyConntrackMax { get; set; } = 262144;

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(BpfFsRoot) || !Path.IsPathRooted(BpfFsRoot))
            throw new ArgumentException($"bpffs root '{BpfFsRoot}' must be an absolute path");
        if (string.IsNullOrWhiteSpace(PinDirectoryName) || PinDirectoryName.Contains('/'))
            throw new ArgumentException($"pin directory name '{PinDirectoryName}' must be a single path component");
        if (PodInterfaces.Count == 0)
            throw new ArgumentException("at least one pod interface glob is required");
        if (RevNatMax is 0 or > 65536)
            throw new ArgumentException($"--frontends-max {RevNatMax} must be within 1..65536 (frontend ids are 16-bit)");
        if (ServiceCidr is { } cidr && cidr.BaseAddress.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
            throw new ArgumentException($"--service-cidr {cidr}: only IPv4 is supported so far");
        if (ClusterCidr is { } cc && cc.BaseAddress.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
            throw new ArgumentException($"--cluster-cidr {cc}: only IPv4 is supported so far");
        if (MasqueradeAddress is { } ma && ma.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
            throw new ArgumentException($"--masquerade-address {ma}: only IPv4 is supported so far");
        foreach (var (flag, size) in new[]
        {
            ("--services-max", ServicesMax), ("--backends-max", BackendsMax), ("--conntrack-max", ConntrackMax), ("--masquerade-max", MasqueradeMax),
            ("--sock-revnat-max", SockRevNatMax), ("--affinity-max", AffinityMax), ("--source-ranges-max", SourceRangesMax), ("--fragments-max", FragmentsMax),
            ("--policy-ipcache-max", PolicyIpcacheMax), ("--policy-endpoints-max", PolicyEndpointsMax), ("--policy-rules-max", PolicyRulesMax),
            ("--policy-conntrack-max", PolicyConntrackMax),
        })
        {
            if (size is 0 or > MapSizing.MaxEntries)
                throw new ArgumentException($"{flag} {size} must be within 1..{MapSizing.MaxEntries}");
        }
        if (DropEventsBytes < 4096 || (DropEventsBytes & (DropEventsBytes - 1)) != 0)
            throw new ArgumentException($"--events-bytes {DropEventsBytes} must be a power of two of at least 4096 (a ring buffer's size)");
    }
}
