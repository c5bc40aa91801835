using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;

namespace Ckpt.Engine.Tests;

/// <summary>
/// The checkpoint engine against real processes through real ptrace: what the image holds, and
/// that the target runs on (and still passes its own state check) after every checkpoint,
/// successful or failed.
/// </summary>
[Collection("checkpoint")]
public class CheckpointEngineTests
{
    private const long SYS_pause = 34, SYS_clock_nanosleep = 230;

    private static CheckpointResult Checkpoint(int pid, string image, bool kill = false, Action<string, long, long>? progress = null)
    {
        using var output = new FileStream(image, FileMode.Create, FileAccess.Write);
        return Checkpointer.Run(new CheckpointOptions(pid, output, kill), progress);
    }

    [Fact]
    public void Image_holds_memory_signals_and_registers_and_the_target_runs_on()
    {
        using var target = Start("ckpt_state", TempPath("data"));
        string image = TempPath("state.img");
        var result = Checkpoint(target.Pid, image);
        Assert.Equal(new FileInfo(image).Length, result.Bytes);

        ImageContents contents = ReadImage(image);
        Assert.Null(contents.Error);
        Assert.Equal(target.Pid, contents.Task.Pid);
        Assert.Equal(SyscallState.Restart, contents.Thread.SyscallState);
        Assert.Equal(SYS_pause, contents.Thread.SyscallNumber);
        // The 64-page mapping with every other page written: exactly those 32 pages, with their contents.
        string anonLine = File.ReadAllLines(target.Log).First(l => l.StartsWith("ANON 0x"));
        ulong anonStart = Convert.ToUInt64(anonLine[7..], 16);
        VmaRecord anon = Assert.Single(contents.Vmas, v => v.VmStart <= anonStart && anonStart < v.VmEnd);
        Assert.Equal(VmaType.Anon, anon.VmaType);
        for (int p = 0; p < 64; p++)
        {
            ulong address = anonStart + (ulong)p * 4096;
            if (p % 2 == 1) Assert.False(contents.Pages.ContainsKey(address), $"untouched page {p} was saved");
            else Assert.All(contents.Pages[address], b => Assert.Equal((byte)(p + 1), b));
        }
        // The page written before mprotect(PROT_READ) is saved too.
        Assert.Contains(contents.Vmas, v => v.Protection == 1 && v.VmaType == VmaType.Anon && contents.PagesSaved(v) == 1);

        const ulong SA_ONSTACK = 0x08000000, SA_RESTART = 0x10000000;
        SignalActionRecord usr2 = contents.Actions[12 - 1];
        Assert.NotEqual(0ul, usr2.Handler);
        Assert.Equal(SA_ONSTACK | SA_RESTART, usr2.Flags & (SA_ONSTACK | SA_RESTART));
        Assert.Equal(1ul, contents.Actions[13 - 1].Handler); // SIGPIPE ignored
        Assert.Equal(65536ul, contents.SignalStack.StackSize);
        Assert.Equal(5000L * 1_000_000_000, contents.Signal.VirtualTimerIntervalNs);
        Assert.NotEqual(0ul, contents.Thread.BlockedSignals & (1ul << (28 - 1))); // SIGWINCH blocked

        target.RequirePass();
    }

    [Fact]
    public void Blocked_pending_signals_and_the_rseq_area_are_recorded_and_stay_with_the_target()
    {
        const int SIGWINCH = 28;
        using var target = Start("ckpt_state", TempPath("data"));
        RestoreTestProcesses.Signal(target.Pid, SIGWINCH); // blocked by the workload: stays queued
        string image = TempPath("pending.img");
        Checkpoint(target.Pid, image);
        ImageContents contents = ReadImage(image);
        SignalPendingRecord pending = Assert.Single(contents.Pending);
        Assert.Equal(SIGWINCH, pending.Signal);
        Assert.Equal(1, pending.Shared);
        // glibc registers an rseq area for the main thread; its address lies in the static TLS block.
        Assert.NotEqual(0ul, contents.Rseq.Address);
        Assert.True(contents.Rseq.Length >= 32, $"rseq length {contents.Rseq.Length}");
        string status = File.ReadAllText($"/proc/{target.Pid}/status");
        Assert.Contains(status.Split('\n'), l => l.StartsWith("ShdPnd:") && l.EndsWith("08000000"));
        target.RequirePass();
    }

