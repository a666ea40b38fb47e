using System.Net;
using System.Net.Sockets;

namespace EbpfProxy.Testing;

/// <summary>
/// Builds isolated test networks out of network namespaces and owns every namespace it creates.
/// </summary>
/// <remarks>
/// <para>Today: nodes (<see cref="AddNode"/>) with Calico-style pods (<see cref="Node.AddPod"/>): each pod
/// namespace has <c>eth0</c> with <c>ip/32</c> and a default route via the link-local gateway
/// <see cref="PodGateway"/> (169.254.1.1), which every host-side veth of the node holds; the node routes
/// <c>ip/32</c> to the pod's host veth and forwards between pods.</para>
/// <para>Nothing is ever attached to the root namespace: both veth ends are created directly in the
/// test namespaces (<c>ip -n POD link add eth0 type veth peer name vethX netns NODE</c>).</para>
/// <para><see cref="Dispose"/> deletes pods first, then extra namespaces, then nodes, and also cleans up
/// whatever a half-finished <c>Add…</c> call created. Methods are thread-safe.</para>
/// </remarks>
/// <example>
/// <code>
/// using var topo = Topology.Create();
/// var node = topo.AddNode("node");
/// var a = node.AddPod("a", IPAddress.Parse("10.0.0.1"));
/// var b = node.AddPod("b", IPAddress.Parse("10.0.0.2"));
/// using var server = EchoServer.StartTcp(b.Ns, b.Ip, 8080, "b");
/// string reply = await TcpProbe.RequestAsync(a.Ns, b.Ip, 8080, "hi", TimeSpan.FromSeconds(5)); // "b hi"
/// </code>
/// </example>
public sealed class Topology : IDisposable
{
    /// <summary>The pods' default gateway, held (as /32) by every host-side veth of a node.</summary>
    public static readonly IPAddress PodGateway = IPAddress.Parse("169.254.1.1");

    /// <summary>Name of the pod-side interface in every pod namespace.</summary>
    public const string PodInterfaceName = "eth0";

    private readonly Lock _gate = new();
    private readonly List<Node> _nodes = [];
    private readonly List<NetNs> _podNamespaces = [];
    private readonly List<NetNs> _extraNamespaces = [];
    private readonly List<NetNs> _nodeNamespaces = [];
    private bool _disposed;

    private Topology()
    {
    }

    /// <summary>Creates an empty topology. Calls <see cref="Privileged.EnsureRoot"/>.</summary>
    public static Topology Create()
    {
        Privileged.EnsureRoot();
        return new Topology();
    }

    /// <summary>The nodes, in creation order.</summary>
    public IReadOnlyList<Node> Nodes
    {
        get
        {
            lock (_gate)
            {
                return _nodes.ToArray();
            }
        }
    }

    /// <summary>The names of all namespaces currently owned by this topology.</summary>
    public IReadOnlyList<string> NamespaceNames
    {
        get
        {
            lock (_gate)
            {
                return _nodeNamespaces.Concat(_extraNamespaces).Concat(_podNamespaces).Select(n => n.Name).ToArray();
            }
        }
    }

    /// <summary>The node called <paramref name="name"/>.</summary>
    public Node this[string name] => Nodes.FirstOrDefault(n => n.Name == name)
        ?? throw new KeyNotFoundException($"No node '{name}' in this topology.");

    /// <summary>
    /// Adds a node: a namespace with <c>net.ipv4.ip_forward=1</c> and rp_filter disabled
    /// (<c>all</c> and <c>default</c>).
    /// </summary>
    public Node AddNode(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_nodes.Any(n => n.Name == name))
            {
                throw new ArgumentException($"A node named '{name}' already exists.", nameof(name));
            }
        }

        NetNs ns = NetNs.Create(name);
        Track(_nodeNamespaces, ns);
        ns.Sysctl("net.ipv4.ip_forward", "1");
        ns.Sysctl("net.ipv4.conf.all.rp_filter", "0");
        ns.Sysctl("net.ipv4.conf.default.rp_filter", "0");

        var node = new Node(this, name, ns);
        lock (_gate)
        {
            _nodes.Add(node);
        }
        return node;
    }

    /// <summary>
    /// Adds a bare namespace (only <c>lo</c> up) owned by this topology, e.g. an external client.
    /// Wiring it is up to the caller (using <c>ip -n</c>, never touching the root namespace).
    /// </summary>
    public NetNs AddNamespace(string role)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
        }
        NetNs ns = NetNs.Create(role);
        Track(_extraNamespaces, ns);
        return ns;
    }

    /// <summary>Deletes pods, then extra namespaces, then nodes. Best effort and idempotent; never throws.</summary>
    public void Dispose()
    {
        NetNs[] order;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            order = Enumerable.Reverse(_podNamespaces)
                .Concat(Enumerable.Reverse(_extraNamespaces))
                .Concat(Enumerable.Reverse(_nodeNamespaces))
                .ToArray();
        }
        foreach (NetNs ns in order)
        {
            try
            {
                ns.Dispose();
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"[EbpfProxy.Testing] cleanup of {ns.Name} failed: {e.Message}");
            }
        }
    }

    internal void TrackPod(NetNs ns) => Track(_podNamespaces, ns);

    internal void ThrowIfDisposed()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
        }
    }

    private void Track(List<NetNs> list, NetNs ns)
    {
        lock (_gate)
        {
            if (!_disposed)
            {
                list.Add(ns);
                return;
            }
        }
        // Disposed concurrently: do not leak.
        ns.Dispose();
        throw new ObjectDisposedException(nameof(Topology));
    }
}

