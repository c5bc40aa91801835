using Ckpt.Engine.Restore;

namespace Ckpt.Engine.Tests;

/// <summary>Programs not written for this project, and the checkpoint issue's workload.</summary>
[Collection(RestoreCollection.Name)]
public sealed class RestoreRealProgramTests : IDisposable
{
    private const int SIGUSR1 = 10;
    private readonly string _directory = Directory.CreateTempSubdirectory("ckpt-restore-real-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void CheckpointWorkloadPassesAfterRestore()
    {
        string log = Path.Combine(_directory, "state.log");
        int pid = RestoreTestProcesses.Spawn(log, RestoreWorkloads.Path("ckpt_state"), Path.Combine(_directory, "data"));
        string image = Path.Combine(_directory, "state.img");
        string[] mapsBefore;
        try
        {
            RestoreTestProcesses.WaitForLine(log, $"READY {pid}");
            RestoreTestProcesses.WaitUntilInSyscall(pid, 34);
            mapsBefore = RoundTripRestoreTests.ComparableMaps(File.ReadAllLines($"/proc/{pid}/maps"));
            RestoreTestCheckpoint.Checkpoint(pid, image, kill: true);
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
        Assert.Equal(pid, Restorer.Restore(new RestoreOptions(image)).Pid);
        try
        {
            Assert.Equal(mapsBefore, RoundTripRestoreTests.ComparableMaps(File.ReadAllLines($"/proc/{pid}/maps")));
            RestoreTestProcesses.WaitUntilInSyscall(pid, 34);
            RestoreTestProcesses.Signal(pid, SIGUSR1);
            RestoreTestProcesses.WaitForLine(log, "PASS");
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
    }

    [Fact]
    public void PythonCounterContinuesWithoutGapOrRepeat()
    {
        string script = Path.Combine(_directory, "counter.py");
        string counts = Path.Combine(_directory, "counts.txt");
        File.WriteAllText(script, """
            import sys, time
            out = open(sys.argv[1], "a")
            i = 0
            while True:
                out.write(f"{i}\n")
                out.flush()
                i += 1
                time.sleep(0.02)
            """);
        int pid = RestoreTestProcesses.Spawn(Path.Combine(_directory, "py.log"), "/usr/bin/python3", script, counts);
        string image = Path.Combine(_directory, "py.img");
        int linesAtCheckpoint;
        try
        {
            WaitForLines(counts, 20);
            RestoreTestCheckpoint.Checkpoint(pid, image, kill: true);
            linesAtCheckpoint = File.ReadAllLines(counts).Length;
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
        Assert.Equal(pid, Restorer.Restore(new RestoreOptions(image)).Pid);
        try
        {
            WaitForLines(counts, linesAtCheckpoint + 20);
            Assert.Equal("python3", File.ReadAllText($"/proc/{pid}/comm").TrimEnd('\n'));
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
        string[] lines = File.ReadAllLines(counts);
        Assert.Equal(Enumerable.Range(0, lines.Length).Select(i => i.ToString()), lines);
    }

    private static void WaitForLines(string path, int count)
    {
        for (int i = 0; i < 1000 && (!File.Exists(path) || File.ReadAllLines(path).Length < count); i++)
            Thread.Sleep(10);
        Assert.True(File.ReadAllLines(path).Length >= count, $"{path} has fewer than {count} lines");
    }
}
