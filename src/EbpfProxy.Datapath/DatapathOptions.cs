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

    public uint ServicesMax { get; set; } = 262144;
    public uint BackendsMax { get; set; } = 262144;
    public uint RevNatMax { get; set; } = 65536;
    public uint ConntrackMax { get; set; } = 524288;

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
            throw new ArgumentException($"rev-NAT map size {RevNatMax} must be within 1..65536 (ids are 16-bit)");
        if (ServiceCidr is { } cidr && cidr.BaseAddress.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
            throw new ArgumentException($"--service-cidr {cidr}: only IPv4 is supported so far");
        if (ClusterCidr is { } cc && cc.BaseAddress.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
            throw new ArgumentException($"--cluster-cidr {cc}: only IPv4 is supported so far");
        if (MasqueradeAddress is { } ma && ma.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
            throw new ArgumentException($"--masquerade-address {ma}: only IPv4 is supported so far");
        if (ServicesMax == 0 || BackendsMax == 0 || ConntrackMax == 0 || PolicyIpcacheMax == 0 || PolicyEndpointsMax == 0 || PolicyRulesMax == 0 || PolicyConntrackMax == 0)
            throw new ArgumentException("map sizes must be positive");
    }
}
