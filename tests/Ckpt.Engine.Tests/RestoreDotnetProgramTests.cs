namespace Ckpt.Engine.Tests;

/// <summary>
/// A real .NET program (tests/workloads/dotnet_counter, built by build.sh): the runtime's W^X double
/// mapping (a "doublemapper" memfd open as a descriptor and mapped read-write and read-execute at other
/// addresses), its membarrier registration (FlushProcessWriteBuffers), a GC heap, a timer, thread-pool
/// tasks and a dedicated thread appending a counter to a file. The image holds the memfd as one object
/// of its descriptor and every mapping, and the registration; after `ckpt checkpoint --kill` +
/// `ckpt restore` the program keeps its pid and its threads' tids and names, goes on counting from where it was, and its
/// SIGUSR2 handler finds every number once and in order and its kept allocations intact.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class RestoreDotnetProgramTests : IDisposable
{
    private const int SIGUSR2 = 12;
    private readonly string _directory = Directory.CreateTempSubdirectory("ckpt-restore-dotnet-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static string Program()
    {
        string path = Path.Combine(CheckpointTestSupport.RepositoryRoot(), "artifacts", "workloads", "dotnet_counter", "dotnet_counter");
        Assert.True(File.Exists(path), $"{path} is missing: build.sh builds it (tests/workloads/dotnet_counter)");
        return path;
    }

    [Fact]
    public void A_dotnet_program_with_its_double_mapped_code_and_membarrier_continues_after_checkpoint_kill_and_restore()
    {
        string output = Path.Combine(_directory, "ticks.txt"), log = Path.Combine(_directory, "dotnet.log"), image = Path.Combine(_directory, "dotnet.img");
        int pid = RestoreTestProcesses.Spawn(log, Program(), output);
        SortedDictionary<int, string> before;
        try
        {
            RestoreTestProcesses.WaitForLine(log, $"READY {pid}", 30);
            WaitForTicks(output, 5, pid);
            before = Threads(pid);
            Assert.True(before.Count > 3, $"the runtime runs {before.Count} threads");
            CkptCheckpoint(pid, image, kill: true);
        }
        finally
        {
            RestoreTestProcesses.KillAndReap(pid);
        }
        int ticksAtCheckpoint = Ticks(output);
        RequireDoubleMappingAndMembarrier(image);

        Assert.Equal(pid, CkptRestore(image));
        try
        {
            // Every thread is back with its tid and name (the thread pool may have started more since).
            var after = Threads(pid);
            Assert.True(before.All(t => after.TryGetValue(t.Key, out string? name) && name == t.Value), $"threads before: {Describe(before)}\nafter: {Describe(after)}");
            WaitForTicks(output, ticksAtCheckpoint + 10, pid);
            RestoreTestProcesses.Signal(pid, SIGUSR2);
            WaitForPass(log, pid, TimeSpan.FromSeconds(20));
        }
        finally
        {
            KillIfAlive(pid);
        }
    }

    // What makes this program a test of the mapped memfd and membarrier work, read from its image.
    private static void RequireDoubleMappingAndMembarrier(string image)
    {
        ProcessImage process = CheckpointTestSupport.ReadImage(image).Image!.Processes[0];
        Assert.True(process.Memory.Membarrier.HasFlag(MembarrierRegistrations.PrivateExpedited), $"membarrier registrations {process.Memory.Membarrier}");
        var views = process.Memory.Vmas.Where(v => v.File?.Path == "/memfd:doublemapper (deleted)").ToList();
        Assert.Contains(views, v => v.Record.Protection == 5); // read-execute
        Assert.Contains(views, v => v.Record.Protection == 3); // read-write
        FileImage memfd = views[0].File!;
        Assert.All(views, v => Assert.Same(memfd, v.File));
        Assert.Contains(process.FileTable.Descriptors, d => d.FileObjRef == memfd.Record.ObjRef);
    }

    private static int Ticks(string output) => File.ReadAllLines(output).Length;

    private static void WaitForTicks(string output, int count, int pid)
    {
        for (int i = 0; i < 3000 && Ticks(output) < count; i++) Thread.Sleep(10);
        Assert.True(Ticks(output) >= count, $"the program wrote {Ticks(output)} of {count} ticks within 30 s\n{DescribeThreads(pid)}");
    }
}
