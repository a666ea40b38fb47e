namespace EbpfProxy.Kubernetes.Manifests;

/// <summary>
/// Bounds on what one manifest file may cost to read, so a hostile or broken file (a YAML alias
/// bomb, a FIFO, a symlink to <c>/dev/zero</c>, a file of many gigabytes) is refused by name
/// instead of hanging or growing the daemon. Real manifests stay far inside them.
/// </summary>
/// <remarks>
/// The alias bound follows go-yaml, which the API server's YAML reader uses: it refuses documents
/// with "excessive aliasing" once aliases expand to far more nodes than the text holds. Here the
/// rule is simpler: the nodes that aliases add, counted as if expanded, may not pass
/// <see cref="MaxAliasNodes"/>.
/// </remarks>
public sealed record ManifestReadLimits
{
    /// <summary>The defaults: 8 MiB, 100,000 nodes through aliases, 100 levels of nesting.</summary>
    public static ManifestReadLimits Default { get; } = new();

    /// <summary>Largest file read; larger ones are refused (kubectl's own limit for a request is 3 MiB).</summary>
    public long MaxFileBytes { get; init; } = 8L * 1024 * 1024;

    /// <summary>Most YAML nodes that aliases may add to one document, counted as if expanded.</summary>
    public long MaxAliasNodes { get; init; } = 100_000;

    /// <summary>Deepest nesting of YAML mappings and sequences (the deserializer recurses per level).</summary>
    public int MaxDepth { get; init; } = 100;
}