    [Fact]
    public void A_thread_stopped_in_an_rseq_critical_section_is_saved_at_its_abort_handler()
    {
        using var target = Start("ckpt_rseq");
        ulong[] addresses = File.ReadAllLines(target.Log).First(l => l.StartsWith("RSEQ "))
            .Split(' ')[1..].Select(a => Convert.ToUInt64(a, 16)).ToArray();
        (ulong start, ulong end, ulong abort) = (addresses[0], addresses[1], addresses[2]);
        int atAbort = 0;
        for (int i = 0; i < 3; i++)
        {
            string image = TempPath($"rseq{i}.img");
            Checkpoint(target.Pid, image);
            ulong rip = ReadImage(image).Cpu.Rip;
            Assert.False(rip >= start && rip < end, $"image {i} resumes inside the critical section at 0x{rip:x}");
            if (rip == abort) atAbort++;
        }
        // The workload spins inside the section nearly all the time: a freeze lands there.
        Assert.True(atAbort > 0, "no checkpoint stopped the workload inside its critical section");
        target.RequirePass(); // and the live process, moved to the abort handler too, still works
    }

    [Fact]
    public void Interrupted_sleep_records_the_remaining_time_and_keeps_sleeping()
    {
        using var target = StartProgram("/usr/bin/sleep", "1000");
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, (int)SYS_clock_nanosleep);
        string first = TempPath("sleep1.img"), second = TempPath("sleep2.img");
        Checkpoint(target.Pid, first);
        Checkpoint(target.Pid, second); // now inside restart_syscall: still recognised as clock_nanosleep

