using CkptPS.Module.Tests.Infrastructure;
using Ckpt.Image.Records;
using Xunit;

namespace CkptPS.Module.Tests;

/// <summary>
/// Get-CkptImage on a real checkpoint of tests/workloads/ckpt_eventloop.c: each descriptor comes with
/// its kind (pipe, eventfd, epoll, signalfd, timerfd) and its kind's state, and the table view shows both.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class EventLoopImageTests : IDisposable
{
    private readonly ModuleSession session = new();
    private readonly string scratch = RepoPaths.NewScratchDirectory();

    [Fact]
    public void Each_event_loop_descriptor_shows_its_kind_and_state()
    {
        using var target = TargetProcess.Start(Path.Combine(RepoPaths.Root, "artifacts", "workloads", "ckpt_eventloop"));
        for (int i = 0; i < 500 && !File.ReadAllText(target.LogPath).Contains("READY"); i++) Thread.Sleep(10);
        string image = Path.Combine(scratch, "eventloop.ckpt");
        session.Run("Checkpoint-Process -Id $args[0] -Path $args[1]", target.Pid, image).AssertClean();

        var files = session.Run("Get-CkptImage $args[0] | Where-Object { $_ -is [CkptPS.CkptFile] }", image).AssertClean().OfType<CkptFile>().ToDictionary(f => f.Fd);
        Assert.Equal([FileKind.Pipe, FileKind.Pipe, FileKind.Eventfd, FileKind.Timerfd, FileKind.Epoll, FileKind.Epoll, FileKind.Signalfd, FileKind.Timerfd, FileKind.Timerfd, FileKind.Epoll],
            Enumerable.Range(3, 10).Select(fd => files[fd].Kind));
        Assert.Equal("read end, pipe of 131072 bytes, 11 buffered", files[3].State);
        Assert.Equal("count 7", files[5].State);
        Assert.Equal("watches fd 7 (events 0x19, data 0x77)", files[8].State);
        Assert.Equal("signals [12]", files[9].State);
        Assert.Equal("CLOCK_MONOTONIC, expired, 1 unread", files[10].State);
        Assert.StartsWith("CLOCK_REALTIME, ", files[11].State);
        Assert.Equal("", files[0].State);

        var epolls = session.Run("Get-CkptImage $args[0] | Where-Object Kind -eq Epoll | ForEach-Object Fd", image).AssertClean().Output.Select(o => (int)o.BaseObject);
        Assert.Equal([7, 8, 12], epolls);
        string table = string.Join("\n", session.Run("Get-CkptImage $args[0] | Where-Object { $_ -is [CkptPS.CkptFile] } | Out-String -Width 300", image).AssertClean().Output.Select(o => o.ToString()));
        Assert.Contains("Signalfd", table);
        Assert.Contains("/ signals [12]", table);
        Assert.True(target.IsAlive);
    }

    public void Dispose()
    {
        session.Dispose();
        Directory.Delete(scratch, recursive: true);
    }
}
