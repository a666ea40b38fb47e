using System.Net;

namespace EbpfProxy.Kubernetes.Manifests;

/// <summary>
/// Strict textual IP parsing: <see cref="IPAddress.TryParse(string?, out IPAddress?)"/> also
/// accepts shorthand such as "10.244.0" (read as 10.244.0.0), which in a manifest is a typo.
/// </summary>
internal static class IPText
{
    public static bool TryParse(string? text, out IPAddress address)
    {
        address = IPAddress.None;
        if (string.IsNullOrEmpty(text))
            return false;
        var looksLikeV6 = text.Contains(':', StringComparison.Ordinal);
        if (!looksLikeV6 && text.Count(c => c == '.') != 3)
            return false;
        if (!IPAddress.TryParse(text, out var parsed))
            return false;
        address = parsed;
        return true;
    }

    public static bool IsValid(string? text) => TryParse(text, out _);
}
