using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace EbpfProxy.Testing;

/// <summary>
/// Generates names for everything the harness creates outside the process (network namespaces,
/// interfaces, temp directories) so that they are unique per run and per object, and so that
/// leftovers of crashed runs can be recognised and removed by <see cref="StaleCleanup"/>.
/// </summary>
/// <remarks>
/// <para>Namespace names look like <c>epx-&lt;run&gt;-&lt;n&gt;-&lt;role&gt;</c>, e.g. <c>epx-k3b-7-pod2</c>:
/// <c>run</c> is this process id in base 36 (the <em>owner pid</em>), <c>n</c> a per-process counter in
/// base 36, <c>role</c> the sanitized caller-supplied role (lowercase letters and digits, at most 12).</para>
/// <para>Temp paths look like <c>/tmp/epx-&lt;run&gt;-&lt;kind&gt;-&lt;n&gt;</c>.</para>
/// <para>Interface names are at most <see cref="MaxInterfaceNameLength"/> (15) characters (IFNAMSIZ - 1).</para>
/// </remarks>
public static class Names
{
    /// <summary>Prefix of every name this harness creates.</summary>
    public const string Prefix = "epx";

    /// <summary>Linux interface names hold at most 15 characters.</summary>
    public const int MaxInterfaceNameLength = 15;

    private const int MaxRoleLength = 12;
    private static int _counter;
    private static readonly ConcurrentDictionary<string, byte> Issued = new(StringComparer.Ordinal);

    /// <summary>Short identifier of this run: the process id in base 36.</summary>
    public static string RunId { get; } = ToBase36(Environment.ProcessId);

    /// <summary>A new unique network namespace name for <paramref name="role"/>, e.g. <c>epx-k3b-7-pod2</c>.</summary>
    public static string Namespace(string role)
    {
        string name = $"{Prefix}-{RunId}-{Next()}-{Sanitize(role, MaxRoleLength, "ns")}";
        Issued.TryAdd(name, 0);
        return name;
    }

    /// <summary>
    /// A new unique interface name starting with <paramref name="stem"/> (e.g. <c>veth</c>), made unique with
    /// the run id and a counter, at most 15 characters.
    /// </summary>
    /// <exception cref="ArgumentException">The stem leaves no room for the unique suffix.</exception>
    public static string Interface(string stem)
    {
        ArgumentException.ThrowIfNullOrEmpty(stem);
        string name = stem + RunId + Next();
        if (name.Length > MaxInterfaceNameLength)
        {
            throw new ArgumentException($"Interface name '{name}' would exceed {MaxInterfaceNameLength} characters; use a shorter stem.", nameof(stem));
        }
        return name;
    }

    /// <summary>A new unique path <c>/tmp/epx-&lt;run&gt;-&lt;kind&gt;-&lt;n&gt;</c> (not created).</summary>
    public static string TempPath(string kind)
    {
        string path = Path.Combine("/tmp", $"{Prefix}-{RunId}-{Sanitize(kind, MaxRoleLength, "tmp")}-{Next()}");
        Issued.TryAdd(Path.GetFileName(path), 0);
        return path;
    }

    /// <summary>
    /// Extracts the owner pid from a name created by <see cref="Namespace"/> or <see cref="TempPath"/>
    /// (a bare file/namespace name, not a full path). Returns false for anything else.
    /// </summary>
    public static bool TryGetOwnerPid(string name, out int pid)
    {
        pid = 0;
        string[] parts = name.Split('-');
        if (parts.Length < 4 || parts[0] != Prefix || parts[1].Length is 0 or > 7)
        {
            return false;
        }
        long value = 0;
        foreach (char c in parts[1])
        {
            int digit = c is >= '0' and <= '9' ? c - '0' : c is >= 'a' and <= 'z' ? c - 'a' + 10 : -1;
            if (digit < 0)
            {
                return false;
            }
            value = value * 36 + digit;
        }
        if (value is <= 0 or > int.MaxValue)
        {
            return false;
        }
        pid = (int)value;
        return true;
    }

    /// <summary>True when <paramref name="name"/> was handed out by this process.</summary>
    public static bool IsIssuedByThisProcess(string name) => Issued.ContainsKey(name);

    internal static string ToBase36(long value)
    {
        if (value < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(value));
        }
        const string digits = "0123456789abcdefghijklmnopqrstuvwxyz";
        if (value == 0)
        {
            return "0";
        }
        var sb = new StringBuilder();
        while (value > 0)
        {
            sb.Insert(0, digits[(int)(value % 36)]);
            value /= 36;
        }
        return sb.ToString();
    }

    private static string Next() => ToBase36(Interlocked.Increment(ref _counter));

    private static string Sanitize(string value, int maxLength, string fallback)
    {
        var sb = new StringBuilder();
        foreach (char c in value.ToLower(CultureInfo.InvariantCulture))
        {
            if (c is (>= 'a' and <= 'z') or (>= '0' and <= '9'))
            {
                sb.Append(c);
                if (sb.Length == maxLength)
                {
                    break;
                }
            }
        }
        return sb.Length == 0 ? fallback : sb.ToString();
    }
}
