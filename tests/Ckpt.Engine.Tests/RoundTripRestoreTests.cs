using Ckpt.Engine.Restore;
using Xunit;

namespace Ckpt.Engine.Tests;

/// <summary>Checkpoint a real process, kill it, restore it: same pid, same mappings, still working.</summary>
public sealed class RoundTripRestoreTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("ckpt-restore-test-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void SleepComesBackWithItsPidAndMappings()
    {
        int pid = RestoreTestProcesses.StartSleeper();
        string image = Path.Combine(_directory, "sleep.img");
        string[] mapsBefore;
        try
        {
            RestoreTestProcesses.WaitUntilInSyscall(pid, 230); // clock_nanosleep: started up and sleeping
            RestoreTestCheckpoint.Checkpoint(pid, image);
            mapsBefore = File.ReadAllLines($"/proc/{pid}/maps");
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }

        RestoreResult result = Restorer.Restore(new RestoreOptions(image));
        try
        {
            Assert.Equal(pid, result.Pid);
            Assert.Equal("sleep", ProcessNamesFor(pid));
            Assert.Equal(mapsBefore, File.ReadAllLines($"/proc/{pid}/maps"));
            Thread.Sleep(200);
            Assert.Contains("State:\tS (sleeping)", File.ReadAllText($"/proc/{pid}/status"));
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
    }

    private static string ProcessNamesFor(int pid) => File.ReadAllText($"/proc/{pid}/comm").TrimEnd('\n');
}
