using CkptPS.Module.Tests.Infrastructure;
using Ckpt.Image.Records;
using Xunit;

namespace CkptPS.Module.Tests;

/// <summary>
/// Checkpoint-Process -TcpEstablished through the real engine, on tests/workloads/ckpt_tcp_repair.c (a server
/// with an established connection to a peer process on 127.0.0.1): refused without the switch, naming the
/// connection; saved with it, the process running on; Get-CkptImage shows the socket as Established.
/// </summary>
[Collection(EngineCollection.Name)]
public sealed class TcpEstablishedTests : IDisposable
{
    private readonly ModuleSession session = new();
    private readonly string scratch = RepoPaths.NewScratchDirectory();

    private static string Workload => Path.Combine(RepoPaths.Root, "artifacts", "workloads", "ckpt_tcp_repair");

    private static string WaitForLineStarting(string log, string prefix)
    {
        for (int i = 0; i < 3000; i++)
        {
            if (File.ReadAllLines(log).FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal)) is { } line) return line[prefix.Length..];
            Thread.Sleep(10);
        }
        throw new Xunit.Sdk.XunitException($"no '{prefix}' line in {log}: {File.ReadAllText(log)}");
    }

    [Fact]
    public void An_established_connection_is_refused_without_TcpEstablished_and_saved_with_it()
    {
        using var server = TargetProcess.Start(Workload, "server", "127.0.0.1");
        string port = WaitForLineStarting(server.LogPath, "PORT ");
        using var peer = TargetProcess.Start(Workload, "peer", "127.0.0.1", port);
        WaitForLineStarting(server.LogPath, "QUEUED");

        var refused = session.Run("Checkpoint-Process -Id $args[0] -Path $args[1]", server.Pid, Path.Combine(scratch, "refused.ckpt"));
        var error = Assert.Single(refused.Errors);
        Assert.Contains($"127.0.0.1:{port} -> 127.0.0.1:", error.Exception.Message);
        Assert.Contains("--tcp-established", error.Exception.Message);
        Assert.False(File.Exists(Path.Combine(scratch, "refused.ckpt")));

        string image = Path.Combine(scratch, "tcp.ckpt");
        session.Run("Checkpoint-Process -Id $args[0] -Path $args[1] -TcpEstablished", server.Pid, image).AssertClean();
        var socket = session.Run("Get-CkptImage $args[0] | Where-Object Family -eq Inet", image).AssertClean().OfType<CkptFile>().Single();
        Assert.Equal((SocketState.Established, $"127.0.0.1:{port}", (ulong)20000), (socket.SocketState, socket.LocalAddress, socket.QueuedBytes));
        Assert.StartsWith("TCP ESTABLISHED, 20000 bytes to read", socket.State);
        Assert.True(server.IsAlive && peer.IsAlive);
    }

    public void Dispose()
    {
        session.Dispose();
        Directory.Delete(scratch, recursive: true);
    }
}
