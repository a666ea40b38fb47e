using System.Globalization;
using System.Text;

namespace EbpfProxy.Kubernetes.Manifests;

/// <summary>
/// A cheap summary of the manifest files of a directory: name, size, modification time and final
/// symlink target of each. Two equal fingerprints mean "very probably unchanged"; the poll reads
/// the files only when the fingerprint moved. Symlink targets matter for ConfigMap volumes, where
/// <c>echo.yaml -&gt; ..data/echo.yaml</c> stays put and <c>..data</c> is swapped atomically.
/// </summary>
internal static class DirectoryFingerprint
{
    public const string Missing = "<missing>";

    public static string Compute(string directory)
    {
        try
        {
            var text = new StringBuilder();
            foreach (var file in new DirectoryInfo(directory).EnumerateFiles()
                         .Where(f => ManifestParser.IsManifestFileName(f.Name))
                         .OrderBy(f => f.Name, StringComparer.Ordinal))
            {
                text.Append(file.Name).Append('|');
                FileSystemInfo target = file;
                if (file.LinkTarget is not null)
                {
                    var resolved = file.ResolveLinkTarget(returnFinalTarget: true);
                    text.Append(resolved?.FullName).Append('|');
                    if (resolved is not null)
                        target = resolved;
                }
                target.Refresh();
                if (target.Exists)
                {
                    text.Append(target is FileInfo info ? info.Length : -1).Append('|')
                        .Append(target.LastWriteTimeUtc.Ticks.ToString(CultureInfo.InvariantCulture));
                }
                text.Append('\n');
            }
            return text.ToString();
        }
        catch (DirectoryNotFoundException)
        {
            return Missing;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Unreadable listing: report a value that differs from any real one, so the poll
            // reads and the read reports the error.
            return $"<error {ex.GetType().Name}>";
        }
    }
}
