using Ckpt.Engine.Restore;

namespace Ckpt.Engine.Tests;

/// <summary>One process checkpointed and restored 20 times in a row keeps its state; each cycle after
/// the first checkpoints a restored process.</summary>
[Collection(RestoreCollection.Name)]
public sealed class RestoreCycleTests : IDisposable
{
    private const int SIGUSR1 = 10, SIGUSR2 = 12, Cycles = 20;
    private readonly string _directory = Directory.CreateTempSubdirectory("ckpt-restore-cycles-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void TwentyCyclesKeepTheState()
    {
        string log = Path.Combine(_directory, "cycles.log");
        int pid = RestoreTestProcesses.Spawn(log, RestoreWorkloads.Path("restore_state"), Path.Combine(_directory, "data.txt"));
        RestoreTestProcesses.WaitForLine(log, "READY");
        string[]? firstMaps = null;
        for (int cycle = 0; cycle < Cycles; cycle++)
        {
            RestoreTestProcesses.WaitUntilInSyscall(pid, 34);
            RestoreTestProcesses.Signal(pid, SIGUSR2); // one bump per cycle, counted at the end
            RestoreTestProcesses.WaitUntilInSyscall(pid, 34);
            string image = Path.Combine(_directory, $"cycle{cycle}.img");
            try
            {
                RestoreTestCheckpoint.Checkpoint(pid, image);
                firstMaps ??= RoundTripRestoreTests.ComparableMaps(File.ReadAllLines($"/proc/{pid}/maps"));
            }
            finally
            {
                RestoreTestProcesses.KillAndReap(pid);
            }
            Assert.Equal(pid, Restorer.Restore(new RestoreOptions(image)).Pid);
            Assert.Equal(firstMaps, RoundTripRestoreTests.ComparableMaps(File.ReadAllLines($"/proc/{pid}/maps")));
            File.Delete(image);
        }
        RestoreTestProcesses.WaitUntilInSyscall(pid, 34);
        RestoreTestProcesses.Signal(pid, SIGUSR1);
        RestoreTestProcesses.WaitForLine(log, $"PASS {Cycles}");
        RestoreTestProcesses.WaitUntilGone(pid);
    }
}
