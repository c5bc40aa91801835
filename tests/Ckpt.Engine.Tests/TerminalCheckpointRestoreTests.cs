using Ckpt.Engine.Checkpoint;

namespace Ckpt.Engine.Tests;

/// <summary>
/// Terminals (issue 12): pseudo-terminal pairs with both ends in the tree, the controlling terminal of
/// each session and its foreground group (tests/workloads/ckpt_pty.c), restored after `checkpoint --kill`
/// and checked by the workload and through /proc; a checkpoint without --kill leaves the pairs alone;
/// pairs the restore cannot recreate are refused by name and left as they were; a process on the user's
/// terminal (a pty the test holds the master of) is refused at restore by default and with
/// --shell-terminal comes back on the terminal the restore runs on.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class TerminalCheckpointRestoreTests
{
    private const int SYS_pause = 34;

    private static string CheckpointKill(int pid, string name)
    {
        RestoreTestProcesses.WaitUntilInSyscall(pid, SYS_pause);
        string image = TempPath(name);
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", pid.ToString(), "--output", image, "--kill"]);
        Assert.True(code == 0, stderr);
        return image;
    }

    private static (ulong TtyNr, int Tpgid) TerminalOf(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (ulong.Parse(fields[4]), int.Parse(fields[5])); // fields 7 and 8 of proc(5)
    }

    private static ulong DeviceOf(string path) => Linux.Native.StatOrThrow(path, Environment.ProcessId).RawDevice;

    [Fact]
    public void A_pair_with_its_sessions_controlling_terminal_and_foreground_group_comes_back_after_checkpoint_kill()
    {
        using var target = Start("ckpt_pty");
        string image = CheckpointKill(target.Pid, "pty.img");
        ImageModel model = ReadImage(image).Image!;
        Assert.Equal(3, model.Processes.Count);
        int leader = model.Processes[1].Pid, reader = model.Processes[2].Pid;
        List<TerminalImage> pairs = model.Processes.SelectMany(p => p.FileTable.Files.Values).Select(f => f.Terminal).OfType<TerminalImage>().Distinct().ToList();
        Assert.Equal(2, pairs.Count);
        TerminalImage shells = pairs.Single(p => p.Record.Flags == TerminalFlags.PacketMode), locked = pairs.Single(p => p.Record.Flags == TerminalFlags.Locked);
        Assert.Equal((33, 101, 7, 9), (shells.Record.Rows, shells.Record.Columns, shells.Record.XPixels, shells.Record.YPixels));
        Assert.Equal(0u, shells.Record.LocalFlags & 0x8); // ECHO cleared by the workload
        Assert.Equal("echo:queued ctty=1 fg=1 rows=33\r\n"u8.ToArray(), shells.UnreadOutput); // the reader's answer, unread
        Assert.Null(model.Processes[0].Signal.ControllingTerminal);
        foreach (ProcessImage process in model.Processes.Skip(1))
        {
            ControllingTerminalImage terminal = Assert.IsType<ControllingTerminalImage>(process.Signal.ControllingTerminal);
            Assert.Equal((shells.ObjRef, leader, reader), (terminal.Record.TerminalObjRef, terminal.Record.Session, terminal.Record.ForegroundGroup));
        }
        Assert.NotEqual(shells.ObjRef, locked.ObjRef);

        RestoreTestProcesses.WaitForExit(target.Pid);
        RestoreTestProcesses.WaitUntilGone(target.Pid);
        var restore = RunCli(["restore", "--input", image]);
        try
        {
            Assert.True(restore.ExitCode == 0, restore.Stderr);
            // The reader and its session's leader have the new pair's slave as controlling terminal
            // (its index may differ), and the reader's group is its foreground group again.
            string slave = new FileInfo($"/proc/{reader}/fd/0").LinkTarget!;
            Assert.StartsWith("/dev/pts/", slave);
            Assert.Equal((DeviceOf(slave), reader), TerminalOf(reader));
            Assert.Equal((DeviceOf(slave), reader), TerminalOf(leader));
            Assert.Equal(0ul, TerminalOf(target.Pid).TtyNr);
            RequireRestoredAndPass(target, restore);
        }
        finally
        {
            foreach (int pid in new[] { reader, leader, target.Pid }) RestoreTestProcesses.TryKill(pid, 9);
        }
    }

    [Fact]
    public void A_checkpoint_without_kill_records_the_pairs_and_leaves_them_working()
    {
        using var target = Start("ckpt_pty");
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        string image = TempPath("pty-running.img");
        using (var output = new FileStream(image, FileMode.Create, FileAccess.Write))
            Checkpointer.Run(new CheckpointOptions(target.Pid, output, false));
        ImageModel model = ReadImage(image).Image!;
        FileTableImage root = model.Processes[0].FileTable;
        FileImage File(int fd) => root.Files[root.Descriptors.Single(d => d.Fd == fd).FileObjRef];
        Assert.Equal((FileKind.PtyMaster, FileKind.PtyMaster, FileKind.PtySlave), (File(3).Record.Kind, File(4).Record.Kind, File(5).Record.Kind));
        Assert.Same(File(4).Terminal, File(5).Terminal); // one pair object for both ends
        Assert.Equal(0x800u, File(4).Record.OpenFlags & 0x800);
        Assert.All(model.Processes[2].FileTable.Descriptors, d => Assert.Same(File(3).Terminal, model.Processes[2].FileTable.Files[d.FileObjRef].Terminal));
        var (code, shown, stderr) = RunCli(["show", image]);
        Assert.True(code == 0, stderr);
        Assert.Contains("PtyMaster", shown);
        Assert.Equal("echo:queued ctty=1 fg=1 rows=33\r\n"u8.ToArray(), File(3).Terminal!.UnreadOutput);
        target.RequirePass(); // the reader answers, its unread answer is still unread, nothing changed on the terminal
    }

    [Theory]
    [InlineData("lonely", "whose slave no process being checkpointed holds open")]
    [InlineData("backlog", "its slave wrote that the master (fd 3 of process")]
    [InlineData("backlog", "the master's line discipline buffer is full (4095 bytes)")]
    [InlineData("input", "has 6 bytes of input the slave's reader (fd 4 of process")]
    [InlineData("stopped", "its output is stopped (^S, tcflow TCOOFF)")]
    public void A_pair_that_cannot_be_restored_is_refused_by_name_and_left_as_it_was(string mode, string reason)
    {
        using var target = Start("ckpt_pty", mode);
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        string image = TempPath("pty-refused.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
        Assert.Equal(6, code);
        Assert.Contains($"fd 3 of process {target.Pid} (/dev/ptmx)", stderr);
        Assert.Contains(reason, stderr);
        Assert.False(System.IO.File.Exists(image));
        target.RequirePass(); // not killed, not stopped, and still holding what it held
    }

    // What the first pair's master of `ckpt_pty output` has not read: the slave's bytes, each \n made \r\n (ONLCR).
    private static byte[] ExpectedOutput()
    {
        var written = System.Text.Encoding.ASCII.GetBytes("first line\nsecond\tline\n").Concat(Enumerable.Range(0, 3000).Select(i => (byte)(i % 251)));
        return written.SelectMany(b => b == (byte)'\n' ? new byte[] { (byte)'\r', b } : [b]).ToArray();
    }

    private static List<TerminalImage> Pairs(ImageModel model) =>
        model.Processes.SelectMany(p => p.FileTable.Files.Values).Select(f => f.Terminal).OfType<TerminalImage>().Distinct().OrderBy(p => p.ObjRef).ToList();

    [Fact]
    public void Unread_output_comes_back_byte_for_byte_after_checkpoint_kill()
    {
        using var target = Start("ckpt_pty", "output");
        string image = CheckpointKill(target.Pid, "pty-output.img");
        List<TerminalImage> pairs = Pairs(ReadImage(image).Image!);
        Assert.Equal(ExpectedOutput(), pairs[0].UnreadOutput);
        Assert.Equal("packet\r\n"u8.ToArray(), pairs[1].UnreadOutput); // packet mode's leading 0 is made by the master's read, not queued
        Assert.Equal(0x5u, pairs[0].Record.OutputFlags & 0x5); // OPOST | ONLCR as recorded, not the put-back's
        RestoreTestProcesses.WaitForExit(target.Pid);
        RestoreTestProcesses.WaitUntilGone(target.Pid);
        var restore = RunCli(["restore", "--input", image]);
        try
        {
            RequireRestoredAndPass(target, restore);
        }
        finally
        {
            RestoreTestProcesses.TryKill(target.Pid, 9);
        }
    }

    [Fact]
    public void A_checkpoint_without_kill_saves_unread_output_and_leaves_it_unread_as_it_was()
    {
        using var target = Start("ckpt_pty", "output");
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        string image = TempPath("pty-output-running.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image]);
        Assert.True(code == 0, stderr);
        Assert.Equal(ExpectedOutput(), Pairs(ReadImage(image).Image!)[0].UnreadOutput);
        target.RequirePass(); // the same bytes unread, termios and packet mode as they were
    }

    [Fact]
    public void A_process_on_the_users_terminal_is_refused_by_default_and_with_shell_terminal_comes_back_on_the_restores_terminal()
    {
        string log = TempPath("outside.log");
        using var user = new TestTerminal();
        // The user's shell (a session leader on the terminal) runs the workload in the foreground.
        int shell = user.StartSessionLeader("/bin/sh", "-c", "\"$0\" outside \"$1\"; sleep 0", RestoreWorkloads.Path("ckpt_pty"), log);
        int pid = 0, restoringShell = 0;
        try
        {
            pid = WaitForReady(log);
            Assert.Equal(DeviceOf(user.SlavePath), TerminalOf(pid).TtyNr);
            string image = CheckpointKill(pid, "outside.img");
            RestoreTestProcesses.WaitForExit(shell);
            RestoreTestProcesses.WaitUntilGone(pid);
            var (code, shown, _) = RunCli(["show", image]);
            Assert.True(code == 0);
            Assert.Contains($"fd 0: {user.SlavePath} OutsideTerminal", shown);

            var refused = RunCli(["restore", "--input", image]);
            Assert.Equal(6, refused.ExitCode);
            Assert.Contains(user.SlavePath, refused.Stderr);
            Assert.Contains("--shell-terminal", refused.Stderr);
            Assert.False(Directory.Exists($"/proc/{pid}"));

            // Another terminal, another shell: `ckpt restore --shell-terminal` in its foreground.
            using var restoring = new TestTerminal();
            string result = TempPath("restore.out"), status = TempPath("restore.rc");
            restoringShell = restoring.StartSessionLeader("/bin/sh", "-c", "\"$0\" restore --input \"$1\" --shell-terminal > \"$2\" 2>&1; echo $? > \"$3\"; exec sleep 60", CkptPath(), image, result, status);
            for (int i = 0; i < 3000 && !(System.IO.File.Exists(status) && System.IO.File.ReadAllText(status).EndsWith('\n')); i++) Thread.Sleep(10);
            Assert.True(System.IO.File.ReadAllText(status).Trim() == "0", System.IO.File.ReadAllText(result));
            Assert.Equal(restoring.SlavePath, new FileInfo($"/proc/{pid}/fd/0").LinkTarget);
            Assert.Equal(DeviceOf(restoring.SlavePath), TerminalOf(pid).TtyNr);
            WaitUntilBackInPause(pid);
            RestoreTestProcesses.Signal(pid, SIGUSR1);
            restoring.WaitFor("PROMPT");
            restoring.Write("pong\n");
            RestoreTestProcesses.WaitForLine(log, "PASS pong", 20);
        }
        finally
        {
            foreach (int p in new[] { pid, restoringShell, shell }) if (p > 0) RestoreTestProcesses.TryKill(p, 9);
            if (restoringShell > 0) RestoreTestProcesses.WaitForExit(restoringShell);
        }
    }

    private static int WaitForReady(string log)
    {
        for (int i = 0; i < 1000; i++)
        {
            if (System.IO.File.Exists(log) && System.IO.File.ReadAllLines(log).FirstOrDefault(l => l.StartsWith("READY ")) is { } line)
                return int.Parse(line["READY ".Length..]);
            Thread.Sleep(10);
        }
        throw new Xunit.Sdk.XunitException($"no READY in {log}");
    }
}