        ulong previous = ulong.MaxValue;
        foreach (string image in new[] { first, second })
        {
            ImageContents contents = ReadImage(image);
            Assert.Equal(SyscallState.RestartBlock, contents.Thread.SyscallState);
            Assert.Equal(SYS_clock_nanosleep, contents.Thread.SyscallNumber);
            RestartBlockRecord block = Assert.NotNull(contents.RestartBlock);
            Assert.Equal(RestartFunction.Nanosleep, block.Function);
            ulong remaining = RestartArgument(block, 0);
            Assert.InRange(remaining, 900ul * 1_000_000_000, 1000ul * 1_000_000_000);
            Assert.True(remaining <= previous, "the remaining time grew between two checkpoints");
            previous = remaining;
        }
        Assert.True(IsAlive(target.Pid));
        string state = File.ReadAllText($"/proc/{target.Pid}/stat").Split(") ")[1][..1];
        Assert.Equal("S", state);
    }

    private static unsafe ulong RestartArgument(RestartBlockRecord block, int index) => block.Arguments[index];

    [Fact]
    public void A_64_GiB_reservation_with_1_MiB_written_costs_1_MiB()
    {
        using var target = Start("ckpt_modes", "reserve");
        string image = TempPath("reserve.img");
        var result = Checkpoint(target.Pid, image);
        // Two reservations with 1 MiB written in each, plus the program's own few hundred KiB.
        Assert.InRange(result.Bytes, 2L << 20, 4L << 20);
        ImageContents contents = ReadImage(image);
        VmaRecord writable = Assert.Single(contents.Vmas, v => v.VmEnd - v.VmStart == 64ul << 30);
        Assert.Equal(256ul, contents.PagesSaved(writable));
        // The PROT_NONE reservation: two untouched halves around a 1 MiB read-write window.
        VmaRecord window = Assert.Single(contents.Vmas, v => v.VmEnd - v.VmStart == 1ul << 20 && v.Protection == 3);
        Assert.Equal(256ul, contents.PagesSaved(window));
        VmaRecord below = Assert.Single(contents.Vmas, v => v.VmEnd == window.VmStart);
        VmaRecord above = Assert.Single(contents.Vmas, v => v.VmStart == window.VmEnd);
        Assert.Equal(64ul << 30, below.VmEnd - below.VmStart + (1ul << 20) + above.VmEnd - above.VmStart);
        Assert.All(new[] { below, above }, v => Assert.Equal((0u, 0ul, 0ul), (v.Protection, v.PagesPopulated, contents.PagesSaved(v))));
        target.RequirePass();
    }

    [Theory]
    [InlineData("terminal", "fd 3")]
    [InlineData("terminal", "pseudo-terminal master")]
    [InlineData("pidfd", "fd 3 of process")]
    [InlineData("pidfd", "(anon_inode:[pidfd])")]
    [InlineData("unshared-thread", "has its own descriptor table")]
    [InlineData("seccomp", "seccomp (mode 2, filter)")]
    public void Unsupported_targets_are_refused_and_run_on(string mode, string reason)
    {
        using var target = Start("ckpt_modes", mode);
        string image = TempPath(mode + ".img");
        var error = Assert.Throws<CheckpointRefusedException>(() => Checkpoint(target.Pid, image));
        Assert.Contains(reason, error.Message);
        Assert.Contains(target.Pid.ToString(), error.Message);
        target.RequirePass();
    }

    [Fact]
    public void A_missing_pid_is_reported_as_not_found()
    {
        int pid = RestoreTestProcesses.FreePid();
        var error = Assert.Throws<TargetNotFoundException>(() => Checkpoint(pid, TempPath("none.img")));
        Assert.Contains(pid.ToString(), error.Message);
    }

    [Fact]
    public void A_full_disk_fails_the_checkpoint_and_the_target_runs_on()
    {
        using var target = Start("ckpt_state", TempPath("data"));
        using var full = new FileStream("/dev/full", FileMode.Open, FileAccess.Write);
        var error = Assert.ThrowsAny<IOException>(() => Checkpointer.Run(new CheckpointOptions(target.Pid, full, Kill: true)));
        Assert.Contains("No space left on device", error.Message);
        target.RequirePass(); // --kill never happens on a failed image
    }

    [Fact]
    public void A_target_that_dies_during_the_checkpoint_is_reported_and_the_image_marked_failed()
    {
        using var target = Start("ckpt_state", TempPath("data"));
        string image = TempPath("dies.img");
        var error = Assert.Throws<TraceeExitedException>(() => Checkpoint(target.Pid, image, progress: (phase, _, _) =>
        {
            if (phase == "pages") RestoreTestProcesses.Signal(target.Pid, 9);
        }));
        Assert.Contains(target.Pid.ToString(), error.Message);
        ImageContents contents = ReadImage(image);
        Assert.Contains("exited", contents.Error);
    }

    [Fact]
    public void Kill_ends_the_target_only_after_a_complete_image()
    {
        using var target = Start("ckpt_state", TempPath("data"));
        string image = TempPath("kill.img");
        var alivePhases = new List<string>();
        Checkpoint(target.Pid, image, kill: true, progress: (phase, _, _) => { if (IsAlive(target.Pid)) alivePhases.Add(phase); });
        // Alive through the last phase (signals and registers come after the pages and files).
        Assert.Equal(["audit", "freeze", "inspect", "task", "pages", "files", "signals"], alivePhases.Distinct());
        Assert.False(IsAlive(target.Pid));
        ImageContents contents = ReadImage(image);
        Assert.Null(contents.Error);
        Assert.Equal(target.Pid, contents.Task.Pid);
    }
}
