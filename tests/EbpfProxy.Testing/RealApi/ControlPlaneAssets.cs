namespace EbpfProxy.Testing.RealApi;

/// <summary>
/// Where the real control plane's binaries are, envtest style (controller-runtime's envtest reads
/// <c>KUBEBUILDER_ASSETS</c>): <see cref="EnvironmentVariable"/> names a folder holding
/// <c>kube-apiserver</c>, <c>kube-controller-manager</c> and <c>etcd</c>. <c>make test</c> fills
/// <c>artifacts/k8s</c> (the <c>k8s-assets</c> target) and sets the variable.
/// </summary>
public static class ControlPlaneAssets
{
    /// <summary>The environment variable naming the folder.</summary>
    public const string EnvironmentVariable = "EBPF_PROXY_K8S_ASSETS";

    /// <summary>The programs the folder must hold.</summary>
    public static readonly string[] Programs = ["etcd", "kube-apiserver", "kube-controller-manager"];

    /// <summary>The folder, or null when the variable is unset or empty.</summary>
    public static string? Folder => Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } f ? f : null;

    /// <summary>Why the real-API tests cannot run here, or null when they can (root and every program present).</summary>
    public static string? GetSkipReason() => GetSkipReason(Privileged.IsRoot, Folder, Privileged.IsRequired);

    /// <summary>Pure decision behind <see cref="GetSkipReason()"/>: under <paramref name="required"/> nothing skips (a missing piece then fails the test).</summary>
    internal static string? GetSkipReason(bool isRoot, string? folder, bool required)
    {
        if (required)
            return null;
        if (!isRoot)
            return Privileged.SkipReason;
        if (folder is null)
            return $"{EnvironmentVariable} is not set (`make test` sets it after `make k8s-assets` decompressed kube-apiserver and kube-controller-manager)";
        var missing = Programs.Where(p => !File.Exists(Path.Combine(folder, p))).ToArray();
        return missing.Length == 0 ? null : $"{EnvironmentVariable}={folder} lacks {string.Join(", ", missing)}";
    }

    /// <summary>The path of <paramref name="program"/>; throws with the reason when it is missing.</summary>
    public static string Require(string program)
    {
        var folder = Folder ?? throw new InvalidOperationException(
            $"{EnvironmentVariable} is not set: run `make k8s-assets` and point it at artifacts/k8s (EBPF_PROXY_REQUIRE_PRIVILEGED=1 makes this a failure, not a skip)");
        var path = Path.Combine(folder, program);
        return File.Exists(path) ? path : throw new FileNotFoundException($"{path} not found ({EnvironmentVariable}={folder})", path);
    }
}

/// <summary>A fact that needs root and the control plane's binaries (<see cref="ControlPlaneAssets"/>); skipped with the reason otherwise.</summary>
public sealed class RealApiFactAttribute : Xunit.FactAttribute
{
    /// <summary>Sets <see cref="Xunit.FactAttribute.Skip"/> when the test cannot run here.</summary>
    public RealApiFactAttribute()
    {
        if (ControlPlaneAssets.GetSkipReason() is { } reason)
            Skip = reason;
    }
}
