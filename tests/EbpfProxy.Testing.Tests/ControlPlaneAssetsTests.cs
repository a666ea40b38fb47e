using EbpfProxy.Testing.RealApi;

namespace EbpfProxy.Testing.Tests;

public class ControlPlaneAssetsTests
{
    [Fact]
    public void Skip_decision_names_what_is_missing()
    {
        var dir = Directory.CreateTempSubdirectory("epx-assets-test-").FullName;
        try
        {
            Assert.Contains(ControlPlaneAssets.EnvironmentVariable + " is not set", ControlPlaneAssets.GetSkipReason(true, null, false));
            Assert.Equal(Privileged.SkipReason, ControlPlaneAssets.GetSkipReason(false, dir, false));
            Assert.Equal($"{ControlPlaneAssets.EnvironmentVariable}={dir} lacks etcd, kube-apiserver, kube-controller-manager", ControlPlaneAssets.GetSkipReason(true, dir, false));
            File.WriteAllText(Path.Combine(dir, "etcd"), "");
            File.WriteAllText(Path.Combine(dir, "kube-apiserver"), "");
            Assert.EndsWith("lacks kube-controller-manager", ControlPlaneAssets.GetSkipReason(true, dir, false));
            File.WriteAllText(Path.Combine(dir, "kube-controller-manager"), "");
            Assert.Null(ControlPlaneAssets.GetSkipReason(true, dir, false));
            // Required (CI): never a skip, whatever is missing; the test then fails naming it.
            Assert.Null(ControlPlaneAssets.GetSkipReason(false, null, true));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
