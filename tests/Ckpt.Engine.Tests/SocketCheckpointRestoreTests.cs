using System.Net;
using System.Net.Sockets;
using System.Text;
using Ckpt.Engine.Checkpoint;
using SocketShutdown = Ckpt.Image.Records.SocketShutdown;
using SocketType = Ckpt.Image.Records.SocketType;

namespace Ckpt.Engine.Tests;

/// <summary>
/// Sockets of one process (issue 12): unix socketpairs with queued data (tests/workloads/ckpt_socketpair.c),
/// listening unix sockets on a path and an abstract name (ckpt_unix_listen.c), TCP listeners on 127.0.0.1
/// and ::1 and UDP sockets (ckpt_inet.c), each restored after `checkpoint --kill` and checked by the
/// workload itself and by a real client; a checkpoint without --kill leaves the queues alone; a
/// connection to a peer outside the process is refused by name and leaves the target as it was.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class SocketCheckpointRestoreTests
{
    private const int SYS_pause = 34;

    private static string CheckpointKill(Target target, string name)
    {
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        string image = TempPath(name);
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
        Assert.True(code == 0, stderr);
        return image;
    }

    [Fact]
    public void Socketpairs_come_back_with_their_queues_options_and_shutdown_after_checkpoint_kill()
    {
        using var target = Start("ckpt_socketpair");
        string image = CheckpointKill(target, "socketpair.img");
        RestoreAndRequirePass(target, image);
    }

    [Fact]
    public void Image_holds_both_ends_of_each_pair_with_their_queues_and_the_running_target_keeps_its_data()
    {
        using var target = Start("ckpt_socketpair");
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        string image = TempPath("socketpair-running.img");
        using (var output = new FileStream(image, FileMode.Create, FileAccess.Write))
            Checkpointer.Run(new CheckpointOptions(target.Pid, output, false));

        ImageContents contents = ReadImage(image);
        Assert.Null(contents.Error);
        FileTableImage table = contents.Image!.Processes[0].FileTable;
        SocketImage Socket(int fd) => Assert.IsType<SocketImage>(table.Files[table.Descriptors.Single(d => d.Fd == fd).FileObjRef].Socket);
        FileRecord File(int fd) => table.Files[table.Descriptors.Single(d => d.Fd == fd).FileObjRef].Record;
        for (int fd = 3; fd <= 8; fd += 2)
        {
            Assert.Equal(File(fd + 1).Inode, Socket(fd).Record.PeerInode);
            Assert.Equal(File(fd).Inode, Socket(fd + 1).Record.PeerInode);
            Assert.All(new[] { fd, fd + 1 }, end => Assert.Equal((SocketFamily.Unix, SocketState.Connected), (Socket(end).Record.Family, Socket(end).Record.State)));
        }
        Assert.Equal(70000ul, Socket(3).Record.QueuedBytes);
        Assert.Equal((SocketShutdown.Receive, SocketShutdown.Send), (Socket(3).Record.Shutdown, Socket(4).Record.Shutdown));
        Assert.Equal(["a", "", "ccc"], Socket(5).Queue.Select(m => Encoding.ASCII.GetString(m)));
        Assert.Equal(["one", "two-two", ""], Socket(7).Queue.Select(m => Encoding.ASCII.GetString(m)));
        Assert.Equal(["back"], Socket(8).Queue.Select(m => Encoding.ASCII.GetString(m)));
        Assert.Equal(SocketType.SeqPacket, Socket(6).Record.SocketType);
        Assert.True(Socket(7).Record.Options.HasFlag(SocketOptions.PassCredentials));
        Assert.Equal(2_500_000, Socket(5).Record.ReceiveTimeoutMicroseconds);
        target.RequirePass(); // every queue still holds what was sent: the peeks consumed nothing
    }

    [Fact]
    public void Listening_unix_sockets_on_a_path_and_an_abstract_name_accept_connections_after_restore()
    {
        string directory = Directory.CreateTempSubdirectory("ckpt-unix-").FullName;
        string path = Path.Combine(directory, "listen.sock");
        using var target = Start("ckpt_unix_listen", path);
        string image = CheckpointKill(target, "unix-listen.img");
        Assert.True(System.IO.File.Exists(path), "the stale socket file of the killed process is expected to be there");
        var (code, shown, stderr) = RunCli(["show", image]);
        Assert.True(code == 0, stderr);
        Assert.Contains($"[unix stream Listening {path} backlog 7]", shown);
        Assert.Contains($"[unix seqpacket Listening @ckpt-listen-{target.Pid} backlog 3]", shown);
        Assert.Contains($"[unix datagram Unconnected {path}.dgram (file deleted)]", shown);
        RestoreAndServe(target, image, () =>
        {
            Assert.Equal("pong", Exchange(new Socket(AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, ProtocolType.Unspecified), new UnixDomainSocketEndPoint(path)));
            Assert.Equal("pong", Exchange(new Socket(AddressFamily.Unix, System.Net.Sockets.SocketType.Seqpacket, ProtocolType.Unspecified), new UnixDomainSocketEndPoint($"\0ckpt-listen-{target.Pid}")));
        });
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public void Tcp_listeners_on_ipv4_and_ipv6_and_udp_sockets_work_on_the_same_ports_after_restore()
    {
        using var target = Start("ckpt_inet");
        int[] ports = System.IO.File.ReadLines(target.Log).First(l => l.StartsWith("PORTS ")).Split(' ').Skip(1).Select(int.Parse).ToArray();
        string image = CheckpointKill(target, "inet.img");
        ImageContents contents = ReadImage(image);
        var sockets = contents.Image!.Processes[0].FileTable.Files.Values.Select(f => f.Socket).OfType<SocketImage>().ToList();
        Assert.Contains(sockets, s => s.LocalAddress == $"127.0.0.1:{ports[0]}" && s.Record.State == SocketState.Listening && s.Record.Backlog == 5);
        Assert.Contains(sockets, s => s.LocalAddress == $"[::1]:{ports[1]}" && s.Record.Options.HasFlag(SocketOptions.V6Only) && s.Record.Backlog == 9);
        Assert.Contains(sockets, s => s.PeerAddress == "[::1]:9" && s.Record.State == SocketState.Connected);
        RestoreAndServe(target, image, () =>
        {
            Assert.Equal("pong", Exchange(new Socket(AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, ProtocolType.Tcp), new IPEndPoint(IPAddress.Loopback, ports[0])));
            Assert.Equal("pong", Exchange(new Socket(AddressFamily.InterNetworkV6, System.Net.Sockets.SocketType.Stream, ProtocolType.Tcp), new IPEndPoint(IPAddress.IPv6Loopback, ports[1])));
            using var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
            udp.Client.ReceiveTimeout = 60_000;
            udp.Send("hello"u8.ToArray(), new IPEndPoint(IPAddress.Loopback, ports[2]));
            IPEndPoint? from = null;
            Assert.Equal("olleh", Encoding.ASCII.GetString(udp.Receive(ref from)));
        });
    }

    [Fact]
    public void A_connection_to_a_unix_server_outside_the_process_is_refused_naming_the_peer_and_the_target_runs_on()
    {
        string path = TempPath("server.sock");
        using var server = new Socket(AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, ProtocolType.Unspecified);
        server.Bind(new UnixDomainSocketEndPoint(path));
        server.Listen(1);
        using var target = Start("ckpt_socket_client", "unix", path);
        using Socket accepted = server.Accept();
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", TempPath("refused.img"), "--kill"]);
        Assert.Equal(6, code);
        Assert.Contains("fd 3 of process", stderr);
        Assert.Contains(path, stderr); // the peer (the accepted socket) carries the server's address
        Assert.Contains($"held by process {Environment.ProcessId}", stderr);
        Answer(accepted, target);
    }

    [Fact]
    public void An_established_tcp_connection_is_refused_naming_both_addresses_and_the_target_runs_on()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var target = Start("ckpt_socket_client", "tcp", port.ToString());
        using Socket accepted = listener.AcceptSocket();
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", TempPath("refused-tcp.img"), "--kill"]);
        Assert.Equal(6, code);
        Assert.Contains($"127.0.0.1:{((IPEndPoint)accepted.RemoteEndPoint!).Port} -> 127.0.0.1:{port}", stderr);
        Assert.Contains("ESTABLISHED", stderr);
        Answer(accepted, target);
    }

    [Fact]
    public void A_tcp_listener_with_a_connection_waiting_to_be_accepted_is_refused_and_keeps_it()
    {
        using var target = Start("ckpt_inet");
        int port = System.IO.File.ReadLines(target.Log).First(l => l.StartsWith("PORTS ")).Split(' ').Skip(1).Select(int.Parse).First();
        using var waiting = new Socket(AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, ProtocolType.Tcp);
        waiting.Connect(new IPEndPoint(IPAddress.Loopback, port));
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", TempPath("refused-backlog.img"), "--kill"]);
        Assert.Equal(6, code);
        Assert.Contains($"127.0.0.1:{port}", stderr);
        Assert.Contains("1 connection(s) waiting to be accepted", stderr);
        RestoreTestProcesses.Signal(target.Pid, SIGUSR1);
        RestoreTestProcesses.WaitForLine(target.Log, "LISTENING");
        waiting.Send("ping"u8);
        var answer = new byte[4];
        Assert.Equal(4, waiting.Receive(answer));
        Assert.Equal("pong", Encoding.ASCII.GetString(answer)); // the waiting connection was accepted by the untouched target
    }

    /// <summary>The target was not touched by the refused checkpoint: its connection still works.</summary>
    private static void Answer(Socket accepted, Target target)
    {
        Assert.True(RestoreTestProcesses.StartTimeOf(target.Pid) is not null, "the target died");
        RestoreTestProcesses.Signal(target.Pid, SIGUSR1);
        var ping = new byte[4];
        accepted.ReceiveTimeout = 60_000;
        Assert.Equal(4, accepted.Receive(ping));
        Assert.Equal("ping", Encoding.ASCII.GetString(ping));
        accepted.Send("pong"u8);
        RestoreTestProcesses.WaitForLine(target.Log, "PASS");
    }

    /// <summary>Restores the killed target, lets it check itself (LISTENING), runs the clients, then waits for PASS.</summary>
    private static void RestoreAndServe(Target target, string image, Action clients)
    {
        RestoreTestProcesses.WaitForExit(target.Pid);
        RestoreTestProcesses.WaitUntilGone(target.Pid);
        var (code, stdout, stderr) = RunCli(["restore", "--input", image]);
        try
        {
            Assert.True(code == 0, stderr);
            Assert.Equal(target.Pid, int.Parse(stdout.Trim()));
            WaitUntilBackInPause(target.Pid);
            RestoreTestProcesses.Signal(target.Pid, SIGUSR1);
            RestoreTestProcesses.WaitForLine(target.Log, "LISTENING");
            clients();
            RestoreTestProcesses.WaitForLine(target.Log, "PASS");
        }
        finally
        {
            if (IsAlive(target.Pid)) RestoreTestProcesses.Signal(target.Pid, 9);
        }
    }

    private static string Exchange(Socket client, EndPoint server)
    {
        using (client)
        {
            client.ReceiveTimeout = 60_000;
            client.Connect(server);
            client.Send("ping"u8);
            var answer = new byte[4];
            int length = client.Receive(answer);
            return Encoding.ASCII.GetString(answer, 0, length);
        }
    }
}
