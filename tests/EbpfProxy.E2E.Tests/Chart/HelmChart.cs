using EbpfProxy.Testing;
using k8s;
using k8s.Models;

namespace EbpfProxy.E2E.Tests.Chart;

/// <summary>
/// charts/ebpf-proxy rendered as `helm template` renders it: by artifacts/chart-render (tools/chart-render,
/// Helm's engine: Go's text/template, sprig, Helm's functions, gojsonschema for values.schema.json), built by
/// `make build`. No helm binary can be installed on these machines.
/// </summary>
public static class HelmChart
{
    public const string Release = "ebpf-proxy";
    public const string Namespace = "kube-system";

    public static string ChartDir => Path.Combine(Binaries.RepoRoot, "charts", "ebpf-proxy");

    /// <summary>The chart-testing style values file that sets every option (charts/ebpf-proxy/ci/full-values.yaml).</summary>
    public static string FullValues => Path.Combine(ChartDir, "ci", "full-values.yaml");

    private static string Renderer
    {
        get
        {
            var path = Path.Combine(Binaries.RepoRoot, "artifacts", "chart-render");
            return File.Exists(path) ? path : throw new FileNotFoundException($"{path} not found: run `make build` (it builds the chart renderer)", path);
        }
    }

    /// <summary>Renders the manifests (or NOTES.txt) with the chart's values and <paramref name="valuesFiles"/> over them.</summary>
    public static CommandResult TryRender(IEnumerable<string> valuesFiles, bool notes = false, string release = Release, string ns = Namespace)
    {
        List<string> args = ["-name", release, "-namespace", ns];
        foreach (var f in valuesFiles)
            args.AddRange(["-f", f]);
        if (notes)
            args.Add("-notes");
        args.Add(ChartDir);
        return Cmd.TryRun(Renderer, [.. args]);
    }

    /// <summary>Renders and fails with the renderer's message when it refuses.</summary>
    public static string Render(params string[] valuesFiles)
    {
        var r = TryRender(valuesFiles);
        if (!r.Succeeded)
            throw new InvalidOperationException($"the chart did not render with [{string.Join(", ", valuesFiles)}]: {r.Stderr}");
        return r.Stdout;
    }

    /// <summary>The rendered documents, as YAML text, keyed by kind/name.</summary>
    public static Dictionary<string, string> Documents(string rendered)
    {
        var docs = new Dictionary<string, string>();
        foreach (var doc in rendered.Split("\n---\n", StringSplitOptions.RemoveEmptyEntries))
        {
            var text = doc.StartsWith("---\n", StringComparison.Ordinal) ? doc[4..] : doc;
            var kind = Field(text, "kind");
            var name = Field(text, "metadata", "name");
            Assert.True(docs.TryAdd($"{kind}/{name}", text), $"{kind}/{name} rendered twice");
        }
        return docs;
    }

    /// <summary>The rendered DaemonSet as the API's model.</summary>
    public static V1DaemonSet DaemonSet(string rendered) =>
        KubernetesYaml.Deserialize<V1DaemonSet>(Documents(rendered)[$"DaemonSet/{Release}"]);

    /// <summary>A top-level (or metadata's) scalar field of a YAML document, without a YAML model of its kind.</summary>
    private static string Field(string doc, string key, string? sub = null)
    {
        var map = (Dictionary<object, object>)new YamlDotNet.Serialization.Deserializer().Deserialize<object>(doc);
        var v = map[key];
        return sub is null ? (string)v : (string)((Dictionary<object, object>)v)[sub];
    }

    /// <summary>Writes <paramref name="yaml"/> to a values file under artifacts/chart-values (build output) and returns its path.</summary>
    public static string ValuesFile(string yaml)
    {
        var dir = Path.Combine(Binaries.RepoRoot, "artifacts", "chart-values");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, $"{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }
}
