namespace EbpfProxy.Testing.KubeApi;

/// <summary>One request seen by <see cref="FakeKubeApiServer"/> (see <see cref="FakeKubeApiServer.RequestLog"/>).</summary>
/// <param name="Time">When the request was answered (for a watch: when its stream started).</param>
/// <param name="Method">HTTP method.</param>
/// <param name="Path">Request path, e.g. <c>/api/v1/namespaces/default/services</c>.</param>
/// <param name="Query">Raw query string including the leading <c>?</c>, or empty.</param>
/// <param name="IsWatch">True for <c>watch=1|true</c> or a <c>/watch/</c> path.</param>
/// <param name="StatusCode">Status sent (200 for a watch stream, also one that then carried a 410 ERROR event);
/// 0 when the connection was dropped by <see cref="FakeKubeApiServer.DropNextRequests"/>.</param>
/// <param name="Resource">Plural resource name (<c>services</c>…) or null for discovery and unknown paths.</param>
/// <param name="Verb"><c>list</c>, <c>watch</c>, <c>get</c>, another lower-case HTTP method for other methods on a
/// resource path, or null.</param>
/// <param name="Authorization">The <c>Authorization</c> header, if any.</param>
public sealed record KubeApiRequest(
    DateTimeOffset Time,
    string Method,
    string Path,
    string Query,
    bool IsWatch,
    int StatusCode,
    string? Resource,
    string? Verb,
    string? Authorization);
