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

    /// <summary>
    /// Longest time one file may take to be read and parsed. A file that takes longer (a stalled
    /// network file system) is reported and keeps its previous content; it is not read again
    /// until the slow read has finished.
    /// </summary>
    public TimeSpan FileReadTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a file that looks caught in a rewrite (it now holds no object, or an invalid one,
    /// where it had objects before: an editor or a script truncating it before writing it again)
    /// must stay unchanged before the objects it lost are removed. Until then the file's previous
    /// objects stay. A valid file with fewer objects, and deleting the file, apply at once.
    /// </summary>
    public TimeSpan SettleTime { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>Size, alias and nesting bounds for each file.</summary>
    public ManifestReadLimits Limits { get; set; } = ManifestReadLimits.Default;

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
        if (FileReadTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(FileReadTimeout), FileReadTimeout, "must be positive");
        if (SettleTime < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(SettleTime), SettleTime, "must not be negative");
        ArgumentNullException.ThrowIfNull(Limits);
    }
}
