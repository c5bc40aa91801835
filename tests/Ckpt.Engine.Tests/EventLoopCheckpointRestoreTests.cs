using System.Diagnostics;
using System.Text;
using Ckpt.Engine.Checkpoint;

namespace Ckpt.Engine.Tests;

/// <summary>
/// Event-loop descriptors (tests/workloads/ckpt_eventloop.c: a pipe with bytes in flight, an eventfd,
/// timerfds relative, expired and absolute, an epoll over the eventfd, the timer and the pipe, an
/// epoll watching that epoll, a signalfd with SIGUSR2 pending): what the image holds, that a
/// checkpoint leaves them alone (the pipe keeps its bytes), that `ckpt checkpoint --kill` +
/// `ckpt restore` brings them back (the workload's epoll loop wakes with the right events and
/// data), the refusals, and a timerfd's time left kept relative to the checkpoint.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class EventLoopCheckpointRestoreTests
{
    private const int SYS_read = 0, SYS_pause = 34;

    [Fact]
    public void Image_holds_pipe_epolls_signalfd_and_timerfds_and_the_target_runs_on_with_its_pipe_bytes()
    {
        using var target = Start("ckpt_eventloop");
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        string image = TempPath("eventloop.img");
        long checkpointUnixSeconds = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        using (var output = new FileStream(image, FileMode.Create, FileAccess.Write))
            Checkpointer.Run(new CheckpointOptions(target.Pid, output, false));

        ImageContents contents = ReadImage(image);
        Assert.Null(contents.Error);
        FileTableImage table = contents.Image!.Processes[0].FileTable;
        FileImage File(int fd) => table.Files[table.Descriptors.Single(d => d.Fd == fd).FileObjRef];

        Assert.Equal([FileKind.Pipe, FileKind.Pipe, FileKind.Eventfd, FileKind.Timerfd, FileKind.Epoll, FileKind.Epoll, FileKind.Signalfd, FileKind.Timerfd, FileKind.Timerfd, FileKind.Epoll],
            Enumerable.Range(3, 10).Select(fd => File(fd).Record.Kind));
        // The pipe: two file objects (read end, write end) sharing one pipe object with the bytes in flight.
        Assert.NotSame(File(3), File(4));
        Assert.Same(File(3).Pipe, File(4).Pipe);
        PipeImage pipe = File(3).Pipe!;
        Assert.Equal(128u * 1024, pipe.Record.PipeSize);
        Assert.Equal("hello pipe\0", Encoding.ASCII.GetString(pipe.Data));
        Assert.Equal((0x800u, 1u), (File(3).Record.OpenFlags & 0x803, File(4).Record.OpenFlags & 0x803)); // O_NONBLOCK read end, blocking write end

        // fdinfo lists the interest list in the kernel's tree order (by file), not in the order of the adds.
        EpollItem[] inner = File(7).Epoll!.Items.OrderBy(i => i.Fd).ToArray();
        Assert.Equal([(3, 0x80000019u, 3ul), (5, 0x19u, 0xdeadbeef00000005ul), (6, 0x40000019u, 6ul)], inner.Select(i => (i.Fd, i.Events, i.Data)));
        Assert.Equal([(7, 0x19u, 0x77ul)], File(8).Epoll!.Items.Select(i => (i.Fd, i.Events, i.Data)));
        Assert.Empty(File(12).Epoll!.Items);
        Assert.Equal(1ul << (12 - 1), File(9).Signalfd!.Value.Mask); // SIGUSR2

        TimerfdRecord relative = File(6).Timerfd!.Value, expired = File(10).Timerfd!.Value, absolute = File(11).Timerfd!.Value;
        Assert.Equal((TimerfdRecord.CLOCK_MONOTONIC, 0ul, TimerfdSettimeFlags.None), (relative.ClockId, relative.Ticks, relative.SettimeFlags));
        Assert.InRange(relative.ValueNanoseconds, 1, 2_000_000_000);
        Assert.Equal((0L, 0L, 1ul), (expired.ValueNanoseconds, expired.IntervalNanoseconds, expired.Ticks));
        Assert.Equal((TimerfdRecord.CLOCK_REALTIME, TimerfdSettimeFlags.Absolute), (absolute.ClockId, absolute.SettimeFlags));
        Assert.InRange(absolute.RealtimeExpiryNanoseconds / 1_000_000_000, checkpointUnixSeconds + 3600 - 30, checkpointUnixSeconds + 3600 + 2);

        target.RequirePass(); // the pipe still holds its bytes, the counters and timers are untouched
    }

    [Fact]
    public void Event_loop_descriptors_come_back_after_checkpoint_kill_and_restore_through_the_cli()
    {
        using var target = Start("ckpt_eventloop");
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        string image = TempPath("eventloop-kill.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
        Assert.True(code == 0, stderr);
        RestoreAndRequirePass(target, image);
    }

    [Theory]
    [InlineData("closed", "fd 12 of process {0} is an epoll watching fd 20, which the process has closed since")]
    [InlineData("reused", "fd 12 of process {0} is an epoll watching fd 20, which holds another file now")]
    public void An_epoll_watching_a_descriptor_closed_or_reused_since_is_refused_and_the_target_runs_on(string mode, string message)
    {
        using var target = Start("ckpt_eventloop", mode);
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", TempPath("refused.img"), "--kill"]);
        Assert.NotEqual(0, code);
        Assert.Contains(string.Format(message, target.Pid), stderr);
        target.RequirePass();
    }

    [Fact]
    public void A_pipe_whose_other_end_is_in_another_process_is_refused_naming_it_and_the_reader_runs_on()
    {
        string log = TempPath("pipeline.log");
        int shell = RestoreTestProcesses.Spawn(log, "/bin/sh", "-c", "/usr/bin/sleep 1000 | /usr/bin/sleep 1000");
        try
        {
            int reader = WaitForChildReadingAPipe(shell);
            string target = new FileInfo($"/proc/{reader}/fd/0").LinkTarget!;
            var e = Assert.Throws<CheckpointRefusedException>(() =>
            {
                using var output = new FileStream(TempPath("pipeline.img"), FileMode.Create, FileAccess.Write);
                Checkpointer.Run(new CheckpointOptions(reader, output, true));
            });
            Assert.Contains($"fd 0 of process {reader} ({target}) is the read end of a pipe whose write end is held by no process being checkpointed (a pipe to a process outside the tree)", e.Message);
            Assert.Contains("State:\tS", System.IO.File.ReadAllText($"/proc/{reader}/status")); // still sleeping, not stopped or killed
        }
        finally
        {
            foreach (int child in ChildrenOf(shell)) RestoreTestProcesses.Signal(child, 9); // init reaps them
            RestoreTestProcesses.KillAndReap(shell);
        }
    }

    private static int WaitForChildReadingAPipe(int shell)
    {
        for (int i = 0; i < 500; i++)
        {
            foreach (int child in ChildrenOf(shell))
            {
                try
                {
                    if (System.IO.File.ReadAllText($"/proc/{child}/comm").Trim() == "sleep" && new FileInfo($"/proc/{child}/fd/0").LinkTarget?.StartsWith("pipe:") == true)
                        return child;
                }
                catch (IOException)
                {
                }
            }
            Thread.Sleep(10);
        }
        throw new Xunit.Sdk.XunitException($"no sleep reading a pipe under shell {shell}");
    }

    private static List<int> ChildrenOf(int parent)
    {
        var children = new List<int>();
        foreach (string task in Directory.GetDirectories("/proc").Where(d => int.TryParse(Path.GetFileName(d), out _)))
        {
            try
            {
                string[] stat = System.IO.File.ReadAllText($"{task}/stat").Split(") ")[1].Split(' ');
                if (stat[1] == parent.ToString()) children.Add(int.Parse(Path.GetFileName(task)));
            }
            catch (IOException)
            {
            }
        }
        return children;
    }

    [Fact]
    public void A_timerfd_checkpointed_with_3_s_left_fires_about_3_s_after_a_restore_5_s_later()
    {
        long spawned = Stopwatch.GetTimestamp();
        using var target = Start("ckpt_timerfd_wait", "4000");
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_read);
        long waiting = Stopwatch.GetTimestamp();
        Thread.Sleep(TimeSpan.FromSeconds(Math.Max(0, 1 - Stopwatch.GetElapsedTime(spawned).TotalSeconds)));
        string image = TempPath("timerfd.img");
        long checkpointStart = Stopwatch.GetTimestamp();
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
        long checkpointEnd = Stopwatch.GetTimestamp();
        Assert.True(code == 0, stderr);
        RestoreTestProcesses.WaitForExit(target.Pid);
        Assert.DoesNotContain("FIRED", System.IO.File.ReadAllText(target.Log));
        // What was left at the freeze, bounded by what the test saw: the timer was armed between the
        // spawn and READY (before the read began), the freeze fell inside the checkpoint run.
        double leftAtMost = 4 - Stopwatch.GetElapsedTime(waiting, checkpointStart).TotalSeconds + 0.1;
        double leftAtLeast = 4 - Stopwatch.GetElapsedTime(spawned, checkpointEnd).TotalSeconds;
        Thread.Sleep(TimeSpan.FromSeconds(5));

        long restoreStart = Stopwatch.GetTimestamp();
        int pid = ThreadTestSupport.RestoreInProcess(image);
        long restored = Stopwatch.GetTimestamp();
        try
        {
            Assert.Equal(target.Pid, pid);
            while (!System.IO.File.ReadAllText(target.Log).Contains("FIRED") && Stopwatch.GetElapsedTime(restored) < TimeSpan.FromSeconds(20))
                Thread.Sleep(10);
            TimeSpan fired = Stopwatch.GetElapsedTime(restored);
            ThreadTestSupport.WaitForPass(target.Log, pid, TimeSpan.FromSeconds(5)); // one expiration counted
            double restoreSeconds = Stopwatch.GetElapsedTime(restoreStart, restored).TotalSeconds;
            Assert.InRange(leftAtMost, 2.0, 3.6); // the scenario: about 3 s left at the checkpoint
            // Not at once (the 5 s down would have used it up on an absolute clock), not the full 4 s again.
            Assert.InRange(fired.TotalSeconds, leftAtLeast - restoreSeconds - 0.5, leftAtMost + 0.5);
        }
        finally
        {
            ThreadTestSupport.KillIfAlive(pid);
        }
    }
}
