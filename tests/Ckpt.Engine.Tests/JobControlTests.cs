namespace Ckpt.Engine.Tests;

/// <summary>
/// Job-control stops (issue 10): tests/workloads/ckpt_jobstop.c has a child stopped by SIGTSTP whose stop
/// its parent collected with waitpid(WUNTRACED), and a two-threaded child stopped by SIGSTOP whose stop
/// is still to be reported. After a restore (and after a checkpoint without --kill) both are stopped,
/// every thread, with their reports as they were; SIGCONT continues them (the workload checks it all).
/// A stopped lone process (sleep) comes back stopped and continues on SIGCONT.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class JobControlTests
{
    private const int SIGKILL = 9, SIGSTOP = 19, SIGCONT = 18, SIGTSTP = 20;

    private static (int Tstp, int Stop) StoppedChildren(Target target)
    {
        string line = File.ReadAllLines(target.Log).Single(l => l.StartsWith("STOPPED ", StringComparison.Ordinal));
        string[] fields = line.Split(' ');
        return (int.Parse(fields[1]), int.Parse(fields[2]));
    }

    /// <summary>The state letter of every thread of pid ("T" for each thread of a stopped process).</summary>
    private static string ThreadStates(int pid) => string.Concat(Directory.GetDirectories($"/proc/{pid}/task").Order().Select(task =>
    {
        string stat = File.ReadAllText($"{task}/stat");
        return stat[stat.LastIndexOf(')') + 2];
    }));

    [Fact]
    public void Stopped_children_come_back_stopped_with_their_wait_reports_and_continue_on_SIGCONT()
    {
        using var target = Start("ckpt_jobstop");
        var (tstp, stop) = StoppedChildren(target);
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            string image = TempPath("jobstop.img");
            CkptCheckpoint(target.Pid, image, kill: true);
            ImageModel model = ReadImage(image).Image!;
            Assert.Equal((SIGTSTP, 1), (model.Processes.Single(p => p.Pid == tstp).JobControlStop!.Value.StopSignal, model.Processes.Single(p => p.Pid == tstp).JobControlStop!.Value.ReportCollected));
            Assert.Equal((SIGSTOP, 0), (model.Processes.Single(p => p.Pid == stop).JobControlStop!.Value.StopSignal, model.Processes.Single(p => p.Pid == stop).JobControlStop!.Value.ReportCollected));
            Assert.Null(model.Processes.Single(p => p.Pid == target.Pid).JobControlStop);
            Assert.Equal(["running", "stopped", "stopped"], ProcessTree.Of(model).Select(e => e.State == "sleeping" ? "running" : e.State));
            RestoreTestProcesses.WaitForExit(target.Pid);
            foreach (int pid in new[] { target.Pid, tstp, stop }) RestoreTestProcesses.WaitUntilGone(pid);

            Assert.Equal(target.Pid, CkptRestore(image));
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            Assert.Equal("T", ThreadStates(tstp));
            Assert.Equal("TT", ThreadStates(stop));
            target.RequirePass();
        }
        finally
        {
            foreach (int pid in new[] { target.Pid, tstp, stop }) RestoreTestProcesses.TryKill(pid, SIGKILL);
        }
    }

    [Fact]
    public void A_checkpoint_without_kill_leaves_stopped_children_stopped_with_their_wait_reports()
    {
        using var target = Start("ckpt_jobstop");
        var (tstp, stop) = StoppedChildren(target);
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            CkptCheckpoint(target.Pid, TempPath("jobstop-live.img"), kill: false);
            Thread.Sleep(200); // a thread the checkpoint let run would be seen running now
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            Assert.Equal("T", ThreadStates(tstp));
            Assert.Equal("TT", ThreadStates(stop));
            target.RequirePass(); // the reports as they were: tstp's collected, stop's still there
        }
        finally
        {
            foreach (int pid in new[] { target.Pid, tstp, stop }) RestoreTestProcesses.TryKill(pid, SIGKILL);
        }
    }

    [Fact]
    public void A_stopped_lone_process_stays_stopped_through_a_checkpoint_and_comes_back_stopped()
    {
        using var target = StartProgram("/usr/bin/sleep", "1000");
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, (int)Ckpt.Engine.Linux.SyscallNumbers.SYS_clock_nanosleep);
        RestoreTestProcesses.Signal(target.Pid, SIGSTOP);
        WaitForState(target.Pid, 'T');
        try
        {
            CkptCheckpoint(target.Pid, TempPath("stopped-live.img"), kill: false);
            Thread.Sleep(100);
            Assert.Equal("T", ThreadStates(target.Pid)); // the checkpoint did not continue it

            string image = TempPath("stopped.img");
            CkptCheckpoint(target.Pid, image, kill: true);
            RestoreTestProcesses.WaitForExit(target.Pid);
            RestoreTestProcesses.WaitUntilGone(target.Pid);
            Assert.Equal(target.Pid, CkptRestore(image));
            Thread.Sleep(100);
            Assert.Equal("T", ThreadStates(target.Pid));
            RestoreTestProcesses.Signal(target.Pid, SIGCONT);
            WaitForState(target.Pid, 'S');
            RestoreTestProcesses.WaitUntilInSyscall(target.Pid, (int)Ckpt.Engine.Linux.SyscallNumbers.SYS_clock_nanosleep); // back in its sleep
        }
        finally
        {
            RestoreTestProcesses.TryKill(target.Pid, SIGKILL);
        }
    }

    // Bounded wait for a /proc state letter (signals are delivered asynchronously).
    private static void WaitForState(int pid, char state)
    {
        for (int i = 0; i < 500; i++)
        {
            if (ThreadStates(pid).All(s => s == state)) return;
            Thread.Sleep(10);
        }
        Assert.Fail($"process {pid} never reached state {state}");
    }
}
