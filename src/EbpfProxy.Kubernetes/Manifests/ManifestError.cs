using System.Text;

namespace EbpfProxy.Kubernetes.Manifests;

/// <summary>
/// One problem found in the manifest directory: a file that does not parse, an object that is
/// invalid, or a conflict between files. <see cref="Document"/> is 1-based and counts every
/// YAML document of the file, empty ones included, so it matches the file's <c>---</c> separators.
/// </summary>
/// <param name="File">Full path of the file (or of the directory, for directory-level problems).</param>
/// <param name="Document">1-based document index inside the file, when known.</param>
/// <param name="Object">The object concerned, e.g. <c>Service default/echo</c>, when known.</param>
/// <param name="Message">What is wrong and what was done about it.</param>
public sealed record ManifestError(string File, int? Document, string? Object, string Message)
{
    public override string ToString() => $"{File}: {Location()}";

    /// <summary>Everything but the file: "document 2 (Service default/echo): message".</summary>
    internal string Location()
    {
        var text = new StringBuilder();
        if (Document is { } document)
            text.Append("document ").Append(document);
        if (Object is not null)
            text.Append(text.Length > 0 ? " (" : "(").Append(Object).Append(')');
        if (text.Length > 0)
            text.Append(": ");
        return text.Append(Message).ToString();
    }
}
