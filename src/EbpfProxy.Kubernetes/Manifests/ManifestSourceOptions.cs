namespace EbpfProxy.Kubernetes.Manifests;

/// <summary>
/// Timing of <see cref="ManifestSource"/>. The defaults put an edit into the store in about a
/// tenth of a second when the file system watcher sees it, and within about a second when only
/// the poll does.
/// </summary>
public sealed class ManifestSourceOptions
{
    /// <summary>
    /// How often the directory listing (names, sizes, modification times, symlink targets) is
    /// compared with the one of the last read. Catches what the watcher misses.
    /// </summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Quiet period after a watcher event before reading, so a burst of writes is read once.</summary>
    public TimeSpan Debounce { get; set; } = TimeSpan.FromMilliseconds(75);

    /// <summary>Upper bound on the wait for a quiet period while events keep arriving.</summary>
    public TimeSpan MaxDebounce { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Reads everything again after this long even if the listing looks unchanged (an edit that
    /// keeps the size within one timestamp tick, missed by the watcher). Unchanged files cost a
    /// string comparison; unchanged objects are dropped by the store.
    /// </summary>
    public TimeSpan FullReadInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Use a FileSystemWatcher in addition to polling. Polling alone is slower, never wrong.</summary>
    public bool UseFileSystemWatcher { get; set; } = true;

    /// <summary>Throws when a value is out of range.</summary>
    public void Validate()
    {
        if (PollInterval <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(PollInterval), PollInterval, "must be positive");
        if (Debounce < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(Debounce), Debounce, "must not be negative");
        if (MaxDebounce < Debounce)
            throw new ArgumentOutOfRangeException(nameof(MaxDebounce), MaxDebounce, "must not be shorter than Debounce");
        if (FullReadInterval <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(FullReadInterval), FullReadInterval, "must be positive");
    }
}
