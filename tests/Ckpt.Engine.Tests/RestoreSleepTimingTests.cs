using System.Diagnostics;
using Ckpt.Engine.Restore;

namespace Ckpt.Engine.Tests;

/// <summary>
/// linux-cr's relative restart model: `sleep 20` checkpointed after 5 s and kept down for 10 s
/// sleeps the 15 s it had left after the restore (not 20, not 5, not 0).
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class RestoreSleepTimingTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("ckpt-restore-sleep-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void InterruptedSleepContinuesForTheTimeLeft()
    {
        long spawned = Stopwatch.GetTimestamp();
        int pid = RestoreTestProcesses.Spawn("/dev/null", "/usr/bin/sleep", "20");
        string image = Path.Combine(_directory, "sleep20.img");
        long sleeping, checkpointStart, checkpointEnd;
        try
        {
            RestoreTestProcesses.WaitUntilInSyscall(pid, 230);
            sleeping = Stopwatch.GetTimestamp();
            Thread.Sleep(TimeSpan.FromSeconds(5));
            checkpointStart = Stopwatch.GetTimestamp();
            RestoreTestCheckpoint.Checkpoint(pid, image);
            checkpointEnd = Stopwatch.GetTimestamp();
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
        Thread.Sleep(TimeSpan.FromSeconds(10));

        // What was left at the freeze, bounded by what the test saw: the sleep began between the
        // spawn and the moment it was seen in clock_nanosleep, the freeze fell inside the
        // checkpoint call. ~15 s on an idle machine; a busy one shifts it, the model stays.
        double leftAtMost = 20 - Stopwatch.GetElapsedTime(sleeping, checkpointStart).TotalSeconds;
        double leftAtLeast = 20 - Stopwatch.GetElapsedTime(spawned, checkpointEnd).TotalSeconds;

        long restoreStart = Stopwatch.GetTimestamp();
        Assert.Equal(pid, Restorer.Restore(new RestoreOptions(image)).Pid);
        long restored = Stopwatch.GetTimestamp();
        // Exited = a zombie or gone: when its parent (init) reaps it is no part of the sleep.
        while (!RestoreTestProcesses.HasExited(pid) && Stopwatch.GetElapsedTime(restored) < TimeSpan.FromSeconds(30))
            Thread.Sleep(20);
        TimeSpan lived = Stopwatch.GetElapsedTime(restored);
        if (!RestoreTestProcesses.HasExited(pid)) RestoreTestProcesses.KillAndReap(pid);

        // The sleep resumed inside the restore call, so it may have run up to that call's length
        // before we started timing; 0.5 s covers timer slack and this loop's polling.
        double restoreSeconds = Stopwatch.GetElapsedTime(restoreStart, restored).TotalSeconds;
        Assert.InRange(leftAtMost, 13.0, 15.5); // the scenario itself: checkpointed about 5 s into sleep 20
        Assert.InRange(lived.TotalSeconds, leftAtLeast - restoreSeconds - 0.5, leftAtMost + 0.5);
    }
}
