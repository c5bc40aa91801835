namespace Ckpt.Engine.Tests;

/// <summary>
/// A restored pseudo-terminal pair keeps its number (/dev/pts/N) when N is free (tmux records its panes' tty names),
/// and comes back under another number, working, when N is in use (here the test holds it). tests/workloads/ckpt_pty.c.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed unsafe class TerminalIndexRestoreTests
{
    private const int SYS_pause = 34, O_RDWR = 2, O_NOCTTY = 0x100, O_CLOEXEC = 0x80000;
    private const ulong TIOCGPTN = 0x80045430;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_pair_comes_back_with_its_recorded_number_or_under_another_when_that_one_is_taken(bool taken)
    {
        using var target = Start("ckpt_pty");
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        string image = TempPath("pty-index.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
        Assert.True(code == 0, stderr);
        ImageModel model = ReadImage(image).Image!;
        int leader = model.Processes[1].Pid, reader = model.Processes[2].Pid;
        TerminalImage shells = model.Processes.SelectMany(p => p.FileTable.Files.Values).Select(f => f.Terminal).OfType<TerminalImage>()
            .First(p => p.Record.Flags == TerminalFlags.PacketMode);
        string recorded = $"/dev/pts/{shells.Record.Index}";
        RestoreTestProcesses.WaitForExit(target.Pid);
        RestoreTestProcesses.WaitUntilGone(target.Pid);
        List<int> held = taken ? Hold(shells.Record.Index) : [];
        try
        {
            var restore = RunCli(["restore", "--input", image]);
            Assert.True(restore.ExitCode == 0, restore.Stderr);
            string slave = new FileInfo($"/proc/{reader}/fd/0").LinkTarget!;
            if (taken) Assert.NotEqual(recorded, slave);
            else Assert.Equal(recorded, slave); // free since the kill (unless another program took it meanwhile)
            RequireRestoredAndPass(target, restore);
        }
        finally
        {
            foreach (int pid in new[] { reader, leader, target.Pid }) RestoreTestProcesses.TryKill(pid, 9);
            foreach (int fd in held) Linux.Native.close(fd);
        }
    }

    /// <summary>Opens /dev/ptmx here until this process holds pair <paramref name="index"/> (or some other program does).</summary>
    private static List<int> Hold(int index)
    {
        var held = new List<int>();
        for (int i = 0; i < 4096; i++)
        {
            int fd = Linux.Native.open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC, 0);
            Assert.True(fd >= 0, $"open /dev/ptmx: errno {Linux.Native.LastErrno}");
            held.Add(fd);
            int got;
            Assert.Equal(0, Linux.Native.ioctl(fd, TIOCGPTN, &got));
            if (got >= index) break;
        }
        return held;
    }
}
