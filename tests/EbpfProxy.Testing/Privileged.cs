using Xunit;
using EbpfProxy.Testing.Native;

namespace EbpfProxy.Testing;

/// <summary>
/// Decides whether privileged tests (netns, veth, tc, bpf) can run in this process.
/// </summary>
/// <remarks>
/// Privileged tests are skipped when the process is not root, unless the environment variable
/// <see cref="RequireEnvironmentVariable"/> is <c>"1"</c> (CI sets it): then they run and fail
/// loudly instead of silently skipping.
/// </remarks>
public static class Privileged
{
    /// <summary>Environment variable that forces privileged tests to run (and fail) when not root.</summary>
    public const string RequireEnvironmentVariable = "EBPF_PROXY_REQUIRE_PRIVILEGED";

    /// <summary>The skip reason used by <see cref="PrivilegedFactAttribute"/> and <see cref="PrivilegedTheoryAttribute"/>.</summary>
    public const string SkipReason = "requires root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)";

    /// <summary>True when the effective user id is 0.</summary>
    public static bool IsRoot => Libc.GetEuid() == 0;

    /// <summary>True when <see cref="RequireEnvironmentVariable"/> is set to <c>"1"</c>.</summary>
    public static bool IsRequired => Environment.GetEnvironmentVariable(RequireEnvironmentVariable) == "1";

    /// <summary>
    /// The reason to skip a privileged test in this process, or <c>null</c> to run it.
    /// </summary>
    public static string? GetSkipReason() => GetSkipReason(IsRoot, Environment.GetEnvironmentVariable(RequireEnvironmentVariable));

    /// <summary>Pure decision function behind <see cref="GetSkipReason()"/> (unit-testable).</summary>
    internal static string? GetSkipReason(bool isRoot, string? requireValue) =>
        isRoot || requireValue == "1" ? null : SkipReason;

    /// <summary>
    /// Throws <see cref="InvalidOperationException"/> unless running as root. Call it first in
    /// privileged tests and fixtures so a non-root run fails with a clear message rather than
    /// an obscure <c>ip</c> or <c>bpf()</c> error.
    /// </summary>
    public static void EnsureRoot()
    {
        if (!IsRoot)
        {
            throw new InvalidOperationException(
                $"This test needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN) but runs with euid {Libc.GetEuid()}. " +
                $"Run the tests as root (e.g. sudo dotnet test), or unset {RequireEnvironmentVariable} to skip them.");
        }
    }
}

/// <summary>
/// A <see cref="FactAttribute"/> that is skipped unless the process is root or
/// <c>EBPF_PROXY_REQUIRE_PRIVILEGED=1</c> (in which case it runs, and fails if not root).
/// </summary>
public sealed class PrivilegedFactAttribute : FactAttribute
{
    /// <summary>Creates the attribute and sets <see cref="FactAttribute.Skip"/> when appropriate.</summary>
    public PrivilegedFactAttribute()
    {
        string? reason = Privileged.GetSkipReason();
        if (reason is not null)
        {
            Skip = reason;
        }
    }
}

/// <summary>
/// A <see cref="TheoryAttribute"/> with the same skip rule as <see cref="PrivilegedFactAttribute"/>.
/// </summary>
public sealed class PrivilegedTheoryAttribute : TheoryAttribute
{
    /// <summary>Creates the attribute and sets <see cref="FactAttribute.Skip"/> when appropriate.</summary>
    public PrivilegedTheoryAttribute()
    {
        string? reason = Privileged.GetSkipReason();
        if (reason is not null)
        {
            Skip = reason;
        }
    }
}
