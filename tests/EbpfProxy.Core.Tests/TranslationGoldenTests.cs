using System.Collections.Immutable;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Planning;
using EbpfProxy.Core.Translation;
using k8s;
using k8s.Models;

namespace EbpfProxy.Core.Tests;

/// <summary>
/// Manifests in, map contents out. Each folder under testdata/translation holds input.yaml (and
/// optionally node.txt with the node name) and expected.txt: the maps as `lb list` renders them
/// after programming from empty maps, followed by the translation errors. Set
/// EBPF_PROXY_UPDATE_GOLDEN=1 to rewrite expected.txt from the source tree (then review the diff).
/// </summary>
public class TranslationGoldenTests
{
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var dir in Directory.GetDirectories(Path.Combine(AppContext.BaseDirectory, "testdata", "translation")).Order())
            data.Add(Path.GetFileName(dir));
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Translates(string name)
    {
        var dir = Path.Combine(AppContext.BaseDirectory, "testdata", "translation", name);
        var store = new ClusterStore();
        var objects = KubernetesYaml.LoadAllFromString(File.ReadAllText(Path.Combine(dir, "input.yaml")));
        store.ReplaceAll(objects.OfType<V1Service>(), objects.OfType<V1EndpointSlice>(), objects.OfType<V1Pod>());
        var nodeFile = Path.Combine(dir, "node.txt");
        // node.txt: the node's name on the first line, optionally "zone: <zone>" on the second.
        var nodeLines = File.Exists(nodeFile) ? File.ReadAllLines(nodeFile) : ["node-1"];
        var zone = nodeLines.Skip(1).FirstOrDefault(l => l.StartsWith("zone:", StringComparison.Ordinal))?["zone:".Length..].Trim();
        var addresses = nodeLines.Skip(1).FirstOrDefault(l => l.StartsWith("addresses:", StringComparison.Ordinal))?["addresses:".Length..]
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(System.Net.IPAddress.Parse).ToImmutableArray() ?? [];
        var node = new NodeContext(nodeLines[0].Trim(), zone, addresses);

        var result = ServiceTranslator.Translate(store.Snapshot(), node);
        var plan = LbPlanner.Plan(new LbState(), result.State);
        var actual = LbStateFormatter.ToText(plan.ApplyTo(new LbState()))
            + string.Concat(result.State.Frontends.Values
                .Where(f => !f.SourceRanges.IsEmpty)
                .OrderBy(f => f.Key.ToString(), StringComparer.Ordinal)
                .Select(f => $"source-ranges {f.Key}: {string.Join(", ", f.SourceRanges)}\n"))
            + string.Concat(result.Errors.Concat(plan.Errors).Select(e => $"error: {e}\n"));

        var expectedFile = Path.Combine(dir, "expected.txt");
        if (Environment.GetEnvironmentVariable("EBPF_PROXY_UPDATE_GOLDEN") == "1")
        {
            var source = Path.Combine(SourceDir(), "testdata", "translation", name, "expected.txt");
            File.WriteAllText(source, actual);
            return;
        }
        Assert.True(File.Exists(expectedFile), $"missing {expectedFile}; run with EBPF_PROXY_UPDATE_GOLDEN=1 and review");
        Assert.Equal(File.ReadAllText(expectedFile), actual);
    }

    private static string SourceDir([System.Runtime.CompilerServices.CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;
}