/// <summary>A node of a <see cref="Topology"/>: a forwarding namespace that hosts pods.</summary>
public sealed class Node
{
    private readonly Lock _gate = new();
    private readonly List<Pod> _pods = [];

    internal Node(Topology topology, string name, NetNs ns)
    {
        Topology = topology;
        Name = name;
        Ns = ns;
    }

    /// <summary>The topology that owns this node.</summary>
    public Topology Topology { get; }

    /// <summary>The logical name given to <see cref="Topology.AddNode"/>.</summary>
    public string Name { get; }

    /// <summary>The node's network namespace (where the datapath's tc programs get attached).</summary>
    public NetNs Ns { get; }

    /// <summary>The pods of this node, in creation order.</summary>
    public IReadOnlyList<Pod> Pods
    {
        get
        {
            lock (_gate)
            {
                return _pods.ToArray();
            }
        }
    }

    /// <summary>The pod called <paramref name="name"/>.</summary>
    public Pod this[string name] => Pods.FirstOrDefault(p => p.Name == name)
        ?? throw new KeyNotFoundException($"No pod '{name}' on node '{Name}'.");

    /// <summary>
    /// Adds a pod: a namespace with <c>eth0</c> holding <paramref name="ip"/>/32, routes
    /// <c>169.254.1.1 dev eth0 scope link</c> and <c>default via 169.254.1.1</c>; on the node a host veth
    /// (<c>veth…</c>) holding 169.254.1.1/32, a route <c>ip/32 dev veth…</c> and rp_filter disabled on it.
    /// </summary>
    public Pod AddPod(string name, IPAddress ip)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(ip);
        if (ip.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException($"Pod addresses must be IPv4, got {ip}.", nameof(ip));
        }
        Topology.ThrowIfDisposed();
        lock (_gate)
        {
            if (_pods.Any(p => p.Name == name))
            {
                throw new ArgumentException($"A pod named '{name}' already exists on node '{Name}'.", nameof(name));
            }
            if (_pods.Any(p => p.Ip.Equals(ip)))
            {
                throw new ArgumentException($"A pod with address {ip} already exists on node '{Name}'.", nameof(ip));
            }
        }

        NetNs podNs = NetNs.Create(name);
        Topology.TrackPod(podNs); // from here on, Topology.Dispose removes it even if a step below fails

        string hostIf = Names.Interface("veth");
        string gw = Topology.PodGateway.ToString();
        const string eth0 = Topology.PodInterfaceName;

        // Both ends are created directly in test namespaces: nothing ever appears in the root namespace.
        podNs.Ip("link", "add", eth0, "type", "veth", "peer", "name", hostIf, "netns", Ns.Name);

        podNs.Ip("addr", "add", $"{ip}/32", "dev", eth0);
        podNs.Ip("link", "set", eth0, "up");
        podNs.Ip("route", "add", gw, "dev", eth0, "scope", "link");
        podNs.Ip("route", "add", "default", "via", gw, "dev", eth0);

        Ns.Ip("addr", "add", $"{gw}/32", "dev", hostIf);
        Ns.Ip("link", "set", hostIf, "up");
        Ns.Ip("route", "add", $"{ip}/32", "dev", hostIf);
        Ns.Sysctl($"net.ipv4.conf.{hostIf}.rp_filter", "0");

        var pod = new Pod(this, name, podNs, ip, hostIf, Ns.GetIfIndex(hostIf), podNs.GetIfIndex(eth0));
        lock (_gate)
        {
            _pods.Add(pod);
        }
        return pod;
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} ({Ns.Name})";
}

/// <summary>A pod on a <see cref="Node"/>.</summary>
public sealed class Pod
{
    internal Pod(Node node, string name, NetNs ns, IPAddress ip, string hostInterface, int hostIfIndex, int podIfIndex)
    {
        Node = node;
        Name = name;
        Ns = ns;
        Ip = ip;
        HostInterface = hostInterface;
        HostIfIndex = hostIfIndex;
        PodIfIndex = podIfIndex;
    }

    /// <summary>The node hosting this pod.</summary>
    public Node Node { get; }

    /// <summary>The logical name given to <see cref="Node.AddPod"/>.</summary>
    public string Name { get; }

    /// <summary>The pod's network namespace.</summary>
    public NetNs Ns { get; }

    /// <summary>The pod's address (on <c>eth0</c>, as /32).</summary>
    public IPAddress Ip { get; }

    /// <summary>Name of the host-side veth in the node namespace (starts with <c>veth</c>, at most 15 characters).</summary>
    public string HostInterface { get; }

    /// <summary>ifindex of <see cref="HostInterface"/> inside the node namespace.</summary>
    public int HostIfIndex { get; }

    /// <summary>Name of the pod-side interface (<c>eth0</c>).</summary>
    public string PodInterface => Topology.PodInterfaceName;

    /// <summary>ifindex of <c>eth0</c> inside the pod namespace.</summary>
    public int PodIfIndex { get; }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} {Ip} ({Ns.Name}, host {HostInterface}#{HostIfIndex})";
}
