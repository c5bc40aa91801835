using System.Diagnostics;
using Ckpt.Engine.Restore;
using Xunit;

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
        int pid = RestoreTestProcesses.Spawn("/dev/null", "/usr/bin/sleep", "20");
        string image = Path.Combine(_directory, "sleep20.img");
        try
        {
            RestoreTestProcesses.WaitUntilInSyscall(pid, 230);
            Thread.Sleep(TimeSpan.FromSeconds(5));
            RestoreTestCheckpoint.Checkpoint(pid, image);
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
        Thread.Sleep(TimeSpan.FromSeconds(10));

        Assert.Equal(pid, Restorer.Restore(new RestoreOptions(image)).Pid);
        var sinceRestore = Stopwatch.StartNew();
        while (Directory.Exists($"/proc/{pid}") && sinceRestore.Elapsed < TimeSpan.FromSeconds(30))
            Thread.Sleep(20);
        TimeSpan lived = sinceRestore.Elapsed;
        RestoreTestProcesses.KillAndReap(pid);
        // ~15 s left at checkpoint time; generous margins for a loaded 2-core machine.
        Assert.InRange(lived.TotalSeconds, 13.5, 17.5);
    }
}
