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
        // The lines of the default view (CkptPS.format.ps1xml).
        string[] table = session.Run("Get-CkptImage $args[0] | Where-Object { $_ -is [CkptPS.CkptFile] } | ForEach-Object { [CkptPS.ImageText]::Line($_) }", image)
            .AssertClean().Output.Select(o => o.ToString()).ToArray();
        Assert.Contains(table, line => line.Contains("-> anon_inode:[signalfd]") && line.Contains("Signalfd") && line.EndsWith(" / signals [12]"));
        Assert.True(target.IsAlive);
    }

    public void Dispose()
    {
        session.Dispose();
        Directory.Delete(scratch, recursive: true);
    }
}
