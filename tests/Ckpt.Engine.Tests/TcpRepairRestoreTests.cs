namespace Ckpt.Engine.Tests;

/// <summary>
/// Established TCP connections with TCP_REPAIR (issue 12, `checkpoint --tcp-established`), with
/// tests/workloads/ckpt_tcp_repair.c: before the checkpoint each connection has 20000 bytes unread at
/// the server end and the server's bytes partly unread at the client end, partly never sent (the
/// client's window is closed). After the restore both ends check the stream byte for byte and go on
/// talking: the client sends more, the server reads it all and closes its side, the client reads to
/// the end. Cases: the client a process outside the checkpoint (IPv4 and IPv6) through --kill and
/// restore (NetworkLockTests: a peer that sends meanwhile) and through a checkpoint
/// the process survives; both ends in one process, and in two processes of the tree; without the
/// option the connection is refused naming both addresses and keeps working; an image root does
/// not trust is refused before anything is made, and restores with --trust-image.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class TcpRepairRestoreTests
{
    private const int SYS_pause = 34, Before = 20000;

    private sealed record Connection(Target Server, Target Peer, int Port, long Sent) : IDisposable
    {
        public void Dispose()
        {
            Peer.Dispose();
            Server.Dispose();
        }
    }

    private static Connection StartWithOutsidePeer(string address)
    {
        var server = Start("ckpt_tcp_repair", "server", address);
        int port = int.Parse(LineStarting(server.Log, "PORT "));
        var peer = Start("ckpt_tcp_repair", "peer", address, port.ToString());
        RestoreTestProcesses.WaitForLine(server.Log, "QUEUED", 30);
        RestoreTestProcesses.WaitUntilInSyscall(server.Pid, SYS_pause);
        return new Connection(server, peer, port, long.Parse(LineStarting(server.Log, "SENT ")));
    }

    /// <summary>The rest of the first line of the log that starts with <paramref name="prefix"/> (waited for, 30 s at most).</summary>
    private static string LineStarting(string log, string prefix)
    {
        for (int i = 0; i < 3000; i++)
        {
            if (File.ReadAllLines(log).FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal)) is { } line) return line[prefix.Length..].Trim();
            Thread.Sleep(10);
        }
        throw new Xunit.Sdk.XunitException($"no line starting '{prefix}' in {log}: {File.ReadAllText(log)}");
    }

    private static string Checkpoint(int pid, string name, bool kill)
    {
        string image = TempPath(name);
        string[] arguments = ["checkpoint", "--pid", pid.ToString(), "--output", image, "--tcp-established", .. kill ? new[] { "--kill" } : []];
        var (code, _, stderr) = RunCli(arguments);
        Assert.True(code == 0, stderr);
        return image;
    }

    private static byte ClientByte(long i) => (byte)(i * 7 + 1);
    private static byte ServerByte(long i) => (byte)(i * 13 + 5 + i / 251);

    /// <summary>The image's connection of the server end: established, its queues what the workload wrote.</summary>
    private static TcpConnectionImage ServerConnection(string image, int pid, int port, long sent)
    {
        ImageContents contents = ReadImage(image);
        Assert.Null(contents.Error);
        FileTableImage table = contents.Image!.Processes.Single(p => p.Pid == pid).FileTable;
        SocketImage socket = table.Files.Values.Select(f => f.Socket).OfType<SocketImage>().Single(s => s.LocalAddress.EndsWith($":{port}", StringComparison.Ordinal));
        Assert.Equal(SocketState.Established, socket.Record.State);
        TcpConnectionImage tcp = socket.Tcp!;
        Assert.Equal(TcpState.Established, tcp.Record.State);
        Assert.Equal(Before, tcp.ReceiveQueue.Length);
        for (int i = 0; i < Before; i++) Assert.Equal(ClientByte(i), tcp.ReceiveQueue[i]);
        Assert.True(tcp.Record.UnsentBytes > 0, "the client's closed window left part of the server's bytes unsent");
        long first = sent - tcp.SendQueue.Length; // the send queue is the tail of what the server wrote
        for (int i = 0; i < tcp.SendQueue.Length; i += 997) Assert.Equal(ServerByte(first + i), tcp.SendQueue[i]);
        return tcp;
    }

    private static void RestoreAfterKill(string image, params int[] pids)
    {
        foreach (int pid in pids) RestoreTestProcesses.WaitUntilGone(pid);
        var (code, stdout, stderr) = RunCli(["restore", "--input", image]);
        Assert.True(code == 0, stderr);
        Assert.Equal(pids[0], int.Parse(stdout.Trim()));
        foreach (int pid in pids) WaitUntilBackInPause(pid);
    }

    /// <summary>SIGUSR1 to both ends: each checks the stream and the conversation goes on to the end.</summary>
    private static void RequireConversation(string serverLog, string clientLog, long sent, params int[] pids)
    {
        foreach (int pid in pids) RestoreTestProcesses.Signal(pid, SIGUSR1);
        RestoreTestProcesses.WaitForLine(serverLog, "PASS server", 60);
        RestoreTestProcesses.WaitForLine(clientLog, $"PASS client {sent}", 60);
        Assert.DoesNotContain("FAIL", File.ReadAllText(serverLog) + File.ReadAllText(clientLog));
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public void Kill_and_restore_keep_a_connection_to_an_outside_peer_byte_for_byte(string address)
    {
        using Connection connection = StartWithOutsidePeer(address);
        string image = Checkpoint(connection.Server.Pid, "tcp-kill.img", kill: true);
        ServerConnection(image, connection.Server.Pid, connection.Port, connection.Sent);
        Assert.True(IsAlive(connection.Peer.Pid), "the peer saw nothing and runs on");
        RestoreTestProcesses.WaitForExit(connection.Server.Pid);
        try
        {
            RestoreAfterKill(image, connection.Server.Pid);
            RequireConversation(connection.Server.Log, connection.Peer.Log, connection.Sent, connection.Server.Pid, connection.Peer.Pid);
        }
        finally
        {
            if (IsAlive(connection.Server.Pid)) RestoreTestProcesses.Signal(connection.Server.Pid, 9); // restored: not ours to dispose
        }
    }

    [Fact]
    public void A_checkpoint_without_kill_leaves_the_connection_working()
    {
        using Connection connection = StartWithOutsidePeer("127.0.0.1");
        string image = Checkpoint(connection.Server.Pid, "tcp-running.img", kill: false);
        ServerConnection(image, connection.Server.Pid, connection.Port, connection.Sent);
        WaitUntilBackInPause(connection.Server.Pid);
        RequireConversation(connection.Server.Log, connection.Peer.Log, connection.Sent, connection.Server.Pid, connection.Peer.Pid);
    }

    [Theory]
    [InlineData("pair", "127.0.0.1")]
    [InlineData("fork", "::1")]
    public void Both_ends_inside_the_checkpoint_come_back_connected(string mode, string address)
    {
        using var target = Start("ckpt_tcp_repair", mode, address);
        RestoreTestProcesses.WaitForLine(target.Log, "QUEUED", 30);
        long sent = long.Parse(LineStarting(target.Log, "SENT "));
        int[] pids = mode == "fork" ? [target.Pid, int.Parse(LineStarting(target.Log, "CHILD "))] : [target.Pid];
        foreach (int pid in pids) RestoreTestProcesses.WaitUntilInSyscall(pid, SYS_pause);
        string image = Checkpoint(target.Pid, $"tcp-{mode}.img", kill: true);
        Assert.DoesNotContain(NetworkLockTests.LockOf(target.Pid), NetworkLockTests.NftTables()); // both ends frozen: no lock needed
        ImageContents contents = ReadImage(image);
        var connections = contents.Image!.Processes.SelectMany(p => p.FileTable.Files.Values).Select(f => f.Socket?.Tcp).OfType<TcpConnectionImage>().ToList();
        Assert.Equal(2, connections.Count); // both ends, each with its own queues
        ServerConnection(image, target.Pid, int.Parse(LineStarting(target.Log, "PORT ")), sent);
        RestoreTestProcesses.WaitForExit(target.Pid);
        try
        {
            RestoreAfterKill(image, pids);
            RequireConversation(target.Log, target.Log, sent, pids);
        }
        finally
        {
            foreach (int pid in pids) if (IsAlive(pid)) RestoreTestProcesses.Signal(pid, 9);
        }
    }

    [Fact]
    public void Without_the_option_the_connection_is_refused_naming_both_addresses_and_keeps_working()
    {
        using Connection connection = StartWithOutsidePeer("::1");
        string clientPort = PeerPort(connection);
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", connection.Server.Pid.ToString(), "--output", TempPath("tcp-refused.img"), "--kill"]);
        Assert.Equal(6, code);
        Assert.Contains($"[::1]:{connection.Port} -> [::1]:{clientPort}", stderr);
        Assert.Contains("ESTABLISHED", stderr);
        Assert.Contains("--tcp-established", stderr);
        RequireConversation(connection.Server.Log, connection.Peer.Log, connection.Sent, connection.Server.Pid, connection.Peer.Pid);
    }

    [Fact]
    public void An_image_root_does_not_trust_is_refused_before_anything_is_made_and_restores_with_trust_image()
    {
        using Connection connection = StartWithOutsidePeer("127.0.0.1");
        string clientPort = PeerPort(connection);
        string image = Checkpoint(connection.Server.Pid, "tcp-untrusted.img", kill: true);
        // As another user would hand it over: owned by nobody, its signature no longer valid.
        ImageEdit.Edit(image, bytes => ImageEdit.Patch<HeaderRecord>(bytes, (h, _) => { h.CreatedUnixNanoseconds++; return h; }));
        Assert.Equal(0, chown(image, 65534, 65534));
        RestoreTestProcesses.WaitForExit(connection.Server.Pid);
        RestoreTestProcesses.WaitUntilGone(connection.Server.Pid);
        var (code, _, stderr) = RunCli(["restore", "--input", image]);
        Assert.Equal(4, code);
        Assert.Contains($"established TCP connection (inet tcp 127.0.0.1:{connection.Port} -> 127.0.0.1:{clientPort}", stderr);
        Assert.False(IsAlive(connection.Server.Pid), "nothing was created");
        var (trusted, stdout, trustedError) = RunCli(["restore", "--input", image, "--trust-image"]);
        try
        {
            Assert.True(trusted == 0, trustedError);
            Assert.Equal(connection.Server.Pid, int.Parse(stdout.Trim()));
            WaitUntilBackInPause(connection.Server.Pid);
            RequireConversation(connection.Server.Log, connection.Peer.Log, connection.Sent, connection.Server.Pid, connection.Peer.Pid);
        }
        finally
        {
            if (IsAlive(connection.Server.Pid)) RestoreTestProcesses.Signal(connection.Server.Pid, 9);
        }
    }

    private const string ShutDownReader = """
        import socket, time
        l = socket.socket(socket.AF_INET6); l.bind(("::1", 0)); l.listen(1)
        c = socket.create_connection(("::1", l.getsockname()[1])); a, _ = l.accept()
        a.shutdown(socket.SHUT_RD)
        print("READY", flush=True)
        time.sleep(600)
        """;

    /// <summary>SHUT_RD leaves a connection ESTABLISHED (TCP_INFO cannot tell): inet_diag does, and it is refused, not lost.</summary>
    [Fact]
    public void A_connection_shut_down_for_reading_is_refused_by_name_and_the_process_runs_on()
    {
        string script = TempPath("shut_rd.py");
        File.WriteAllText(script, ShutDownReader);
        using var target = StartProgram("/usr/bin/python3", script);
        RestoreTestProcesses.WaitForLine(target.Log, "READY", 30);
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", TempPath("shut-rd.img"), "--kill", "--tcp-established"]);
        Assert.Equal(6, code);
        Assert.Contains("shut down for reading", stderr);
        Assert.True(IsAlive(target.Pid), "the refused checkpoint killed the process");
        Assert.False(File.Exists(TempPath("shut-rd.img")));
    }

    private const string EchoServer = """
        import socket
        l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(("127.0.0.1", 0)); l.listen(5)
        print("PORT", l.getsockname()[1], flush=True)
        c, _ = l.accept()
        while True:
            d = c.recv(100)
            if not d: break
            c.sendall(d)
            if d == b"new":
                n, _ = l.accept(); n.sendall(b"hello"); n.close()
        """;

    private const string EchoClient = """
        import os, socket, sys, time
        port, go = int(sys.argv[1]), sys.argv[2]
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"a"); print("echo", s.recv(10).decode(), flush=True)
        while not os.path.exists(go): time.sleep(0.05)
        s.sendall(b"b"); print("echo", s.recv(10).decode(), flush=True)
        s.sendall(b"new"); print("echo", s.recv(10).decode(), flush=True)
        n = socket.create_connection(("127.0.0.1", port)); print("new connection", n.recv(10).decode(), flush=True)
        """;

    /// <summary>A python3 server whose connection shares its port with the listener it came from: both come back.</summary>
    [Fact]
    public void A_python_server_keeps_its_listener_and_its_accepted_connection_to_an_outside_client()
    {
        string serverScript = TempPath("echo_server.py"), clientScript = TempPath("echo_client.py"), go = TempPath("go");
        File.WriteAllText(serverScript, EchoServer);
        File.WriteAllText(clientScript, EchoClient);
        using var server = StartProgram("/usr/bin/python3", serverScript);
        string port = LineStarting(server.Log, "PORT ");
        using var client = StartProgram("/usr/bin/python3", clientScript, port, go);
        RestoreTestProcesses.WaitForLine(client.Log, "echo a", 30);
        string image = Checkpoint(server.Pid, "tcp-python.img", kill: true);
        RestoreTestProcesses.WaitForExit(server.Pid);
        RestoreTestProcesses.WaitUntilGone(server.Pid);
        var (code, stdout, stderr) = RunCli(["restore", "--input", image]);
        try
        {
            Assert.True(code == 0, stderr);
            Assert.Equal(server.Pid, int.Parse(stdout.Trim()));
            File.WriteAllText(go, "");
            RestoreTestProcesses.WaitForLine(client.Log, "new connection hello", 60);
            Assert.Equal(["echo a", "echo b", "echo new", "new connection hello"], File.ReadAllLines(client.Log));
        }
        finally
        {
            if (IsAlive(server.Pid)) RestoreTestProcesses.Signal(server.Pid, 9);
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int chown(string path, int owner, int group);

    /// <summary>The client's port, from /proc/net/tcp{,6}: the connection whose local port is the server's.</summary>
    private static string PeerPort(Connection connection)
    {
        foreach (string table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
            foreach (string line in File.ReadLines(table).Skip(1))
            {
                string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                string local = fields[1], remote = fields[2];
                if (Convert.ToInt32(local[(local.IndexOf(':') + 1)..], 16) == connection.Port && fields[3] == "01")
                    return Convert.ToInt32(remote[(remote.IndexOf(':') + 1)..], 16).ToString();
            }
        throw new InvalidOperationException($"no established connection on port {connection.Port}");
    }
}
