using System.Diagnostics;
using System.Text;
using EbpfProxy.Core.Cluster;
using EbpfProxy.Kubernetes.Manifests;

namespace EbpfProxy.Kubernetes.Tests;

/// <summary>
/// Issue 14 item 4: one hostile or broken file must not hang, grow or stop the manifest reader.
/// Each case is confined to its file, named in the error, and the other files still apply.
/// </summary>
public sealed class ManifestHostileInputTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);
    private readonly TempDirectory _dir = new();
    private readonly ClusterStore _store = new();
    private readonly ListLogger _logger = new();

    public void Dispose() => _dir.Dispose();

    private const string GoodService = """
        apiVersion: v1
        kind: Service
        metadata: {name: good}
        spec:
          clusterIP: 10.96.0.10
          ports: [{port: 80}]

        """;

    /// <summary>
    /// A "billion laughs" List: <paramref name="levels"/> anchors of ten aliases each, the last one
    /// used as the List's items (which the reader writes back out one by one).
    /// </summary>
    internal static string AliasBomb(int levels)
    {
        var yaml = new StringBuilder("apiVersion: v1\nkind: List\nbomb:\n  a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        for (var i = 1; i <= levels; i++)
            yaml.Append($"  a{i}: &a{i} [{string.Join(',', Enumerable.Repeat($"*a{i - 1}", 10))}]\n");
        yaml.Append($"items: [*a{levels}]\n");
        return yaml.ToString();
    }

    private ManifestSource NewSource() => new(_dir.Path, _store, _logger, TimeProvider.System,
        new ManifestSourceOptions { UseFileSystemWatcher = false, FileReadTimeout = TimeSpan.FromSeconds(30) });

    /// <summary>Reads once, on another thread, failing the test if the read does not finish.</summary>
    private static async Task ReadWithinBoundAsync(ManifestSource source)
    {
        var read = Task.Factory.StartNew(source.ReadNow, TaskCreationOptions.LongRunning);
        var finished = await Task.WhenAny(read, Task.Delay(Bound));
        Assert.True(finished == read, $"the directory read did not finish within {Bound}");
        await read;
    }

    [Fact]
    public void An_alias_bomb_is_refused_quickly_naming_the_aliases()
    {
        var watch = Stopwatch.StartNew();
        var ex = Assert.Throws<ManifestFormatException>(() => ManifestParser.Parse("/m/bomb.yaml", AliasBomb(levels: 6)));
        Assert.Contains("alias", ex.Reason, StringComparison.OrdinalIgnoreCase);
        Assert.Equal("/m/bomb.yaml", ex.File);
        Assert.True(watch.Elapsed < Bound, $"took {watch.Elapsed}");
    }

    [Fact]
    public void Nesting_deeper_than_the_limit_is_refused()
    {
        var yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: " + new string('[', 500) + new string(']', 500) + "\n";
        var ex = Assert.Throws<ManifestFormatException>(() => ManifestParser.Parse("/m/deep.yaml", yaml));
        Assert.Contains("nest", ex.Reason, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("apiVersion: v1\nkind: Service\nmetadata: {name: x\nspec: {}\n")]
    [InlineData("apiVersion: v1\nkind: Service\nmetadata: {name: [x, {y: \n")]
    [InlineData("{")]
    [InlineData("- [")]
    [InlineData("a: 'unterminated\n")]
    [InlineData("apiVersion: v1\nkind: Service\n---\n{ kind: Service, apiVersion: v1, metadata: {name: z}, spec: {ports: [{port: 1}]}")]
    public void Unterminated_yaml_is_a_format_error_of_its_file(string yaml)
    {
        var ex = Assert.Throws<ManifestFormatException>(() => ManifestParser.Parse("/m/broken.yaml", yaml));
        Assert.Equal("/m/broken.yaml", ex.File);
    }

    [Fact]
    public async Task A_fifo_is_refused_by_name_and_the_other_files_apply()
    {
        File.WriteAllText(_dir.File("good.yaml"), GoodService);
        var fifo = _dir.File("fifo.yaml");
        Assert.Equal(0, Mkfifo(fifo, Convert.ToInt32("600", 8)));
        using var source = NewSource();
        try
        {
            await ReadWithinBoundAsync(source);
        }
        finally
        {
            UnblockFifo(fifo);
        }

        Assert.True(_store.Snapshot().Services.ContainsKey("default/good"));
        var error = Assert.Single(source.Errors, e => e.File == fifo);
        Assert.Contains("not a regular file", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_symlink_to_a_device_is_refused_by_name()
    {
        File.WriteAllText(_dir.File("good.yaml"), GoodService);
        var link = _dir.File("zero.yaml");
        File.CreateSymbolicLink(link, "/dev/zero");
        using var source = NewSource();

        await ReadWithinBoundAsync(source);

        Assert.True(_store.Snapshot().Services.ContainsKey("default/good"));
        Assert.Contains("not a regular file", Assert.Single(source.Errors, e => e.File == link).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_symlink_loop_is_refused_by_name()
    {
        File.WriteAllText(_dir.File("good.yaml"), GoodService);
        File.CreateSymbolicLink(_dir.File("loop-a.yaml"), _dir.File("loop-b.yaml"));
        File.CreateSymbolicLink(_dir.File("loop-b.yaml"), _dir.File("loop-a.yaml"));
        using var source = NewSource();

        await ReadWithinBoundAsync(source);

        Assert.True(_store.Snapshot().Services.ContainsKey("default/good"));
        Assert.Contains(source.Errors, e => e.File == _dir.File("loop-a.yaml"));
        Assert.Contains(source.Errors, e => e.File == _dir.File("loop-b.yaml"));
    }

    [Fact]
    public async Task A_file_over_the_size_limit_is_refused_and_keeps_its_last_good_content()
    {
        var big = _dir.File("big.yaml");
        File.WriteAllText(big, GoodService.Replace("good", "big", StringComparison.Ordinal).Replace("10.96.0.10", "10.96.0.11", StringComparison.Ordinal));
        File.WriteAllText(_dir.File("good.yaml"), GoodService);
        using var source = NewSource();
        await ReadWithinBoundAsync(source);
        Assert.True(_store.Snapshot().Services.ContainsKey("default/big"));

        // A comment makes it too large without making it invalid.
        File.AppendAllText(big, "# " + new string('x', (int)ManifestReadLimits.Default.MaxFileBytes) + "\n");
        await ReadWithinBoundAsync(source);

        Assert.True(_store.Snapshot().Services.ContainsKey("default/big"));
        Assert.Contains("larger than", Assert.Single(source.Errors, e => e.File == big).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_alias_bomb_file_keeps_its_last_good_content_and_the_others_apply()
    {
        var bomb = _dir.File("bomb.yaml");
        File.WriteAllText(bomb, GoodService.Replace("good", "before", StringComparison.Ordinal).Replace("10.96.0.10", "10.96.0.12", StringComparison.Ordinal));
        using var source = NewSource();
        await ReadWithinBoundAsync(source);
        Assert.True(_store.Snapshot().Services.ContainsKey("default/before"));

        File.WriteAllText(bomb, AliasBomb(levels: 9));
        File.WriteAllText(_dir.File("good.yaml"), GoodService);
        await ReadWithinBoundAsync(source);

        Assert.True(_store.Snapshot().Services.ContainsKey("default/good"));
        Assert.True(_store.Snapshot().Services.ContainsKey("default/before"));
        Assert.Contains("alias", Assert.Single(source.Errors, e => e.File == bomb).Message, StringComparison.OrdinalIgnoreCase);
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true, EntryPoint = "mkfifo")]
    private static extern int Mkfifo(string path, int mode);

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true, EntryPoint = "open")]
    private static extern int Open(string path, int flags);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "close")]
    private static extern int Close(int fd);

    /// <summary>
    /// Opens the FIFO for writing without blocking (O_WRONLY | O_NONBLOCK fails at once when no
    /// reader has it open), so a reader stuck on it returns and the test host can exit.
    /// </summary>
    private static void UnblockFifo(string path)
    {
        var fd = Open(path, 0x1 | 0x800);
        if (fd >= 0)
            Close(fd);
    }
}
