namespace LibBpf.Net.Tests;

/// <summary>A private bpffs mounted on a fresh /tmp/libbpf-net-test-XXXX directory, unmounted and removed on dispose.</summary>
internal sealed class TempBpfFs : IDisposable
{
    public TempBpfFs()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "libbpf-net-test-" + Guid.NewGuid().ToString("N")[..12]);
        try
        {
            BpfFs.Mount(Path);
        }
        catch
        {
            if (Directory.Exists(Path))
            {
                Directory.Delete(Path);
            }
            throw;
        }
    }

    public string Path { get; }

    public string this[string name] => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            BpfFs.Unmount(Path, detach: true);
        }
        finally
        {
            Directory.Delete(Path);
        }
    }
}
