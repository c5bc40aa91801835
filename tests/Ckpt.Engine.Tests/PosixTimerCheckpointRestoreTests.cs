using Ckpt.Engine.Checkpoint;

namespace Ckpt.Engine.Tests;

/// <summary>
/// POSIX timers (tests/workloads/ckpt_posix_timer.c: ids 1, 2, 3 with a gap at 0; id 1 a 100 ms
/// periodic SIGRTMIN timer with value 42, id 2 a 150 ms SIGEV_THREAD_ID timer on the "ticker" thread,
/// id 3 a SIGEV_NONE timer on the process CPU clock): what the image holds, and that after
/// `checkpoint --kill` + `restore` they keep firing at their period with their ids, values and thread
/// (the workload counts expiries for a second and checks each siginfo).
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class PosixTimerCheckpointRestoreTests
{
    private const int SYS_pause = 34, SIGRTMIN = 34;

    [Fact]
    public void Image_holds_every_timer_with_its_id_clock_notification_and_times_and_the_target_runs_on()
    {
        using var target = Start("ckpt_posix_timer");
        int ticker = TickerTid(target);
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        string image = TempPath("posix-timer.img");
        using (var output = new FileStream(image, FileMode.Create, FileAccess.Write))
            Checkpointer.Run(new CheckpointOptions(target.Pid, output, false));

        ImageContents contents = ReadImage(image);
        Assert.Null(contents.Error);
        var timers = contents.Image!.Processes[0].Signal.PosixTimers;
        Assert.Equal([1, 2, 3], timers.Select(t => t.TimerId));
        PosixTimerRecord one = timers[0], two = timers[1], three = timers[2];
        Assert.Equal((1, PosixTimerNotify.Signal, SIGRTMIN, 42ul, target.Pid), (one.ClockId, one.Notify, one.Signal, one.SigevValue, one.NotifyTid));
        Assert.Equal(100_000_000, one.IntervalNanoseconds);
        Assert.InRange(one.ValueNanoseconds, 1, 100_000_000);
        Assert.Equal((1, PosixTimerNotify.ThreadId, SIGRTMIN + 1, 7ul, ticker), (two.ClockId, two.Notify, two.Signal, two.SigevValue, two.NotifyTid));
        Assert.Equal(150_000_000, two.IntervalNanoseconds);
        Assert.Equal((-6, PosixTimerNotify.None), (three.ClockId, three.Notify)); // CLOCK_PROCESS_CPUTIME_ID as glibc passes it
        Assert.Equal(1000L * 1_000_000_000, three.IntervalNanoseconds);
        Assert.InRange(three.ValueNanoseconds, 900L * 1_000_000_000, 1000L * 1_000_000_000);
        target.RequirePass(); // the checkpoint left every timer running
    }

    [Fact]
    public void Timers_keep_firing_with_their_ids_period_and_thread_after_checkpoint_kill_and_restore()
    {
        using var target = Start("ckpt_posix_timer");
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        string image = TempPath("posix-timer-kill.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
        Assert.True(code == 0, stderr);
        RestoreAndRequirePass(target, image);
    }

    private static int TickerTid(Target target)
    {
        string line = File.ReadLines(target.Log).First(l => l.StartsWith("TICKER ", StringComparison.Ordinal));
        return int.Parse(line["TICKER ".Length..]);
    }
}
