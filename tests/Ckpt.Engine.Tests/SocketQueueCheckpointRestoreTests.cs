using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Ckpt.Engine.Tests;

/// <summary>
/// What waits in a socket's queues (issue 12): unix connections not yet accepted, in listeners' accept queues
/// (tests/workloads/ckpt_unix_pending.c: stream and seqpacket, path and abstract names, one client in a child
/// process), and UDP datagrams with their sources (ckpt_udp_queue.c: IPv4 and IPv6, senders of the tree and
/// senders closed since). Each comes back after `checkpoint --kill` + restore and the workload checks it; a
/// checkpoint without --kill leaves every queue as it was; what cannot be restored is refused by name and the
/// target runs on untouched.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class SocketQueueCheckpointRestoreTests
{
    private const int SYS_pause = 34;

    private static (int Code, string Stderr) Checkpoint(Target target, string image, bool kill)
    {
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, .. kill ? new[] { "--kill" } : []]);
        return (code, stderr);
    }

    private static List<SocketImage> Sockets(ImageContents contents, int process = 0)
    {
        Assert.Null(contents.Error);
        FileTableImage table = contents.Image!.Processes[process].FileTable;
        return table.Descriptors.OrderBy(d => d.Fd).Select(d => table.Files[d.FileObjRef].Socket).OfType<SocketImage>().ToList();
    }

    [Fact]
    public void Unix_connections_waiting_to_be_accepted_come_back_in_their_order_and_talk_after_checkpoint_kill()
    {
        string directory = Directory.CreateTempSubdirectory("ckpt-pending-").FullName;
        string path = Path.Combine(directory, "listen.sock");
        using var target = Start("ckpt_unix_pending", path);
        string image = TempPath("pending.img");
        var (code, stderr) = Checkpoint(target, image, kill: true);
        Assert.True(code == 0, stderr);

        ImageContents contents = ReadImage(image);
        List<SocketImage> root = Sockets(contents);
        ulong streamListener = contents.Image!.Processes[0].FileTable.Files.Values.Single(f => f.Socket?.LocalAddress == path).Record.Inode;
        SocketImage client = Sockets(contents, 1).Single();
        Assert.Equal(SocketState.PendingConnection, client.Record.State);
        Assert.Equal((streamListener, 2u), (client.PendingConnection!.Value.ListenerInode, client.PendingConnection.Value.Position));
        Assert.Equal([0u, 1u], root.Where(s => s.PendingConnection?.ListenerInode == streamListener).Select(s => s.PendingConnection!.Value.Position));
        var (shown, text, _) = RunCli(["show", image]);
        Assert.Equal(0, shown);
        Assert.Contains($"[unix stream PendingConnection @ckpt-pending-a-{target.Pid} to socket:[{streamListener}] (accept queue place 1)]", text);

        RestoreAndRequirePass(target, image);
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public void Udp_datagrams_come_back_with_their_bytes_boundaries_and_sources_after_checkpoint_kill()
    {
        using var target = Start("ckpt_udp_queue");
        string image = TempPath("udp-queue.img");
        var (code, stderr) = Checkpoint(target, image, kill: true);
        Assert.True(code == 0, stderr);

        List<SocketImage> sockets = Sockets(ReadImage(image));
        SocketImage ipv4 = sockets[0], ipv6 = sockets[1];
        Assert.Equal([5, 11, 0, 40000], ipv4.Queue.Select(m => m.Length));
        Assert.Equal("alpha", Encoding.ASCII.GetString(ipv4.Queue[0]));
        // Three came from fd 5, which the restore sends from; one from a socket closed since (a temporary sender).
        Assert.Equal(3, ipv4.Datagrams.Count(d => d.SenderInode != 0));
        Assert.Equal(0UL, ipv4.Datagrams[1].SenderInode);
        Assert.All(Enumerable.Range(0, 4), i => Assert.StartsWith("127.0.0.1:", ipv4.SourceOf(i)));
        Assert.Equal(["six1", "gone6", "six22"], ipv6.Queue.Select(Encoding.ASCII.GetString));
        Assert.All(Enumerable.Range(0, 3), i => Assert.StartsWith("[::1]:", ipv6.SourceOf(i)));
        Assert.Equal(SocketState.Connected, sockets[4].Record.State);
        Assert.Equal(2, sockets[4].Datagrams.Count);

        RestoreAndRequirePass(target, image);
    }

    [Fact]
    public void A_checkpoint_without_kill_leaves_pending_connections_and_queued_datagrams_as_they_were()
    {
        string directory = Directory.CreateTempSubdirectory("ckpt-pending-").FullName;
        using var pending = Start("ckpt_unix_pending", Path.Combine(directory, "listen.sock"));
        using var datagrams = Start("ckpt_udp_queue");
        foreach (Target target in new[] { pending, datagrams })
        {
            string image = TempPath("running.img");
            var (code, stderr) = Checkpoint(target, image, kill: false);
            Assert.True(code == 0, stderr);
            Assert.Contains(Sockets(ReadImage(image)), s => s.Record.State == SocketState.PendingConnection || s.Datagrams.Count > 0);
            // The running target reads its queues itself: every connection in order, every datagram with its source.
            target.RequirePass();
        }
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public void Data_sent_into_a_connection_not_yet_accepted_is_refused_by_name_and_the_target_runs_on()
    {
        string directory = Directory.CreateTempSubdirectory("ckpt-pending-").FullName;
        string path = Path.Combine(directory, "listen.sock");
        using var target = Start("ckpt_unix_pending", path, "data");
        var (code, stderr) = Checkpoint(target, TempPath("refused-pending.img"), kill: true);
        Assert.Equal(6, code);
        Assert.Contains($"fd 5 of process {target.Pid}", stderr);
        Assert.Contains(path, stderr);
        Assert.Contains("has not accepted the connection yet, and has sent it data", stderr);
        Assert.True(RestoreTestProcesses.StartTimeOf(target.Pid) is not null, "the target died");
        Assert.True(ListeningAt(path), "the target's listener is gone");
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public void A_connection_waiting_from_a_client_outside_the_tree_is_refused_naming_it_and_is_accepted_later()
    {
        string directory = Directory.CreateTempSubdirectory("ckpt-pending-").FullName;
        string path = Path.Combine(directory, "listen.sock");
        using var target = Start("ckpt_unix_listen", path);
        using var waiting = new Socket(AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, ProtocolType.Unspecified);
        waiting.Connect(new UnixDomainSocketEndPoint(path));
        var (code, stderr) = Checkpoint(target, TempPath("refused-outside.img"), kill: true);
        Assert.Equal(6, code);
        Assert.Contains($"fd 3 of process {target.Pid}", stderr);
        Assert.Contains("1 connection(s) not yet accepted", stderr);
        Assert.Contains($"held by process {Environment.ProcessId}", stderr);
        RestoreTestProcesses.Signal(target.Pid, SIGUSR1);
        RestoreTestProcesses.WaitForLine(target.Log, "LISTENING");
        waiting.Send("ping"u8);
        var answer = new byte[4];
        waiting.ReceiveTimeout = 60_000;
        Assert.Equal(4, waiting.Receive(answer));
        Assert.Equal("pong", Encoding.ASCII.GetString(answer)); // the waiting connection was accepted by the untouched target
        using var packet = new Socket(AddressFamily.Unix, System.Net.Sockets.SocketType.Seqpacket, ProtocolType.Unspecified);
        packet.Connect(new UnixDomainSocketEndPoint($"\0ckpt-listen-{target.Pid}"));
        packet.Send("ping"u8);
        packet.ReceiveTimeout = 60_000;
        Assert.Equal(4, packet.Receive(answer));
        RestoreTestProcesses.WaitForLine(target.Log, "PASS");
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public void A_datagram_from_a_socket_outside_the_tree_is_refused_naming_its_holder_and_stays_queued()
    {
        using var target = Start("ckpt_udp_queue", "outside");
        int port = int.Parse(System.IO.File.ReadLines(target.Log).First(l => l.StartsWith("PORTS ")).Split(' ')[1]);
        using var outside = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        outside.Send("outside"u8.ToArray(), new IPEndPoint(IPAddress.Loopback, port));
        Thread.Sleep(50);
        var (code, stderr) = Checkpoint(target, TempPath("refused-udp.img"), kill: true);
        Assert.Equal(6, code);
        Assert.Contains($"fd 3 of process {target.Pid}", stderr);
        Assert.Contains($"from 127.0.0.1:{((IPEndPoint)outside.Client.LocalEndPoint!).Port}", stderr);
        Assert.Contains($"held by process {Environment.ProcessId}", stderr);
        target.RequirePass(); // every datagram, the test's last, still queued in order
    }

    /// <summary>/proc/net/unix lists a listening socket (flags __SO_ACCEPTCON) at <paramref name="path"/>.</summary>
    private static bool ListeningAt(string path) =>
        System.IO.File.ReadLines("/proc/net/unix").Any(line => line.EndsWith(" " + path, StringComparison.Ordinal) && line.Contains(" 00010000 "));
}
