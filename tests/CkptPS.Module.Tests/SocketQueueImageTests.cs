using CkptPS.Module.Tests.Infrastructure;
using Ckpt.Image.Records;
using Xunit;

namespace CkptPS.Module.Tests;

/// <summary>
/// Get-CkptImage on images of sockets with something waiting (tests/workloads/ckpt_udp_queue.c and
/// ckpt_unix_pending.c, checkpointed by Checkpoint-Process without killing them): a UDP socket's summary
/// counts its queued datagrams, a unix client waiting in a listener's accept queue says so with its place.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class SocketQueueImageTests : IDisposable
{
    private readonly ModuleSession session = new();
    private readonly string scratch = RepoPaths.NewScratchDirectory();

    private static string Workload(string name) => Path.Combine(RepoPaths.Root, "artifacts", "workloads", name);

    private static void WaitForReady(string log)
    {
        for (int i = 0; i < 3000 && !File.ReadAllText(log).Contains("READY "); i++) Thread.Sleep(10);
        Thread.Sleep(100); // into pause()
    }

    [Fact]
    public void Queued_datagrams_and_pending_connections_show_in_the_socket_summary()
    {
        using var udp = TargetProcess.Start(Workload("ckpt_udp_queue"));
        WaitForReady(udp.LogPath);
        string udpImage = Path.Combine(scratch, "udp.ckpt");
        session.Run("Checkpoint-Process -Id $args[0] -Path $args[1]", udp.Pid, udpImage).AssertClean();
        var sockets = session.Run("Get-CkptImage $args[0] | Where-Object Family -eq Inet", udpImage).AssertClean().OfType<CkptFile>().ToList();
        CkptFile first = sockets.First(s => s.Fd == 3);
        Assert.Equal((ulong)40016, first.QueuedBytes);
        Assert.EndsWith(", 4 datagrams queued (40016 bytes)", first.SocketSummary);

        using var pending = TargetProcess.Start(Workload("ckpt_unix_pending"), Path.Combine(scratch, "listen.sock"));
        WaitForReady(pending.LogPath);
        string pendingImage = Path.Combine(scratch, "pending.ckpt");
        session.Run("Checkpoint-Process -Id $args[0] -Path $args[1]", pending.Pid, pendingImage).AssertClean();
        var clients = session.Run("Get-CkptImage $args[0] | Where-Object SocketState -eq PendingConnection", pendingImage).AssertClean().OfType<CkptFile>().ToList();
        Assert.Contains(clients, c => c.Fd == 6 && c.SocketSummary!.EndsWith(", not yet accepted (place 2)", StringComparison.Ordinal));
        Assert.True(udp.IsAlive && pending.IsAlive);
    }

    public void Dispose()
    {
        session.Dispose();
        Directory.Delete(scratch, recursive: true);
    }
}
