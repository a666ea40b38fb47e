using EbpfProxy.Core.Cluster;
using EbpfProxy.Core.Policy;
using k8s;
using k8s.Models;

namespace EbpfProxy.Core.Tests.Policy;

/// <summary>
/// Manifests in, policy maps out. Each folder under testdata/policy holds input.yaml (Namespaces,
/// Pods, NetworkPolicies, optionally this Node), optionally node.txt (the node's name, default
/// node-1) and expected.txt: identities, ipcache, endpoints, rules per endpoint, errors, as
/// <see cref="PolicyStateFormatter"/> renders them. Set EBPF_PROXY_UPDATE_GOLDEN=1 to rewrite
/// expected.txt from the source tree (then review the diff).
/// </summary>
public class PolicyGoldenTests
{
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var dir in Directory.GetDirectories(Path.Combine(AppContext.BaseDirectory, "testdata", "policy")).Order())
            data.Add(Path.GetFileName(dir));
        return data;
    }

    internal static ClusterSnapshot Load(string yaml)
    {
        var store = new ClusterStore();
        foreach (var obj in KubernetesYaml.LoadAllFromString(yaml))
            store.Upsert((IKubernetesObject<V1ObjectMeta>)obj);
        return store.Snapshot();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Computes(string name)
    {
        var dir = Path.Combine(AppContext.BaseDirectory, "testdata", "policy", name);
        var snapshot = Load(File.ReadAllText(Path.Combine(dir, "input.yaml")));
        var nodeFile = Path.Combine(dir, "node.txt");
        var nodeName = File.Exists(nodeFile) ? File.ReadAllLines(nodeFile)[0].Trim() : "node-1";

        var translator = new PolicyTranslator(nodeName);
        var actual = PolicyStateFormatter.ToText(translator.Compute(snapshot));
        // A second computation of the same snapshot must change nothing (stable numbers, no leftovers).
        Assert.Equal(actual, PolicyStateFormatter.ToText(translator.Compute(snapshot)));

        var expectedFile = Path.Combine(dir, "expected.txt");
        if (Environment.GetEnvironmentVariable("EBPF_PROXY_UPDATE_GOLDEN") == "1")
        {
            File.WriteAllText(Path.Combine(SourceDir(), "..", "testdata", "policy", name, "expected.txt"), actual);
            return;
        }
        Assert.True(File.Exists(expectedFile), $"missing {expectedFile}; run with EBPF_PROXY_UPDATE_GOLDEN=1 and review");
        Assert.Equal(File.ReadAllText(expectedFile), actual);
    }

    private static string SourceDir([System.Runtime.CompilerServices.CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;
}
