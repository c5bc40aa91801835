using System.Diagnostics;

namespace Ckpt.Engine.Tests;

/// <summary>
/// The network lock of `checkpoint --tcp-established` (issue 12; Files/Sockets/NetworkLock), with
/// tests/workloads/ckpt_tcp_stream.c: a client outside the checkpoint writes numbered 8-byte counters to the
/// checkpointed server all the time, through `checkpoint --kill`, a gap of seconds in which no socket has the
/// server's addresses, and the restore; through a checkpoint the server survives; and through a checkpoint
/// that fails after the lock was set (the image written to /dev/full). The client's socket never
/// fails (no RST reached it) and the server reads every counter once, in order, to the client's last; no
/// ckpt-lock table is left afterwards. Without nft (CKPT_NFT names a missing program) the checkpoint is refused,
/// saying nftables is needed, and the connection goes on.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class NetworkLockTests
{
    private sealed record Stream(Target Server, Target Client) : IDisposable
    {
        public void Dispose()
        {
            Client.Dispose();
            Server.Dispose();
        }
    }

    private static Stream StartStream(string address)
    {
        var server = Start("ckpt_tcp_stream", "server", address);
        int port = int.Parse(LineStarting(server.Log, "PORT "));
        var client = Start("ckpt_tcp_stream", "client", address, port.ToString());
        RestoreTestProcesses.WaitForLine(server.Log, "FLOWING", 30);
        return new Stream(server, client);
    }

    /// <summary>The rest of the first line of the log that starts with <paramref name="prefix"/> (waited for at most <paramref name="seconds"/>).</summary>
    private static string LineStarting(string log, string prefix, int seconds = 30)
    {
        for (int i = 0; i < seconds * 100; i++)
        {
            if (File.ReadAllLines(log).FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal)) is { } line) return line[prefix.Length..].Trim();
            Thread.Sleep(10);
        }
        throw new Xunit.Sdk.XunitException($"no line starting '{prefix}' in {log}: {File.ReadAllText(log)}");
    }

    /// <summary>SIGUSR1 to the client: it stops, and both ends agree on every byte, none refused by a reset.</summary>
    private static void RequireEveryCounterOnce(Stream stream)
    {
        RestoreTestProcesses.Signal(stream.Client.Pid, SIGUSR1);
        string sent = LineStarting(stream.Client.Log, "PASS client ", 120);
        string received = LineStarting(stream.Server.Log, "PASS server ", 120);
        Assert.Equal(sent, received);
        Assert.True(long.Parse(sent) > 65536, sent);
        Assert.DoesNotContain("FAIL", File.ReadAllText(stream.Server.Log) + File.ReadAllText(stream.Client.Log));
    }

    /// <summary>`nft list tables`.</summary>
    internal static string NftTables()
    {
        var start = new ProcessStartInfo("nft", ["list", "tables"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using Process nft = Process.Start(start)!;
        string tables = nft.StandardOutput.ReadToEnd();
        nft.WaitForExit();
        Assert.True(nft.ExitCode == 0, nft.StandardError.ReadToEnd());
        return tables;
    }

    internal static string LockOf(int pid) => $"table inet ckpt-lock-{pid}";

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public void A_client_sending_through_kill_gap_and_restore_loses_nothing_and_sees_no_reset(string address)
    {
        using Stream stream = StartStream(address);
        int pid = stream.Server.Pid;
        string image = TempPath("netlock-kill.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", pid.ToString(), "--output", image, "--tcp-established", "--kill"]);
        Assert.True(code == 0, stderr);
        RestoreTestProcesses.WaitForExit(pid);
        Assert.Contains(LockOf(pid), NftTables()); // the peer's packets are dropped until the restore
        Thread.Sleep(3000); // the gap: the client goes on writing, and retransmits
        Assert.True(IsAlive(stream.Client.Pid), File.ReadAllText(stream.Client.Log));
        Assert.DoesNotContain("FAIL", File.ReadAllText(stream.Client.Log));
        try
        {
            RestoreTestProcesses.WaitUntilGone(pid);
            var (restored, stdout, restoreErrors) = RunCli(["restore", "--input", image]);
            Assert.True(restored == 0, restoreErrors);
            Assert.Equal(pid, int.Parse(stdout.Trim()));
            Assert.DoesNotContain(LockOf(pid), NftTables());
            Thread.Sleep(2000); // the client's retransmissions reach the restored server, and it writes on
            RequireEveryCounterOnce(stream);
        }
        finally
        {
            if (IsAlive(pid)) RestoreTestProcesses.Signal(pid, 9); // restored: not ours to dispose
        }
    }

    [Fact]
    public void A_client_sending_through_a_checkpoint_without_kill_loses_nothing_and_no_lock_remains()
    {
        using Stream stream = StartStream("127.0.0.1");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", stream.Server.Pid.ToString(), "--output", TempPath("netlock-running.img"), "--tcp-established"]);
        Assert.True(code == 0, stderr);
        Assert.DoesNotContain(LockOf(stream.Server.Pid), NftTables());
        Thread.Sleep(1000);
        RequireEveryCounterOnce(stream);
    }

    [Fact]
    public void A_checkpoint_that_fails_after_the_lock_removes_it_and_the_client_goes_on()
    {
        using Stream stream = StartStream("127.0.0.1");
        // /dev/full: the image's first write fails (ENOSPC), after the connection was locked and read.
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", stream.Server.Pid.ToString(), "--output", "/dev/full", "--tcp-established", "--kill"]);
        Assert.NotEqual(0, code);
        Assert.Contains("space", stderr, StringComparison.OrdinalIgnoreCase);
        Assert.True(IsAlive(stream.Server.Pid));
        Assert.DoesNotContain(LockOf(stream.Server.Pid), NftTables());
        RequireEveryCounterOnce(stream);
    }

    [Fact]
    public void Without_nft_the_checkpoint_is_refused_saying_nftables_is_needed_and_the_connection_goes_on()
    {
        using Stream stream = StartStream("::1");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", stream.Server.Pid.ToString(), "--output", TempPath("netlock-refused.img"), "--tcp-established", "--kill"],
            prefix: ["/usr/bin/env", "CKPT_NFT=/nonexistent/nft"]);
        Assert.Equal(6, code);
        Assert.Contains("nftables", stderr);
        Assert.Contains($"ckpt-lock-{stream.Server.Pid}", stderr);
        Assert.Contains("CKPT_NFT=/nonexistent/nft", stderr);
        Assert.True(IsAlive(stream.Server.Pid));
        Assert.DoesNotContain(LockOf(stream.Server.Pid), NftTables());
        RequireEveryCounterOnce(stream);
    }
}
