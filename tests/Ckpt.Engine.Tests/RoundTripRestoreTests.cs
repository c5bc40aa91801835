using Ckpt.Engine.Restore;

namespace Ckpt.Engine.Tests;

/// <summary>Checkpoint a real process, kill it, restore it: same pid, same mappings, still working.</summary>
[Collection(RestoreCollection.Name)]
public sealed class RoundTripRestoreTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("ckpt-restore-test-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void SleepComesBackWithItsPidAndMappings()
    {
        int pid = RestoreTestProcesses.StartSleeper();
        string image = Path.Combine(_directory, "sleep.img");
        string[] mapsBefore, fdsBefore;
        try
        {
            RestoreTestProcesses.WaitUntilInSyscall(pid, 230); // clock_nanosleep: started up and sleeping
            RestoreTestCheckpoint.Checkpoint(pid, image);
            mapsBefore = File.ReadAllLines($"/proc/{pid}/maps");
            fdsBefore = Descriptors(pid);
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
            Assert.Equal(fdsBefore, Descriptors(pid)); // nothing of the engine's left open
            Assert.Single(Directory.GetDirectories($"/proc/{pid}/task"));
            Thread.Sleep(200);
            Assert.Contains("State:\tS (sleeping)", File.ReadAllText($"/proc/{pid}/status"));
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
    }

    [Fact]
    public void WorkloadKeepsFilePositionHandlersMaskAndMemory()
    {
        string log = Path.Combine(_directory, "state.log");
        string data = Path.Combine(_directory, "data.txt");
        int pid = RestoreTestProcesses.Spawn(log, RestoreWorkloads.Path("restore_state"), data);
        string image = Path.Combine(_directory, "state.img");
        string[] mapsBefore;
        try
        {
            RestoreTestProcesses.WaitForLine(log, "READY");
            RestoreTestProcesses.WaitUntilInSyscall(pid, 34); // pause
            RestoreTestProcesses.Signal(pid, SIGUSR2);
            RestoreTestProcesses.WaitUntilInSyscall(pid, 34);
            RestoreTestCheckpoint.Checkpoint(pid, image);
            mapsBefore = File.ReadAllLines($"/proc/{pid}/maps");
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }

        // The 8 KiB of shared memory is mapped twice (a second view made with mremap): stored once.
        ImageContents contents = CheckpointTestSupport.ReadImage(image);
        var shared = contents.Vmas.Where(v => v.VmaType == Ckpt.Image.Records.VmaType.SharedAnon).ToList();
        Assert.Equal(2, shared.Count);
        Assert.Single(shared.Select(v => v.SharedMemoryObjRef).Distinct());
        Assert.Equal(2ul, (ulong)shared.Sum(v => (long)contents.PagesSaved(v)));

        Assert.Equal(pid, Restorer.Restore(new RestoreOptions(image)).Pid);
        try
        {
            Assert.Equal(ComparableMaps(mapsBefore), ComparableMaps(File.ReadAllLines($"/proc/{pid}/maps")));
            RestoreTestProcesses.WaitUntilInSyscall(pid, 34); // the interrupted pause() runs again
            RestoreTestProcesses.Signal(pid, SIGUSR2);
            RestoreTestProcesses.WaitUntilInSyscall(pid, 34);
            RestoreTestProcesses.Signal(pid, SIGUSR1);
            RestoreTestProcesses.WaitForLine(log, "PASS 2");
            RestoreTestProcesses.WaitUntilGone(pid);
            Assert.Equal("0123456789X", File.ReadAllText(data));
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
    }

    /// <summary>
    /// maps lines with the inode of shared anonymous memory masked: a restore recreates the
    /// object (same contents, same addresses), and the kernel gives every new one a new inode.
    /// </summary>
    internal static string[] ComparableMaps(string[] lines) =>
        lines.Select(line => line.Contains("/dev/zero (deleted)")
            ? string.Join(' ', line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select((field, i) => i == 4 ? "*" : field))
            : line).ToArray();

    private const int SIGUSR1 = 10, SIGUSR2 = 12;

    private static string[] Descriptors(int pid) =>
        Directory.GetFileSystemEntries($"/proc/{pid}/fd").Order().Select(fd => $"{Path.GetFileName(fd)} -> {new FileInfo(fd).LinkTarget}").ToArray();

    private static string ProcessNamesFor(int pid) => File.ReadAllText($"/proc/{pid}/comm").TrimEnd('\n');
}
