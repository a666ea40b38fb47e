using EbpfProxy.Datapath.Loading;

namespace EbpfProxy.Datapath.Tests;

/// <summary>Issue 14 item 6: one holder of the pin folder at a time, released on dispose (and by the kernel on exit).</summary>
public sealed class PinFolderLockTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "ebpf-proxy-lock-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
            Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void A_second_holder_is_refused_until_the_first_lets_go()
    {
        var pins = Path.Combine(_dir, "ebpf-proxy");
        Assert.False(PinFolderLock.IsHeldByAnother(pins));

        using (var first = PinFolderLock.TryAcquire(pins))
        {
            Assert.NotNull(first);
            Assert.True(Directory.Exists(pins));
            Assert.Null(PinFolderLock.TryAcquire(pins));
            Assert.True(PinFolderLock.IsHeldByAnother(pins));
        }

        Assert.False(PinFolderLock.IsHeldByAnother(pins));
        using var again = PinFolderLock.TryAcquire(pins);
        Assert.NotNull(again);
    }

    [Fact]
    public async Task A_waiting_daemon_gets_the_lock_when_it_is_released_and_fails_clearly_when_it_is_not()
    {
        var pins = Path.Combine(_dir, "ebpf-proxy");
        var first = PinFolderLock.TryAcquire(pins)!;
        var waited = false;

        var busy = await Assert.ThrowsAsync<PinFolderBusyException>(() =>
            PinFolderLock.AcquireAsync(pins, TimeSpan.FromMilliseconds(500), () => waited = true, TimeProvider.System, CancellationToken.None));
        Assert.True(waited);
        Assert.Contains(pins, busy.Message, StringComparison.Ordinal);
        Assert.Contains("another ebpf-proxy daemon", busy.Message, StringComparison.Ordinal);

        var second = PinFolderLock.AcquireAsync(pins, TimeSpan.FromSeconds(60), null, TimeProvider.System, CancellationToken.None);
        await Task.Delay(300);
        Assert.False(second.IsCompleted);
        first.Dispose();
        using var taken = await second.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(pins, taken.Path);
    }
}
