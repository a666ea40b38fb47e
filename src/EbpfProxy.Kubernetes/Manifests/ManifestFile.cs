using System.Collections.Immutable;
using k8s.Models;

namespace EbpfProxy.Kubernetes.Manifests;

/// <summary>The objects one manifest file contributes, after validation and defaulting.</summary>
/// <param name="Path">Full path of the file.</param>
/// <param name="Services">Valid Services, namespace defaulted to <c>default</c>.</param>
/// <param name="EndpointSlices">Valid explicit EndpointSlices, namespace defaulted.</param>
/// <param name="Pods">Valid Pods, namespace defaulted.</param>
/// <param name="Errors">Objects that were skipped because they are invalid.</param>
/// <param name="Ignored">Documents of kinds this source does not read (Deployments, ConfigMaps, CRDs...).</param>
public sealed record ManifestFile(
    string Path,
    ImmutableArray<V1Service> Services,
    ImmutableArray<V1EndpointSlice> EndpointSlices,
    ImmutableArray<V1Pod> Pods,
    ImmutableArray<ManifestError> Errors,
    ImmutableArray<IgnoredManifest> Ignored)
{
    /// <summary>Valid NetworkPolicies (networking.k8s.io/v1), namespace defaulted.</summary>
    public ImmutableArray<V1NetworkPolicy> NetworkPolicies { get; init; } = [];

    /// <summary>Valid Namespaces (cluster-scoped): their labels feed namespaceSelectors.</summary>
    public ImmutableArray<V1Namespace> Namespaces { get; init; } = [];

    /// <summary>Valid Nodes (cluster-scoped): the daemon's own supplies its addresses and zone in standalone mode.</summary>
    public ImmutableArray<V1Node> Nodes { get; init; } = [];
}

/// <summary>A document whose kind the manifest source does not read.</summary>
/// <param name="Document">1-based document index.</param>
/// <param name="ApiVersion">The document's apiVersion.</param>
/// <param name="Kind">The document's kind.</param>
/// <param name="Name">metadata.name, when present.</param>
public sealed record IgnoredManifest(int Document, string ApiVersion, string Kind, string? Name);

/// <summary>
/// A manifest file that cannot be read as a whole (syntax error, a field of the wrong type). The
/// manifest source keeps the file's previous good content when this happens.
/// </summary>
public sealed class ManifestFormatException : Exception
{
    public ManifestFormatException(string file, int? document, string? objectName, string reason, Exception? innerException = null)
        : base(new ManifestError(file, document, objectName, reason).ToString(), innerException)
    {
        File = file;
        Document = document;
        ObjectName = objectName;
        Reason = reason;
    }

    /// <summary>Full path of the file.</summary>
    public string File { get; }

    /// <summary>1-based document index, when known.</summary>
    public int? Document { get; }

    /// <summary>The object being read, e.g. <c>Service default/echo</c>, when known.</summary>
    public string? ObjectName { get; }

    /// <summary>The parser's explanation, with line and column when known.</summary>
    public string Reason { get; }
}
