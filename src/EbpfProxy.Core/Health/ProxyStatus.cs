namespace EbpfProxy.Core.Health;

/// <summary>What `ebpf-proxy status` shows: the last sync's outcome, and what could not be programmed.</summary>
public sealed record StatusReport
{
    public DateTimeOffset? LastSync { get; init; }
    public int Frontends { get; init; }
    /// <summary>Objects the service translation skipped, with the reason.</summary>
    public IReadOnlyList<string> ServiceErrors { get; init; } = [];
    /// <summary>Frontends the last plan left out of the maps (no frontend id, no room), one line per object.</summary>
    public IReadOnlyList<string> ProgramErrors { get; init; } = [];
    /// <summary>Manifest files and objects that are not applied (standalone mode), with the file.</summary>
    public IReadOnlyList<string> ManifestErrors { get; init; } = [];
    public int IsolatedPods { get; init; }
    public int PolicyRules { get; init; }
    /// <summary>NetworkPolicies and pods that could not be translated; what they select fails closed.</summary>
    public IReadOnlyList<string> PolicyErrors { get; init; } = [];
    /// <summary>The last policy pass the kernel refused part of (null after a good pass).</summary>
    public string? PolicyWriteError { get; init; }
    /// <summary>Pods whose isolation that failed pass forced on.</summary>
    public int PolicyFailedClosed { get; init; }
    /// <summary>How the interface programs are attached (null until the attach loop has run).</summary>
    public AttachStatus? Attach { get; init; }

    /// <summary>Everything skipped or left out: what `status` counts and exits 1 for.</summary>
    public int Skipped => ServiceErrors.Count + ProgramErrors.Count + ManifestErrors.Count;
}

/// <summary>How the interface programs are attached.</summary>
/// <param name="Mechanism">"tcx" (pinned tcx links) or "tc" (clsact filters).</param>
/// <param name="Interfaces">Interfaces that have the programs.</param>
/// <param name="Discovery">How new interfaces are found: "netlink events" or "polling".</param>
public sealed record AttachStatus(string Mechanism, int Interfaces, string Discovery);

/// <summary>The daemon's current <see cref="StatusReport"/>, updated by the sync loop, read by the health server.</summary>
public sealed class ProxyStatus
{
    private StatusReport _current = new();

    public StatusReport Current => Volatile.Read(ref _current);

    public void Update(Func<StatusReport, StatusReport> change)
    {
        StatusReport before, after;
        do
        {
            before = Volatile.Read(ref _current);
            after = change(before);
        }
        while (!ReferenceEquals(Interlocked.CompareExchange(ref _current, after, before), before));
    }
}
