namespace Ckpt.Engine.Tests;

/// <summary>
/// Multi-threaded processes (issue 9), with the workloads tests/workloads/ckpt_threads.c (2..64
/// threads in futex, nanosleep, ppoll, pause, sigsuspend and live-vector waits, each with its own
/// mask, pending signals, alternate stack and name, checking them itself) and
/// ckpt_thread_churn.c (threads created and joined all the time). `ckpt` runs as a process with a
/// time bound: an engine that hangs on threads fails the test instead of stalling the run.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class ThreadCheckpointRestoreTests
{
    // ckpt_threads' one short sleep (seconds): long enough to be cut by the checkpoint, short
    // enough to keep the tests quick. The workload checks it slept the time left after the restore.
    private const string ShortSleepSeconds = "4";
    private static readonly TimeSpan PassTimeout = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData(2)]
    [InlineData(8)]
    [InlineData(64)]
    public void Threads_come_back_with_their_tids_names_and_waits_and_pass(int threadCount)
    {
        using var target = CheckpointTestSupport.Start("ckpt_threads", threadCount.ToString(), "normal", ShortSleepSeconds);
        int pid = target.Pid;
        string image = CheckpointTestSupport.TempPath($"threads{threadCount}.img");
        RestoreTestProcesses.WaitUntilInSyscall(pid, SYS_rt_sigsuspend);
        var before = Threads(pid);
        Assert.Equal(threadCount, before.Count);
        Assert.Equal(WorkloadThreads(target.Log).Keys.Order(), before.Keys);
        var waits = StableSyscalls(target.Log);
        WaitUntilBackInSyscalls(pid, waits, TimeSpan.FromSeconds(5));

        CkptCheckpoint(pid, image, kill: true);
        RestoreTestProcesses.WaitForExit(pid); // our child, killed by the engine once the image was complete
        RestoreTestProcesses.WaitUntilGone(pid);
        // Down for a while: the workload's ticker leaves gaps of 1 s or more out of the time the
        // process was alive (shorter gaps are a loaded machine's scheduling delays, and count), and
        // the short sleeper checks it slept its time left after the restore.
        Thread.Sleep(2500);

        Assert.Equal(pid, CkptRestore(image));
        try
        {
            var after = Threads(pid);
            Assert.True(before.SequenceEqual(after), $"threads before: {Describe(before)}\nafter: {Describe(after)}");
            WaitUntilBackInSyscalls(pid, waits, TimeSpan.FromSeconds(5));
            RestoreTestProcesses.Signal(pid, SIGUSR1);
            WaitForPass(target.Log, pid, PassTimeout);
        }
        finally
        {
            KillIfAlive(pid);
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(8)]
    [InlineData(64)]
    public void A_checkpoint_without_kill_leaves_every_thread_in_place_and_it_passes(int threadCount)
    {
        using var target = CheckpointTestSupport.Start("ckpt_threads", threadCount.ToString(), "normal", ShortSleepSeconds);
        int pid = target.Pid;
        string image = CheckpointTestSupport.TempPath($"threads{threadCount}-running.img");
        RestoreTestProcesses.WaitUntilInSyscall(pid, SYS_rt_sigsuspend);
        var before = Threads(pid);
        Assert.Equal(threadCount, before.Count);
        var waits = StableSyscalls(target.Log);
        WaitUntilBackInSyscalls(pid, waits, TimeSpan.FromSeconds(5));

        CkptCheckpoint(pid, image, kill: false);
        Assert.True(CheckpointTestSupport.IsAlive(pid), $"process {pid} did not survive its checkpoint");
        var after = Threads(pid);
        Assert.True(before.SequenceEqual(after), $"threads before: {Describe(before)}\nafter: {Describe(after)}");
        WaitUntilBackInSyscalls(pid, waits, TimeSpan.FromSeconds(5));
        RestoreTestProcesses.Signal(pid, SIGUSR1);
        WaitForPass(target.Log, pid, PassTimeout);
        Assert.Equal(0, RestoreTestProcesses.WaitForExit(pid));

        // The image lists every thread (issue 9: `ckpt show` lists the threads with their tids).
        var show = RunCkpt(EngineTimeout, "show", image);
        Assert.True(show.ExitCode == 0, $"ckpt show {image}: exit code {show.ExitCode}: {show.Stderr.Trim()}");
        var words = show.Stdout.Split([' ', '\t', '\n', ',', ':', '=', '(', ')', '"', '[', ']', '{', '}'], StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        var missing = before.Keys.Where(tid => !words.Contains(tid.ToString())).ToArray();
        Assert.True(missing.Length == 0, $"`ckpt show` does not name threads {string.Join(", ", missing)}:\n{show.Stdout}");
    }

    private const int ChurnCheckpoints = 20;

    [Fact]
    public void A_process_creating_threads_all_the_time_checkpoints_20_times_and_every_image_restores()
    {
        using var target = CheckpointTestSupport.Start("ckpt_thread_churn", "4", "10");
        int pid = target.Pid;
        var images = new List<string>();
        for (int i = 0; i < ChurnCheckpoints; i++)
        {
            Thread.Sleep(Random.Shared.Next(20, 200)); // different moments of the churn
            string image = CheckpointTestSupport.TempPath($"churn{i}.img");
            CkptCheckpoint(pid, image, kill: false, what: $"checkpoint {i + 1} of {ChurnCheckpoints}");
            Assert.True(CheckpointTestSupport.IsAlive(pid), $"process {pid} did not survive checkpoint {i + 1}");
            images.Add(image);
        }
        // The original, checkpointed 20 times, still has all its work right.
        int progress = LinesStarting(target.Log, "PROGRESS").Length;
        WaitForNewLines(target.Log, "PROGRESS", progress + 2, pid);
        RestoreTestProcesses.Signal(pid, SIGUSR1);
        WaitForPass(target.Log, pid, PassTimeout);
        Assert.Equal(0, RestoreTestProcesses.WaitForExit(pid));
        RestoreTestProcesses.WaitUntilGone(pid);

        // Every image, one after the other: restored with its pid, it churns on and its checksums
        // hold (the same tids cannot be compared here: they change all the time). An image whose
        // old tid another program has taken since (the pid space is small and other processes
        // run on this machine) is refused, rightly: that is counted, bounded, and reported; a tid
        // held by the workload itself (a restored process not gone) is a failure.
        var refused = new List<string>();
        for (int i = 0; i < images.Count; i++)
        {
            progress = LinesStarting(target.Log, "PROGRESS").Length;
            var restore = RunCkpt(EngineTimeout, "restore", "--input", images[i]);
            if (restore.ExitCode == 6 && restore.Stderr.Contains("in use") && !restore.Stderr.Contains("ckpt_thread_chu"))
            {
                refused.Add($"image {i + 1}: {restore.Stderr.Trim()}");
                continue;
            }
            Assert.True(restore.ExitCode == 0, $"restore of image {i + 1} failed with exit code {restore.ExitCode}: {restore.Stderr.Trim()}");
            int passes = LinesStarting(target.Log, "PASS").Length;
            try
            {
                Assert.Equal(pid, int.Parse(restore.Stdout.Trim()));
                WaitForNewLines(target.Log, "PROGRESS", progress + 2, pid);
                RestoreTestProcesses.Signal(pid, SIGUSR1);
                WaitForPass(target.Log, pid, PassTimeout, passes: passes + 1);
                RestoreTestProcesses.WaitUntilGone(pid); // it exits after PASS; init reaps it
            }
            finally
            {
                KillIfAlive(pid);
            }
        }
        Assert.True(refused.Count <= ChurnCheckpoints / 4, $"{refused.Count} of {ChurnCheckpoints} images refused:\n{string.Join('\n', refused)}");
    }

    private const int InstantSignalRestores = 20;

    /// <summary>
    /// Issue 9: a signal sent the moment `ckpt restore` returns is not lost, for any thread. The
    /// workload's threads (ckpt_threads wake mode: pause, sigsuspend, nanosleep, ppoll, pause with
    /// live vectors) each wait for their own SIGUSR2, whose handler sets their flag; the main
    /// thread waits in sigsuspend for SIGUSR1. All are sent as soon as the in-process restore
    /// returns (closer to its release than a `ckpt` process exiting). A thread released before its
    /// interrupted call was re-entered runs the handler outside the call and then sleeps forever:
    /// the workload reports which one after 10 s.
    /// </summary>
    [Fact]
    public void A_signal_sent_the_moment_restore_returns_wakes_every_thread()
    {
        using var target = CheckpointTestSupport.Start("ckpt_threads", "16", "wake");
        int pid = target.Pid;
        string image = CheckpointTestSupport.TempPath("threads-wake.img");
        RestoreTestProcesses.WaitUntilInSyscall(pid, SYS_rt_sigsuspend);
        int[] workers = WorkloadThreads(target.Log).Keys.Where(tid => tid != pid).ToArray();
        Assert.Equal(15, workers.Length);
        WaitUntilBackInSyscalls(pid, StableSyscalls(target.Log), TimeSpan.FromSeconds(5));
        CkptCheckpoint(pid, image, kill: true);
        RestoreTestProcesses.WaitForExit(pid);
        RestoreTestProcesses.WaitUntilGone(pid);

        for (int round = 0; round < InstantSignalRestores; round++)
        {
            int restored = RestoreInProcess(image);
            try
            {
                // Nothing between the return and the signals.
                int[] errors = workers.Select(tid => Tgkill(pid, tid, SIGUSR2)).ToArray();
                RestoreTestProcesses.Signal(pid, SIGUSR1);
                Assert.Equal(pid, restored);
                Assert.True(errors.All(e => e == 0),
                    $"round {round + 1}: tgkill failed for threads {string.Join(", ", workers.Where((_, i) => errors[i] != 0))} (errno 3: no such thread)");
                WaitForPass(target.Log, pid, PassTimeout, passes: round + 1);
                RestoreTestProcesses.WaitUntilGone(pid);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new Xunit.Sdk.XunitException($"restore {round + 1} of {InstantSignalRestores}: {e.Message}");
            }
            finally
            {
                KillIfAlive(pid);
            }
        }
    }

    private static void WaitForNewLines(string log, string prefix, int count, int pid)
    {
        for (int i = 0; i < 1000 && LinesStarting(log, prefix).Length < count; i++) Thread.Sleep(10);
        Assert.True(LinesStarting(log, prefix).Length >= count,
            $"fewer than {count} {prefix} lines in {log} after 10 s: it does not run on\n{DescribeThreads(pid)}");
    }
}
