using Ckpt.Engine.Linux;

namespace Ckpt.Engine.Tests;

/// <summary>
/// Named pipes (issue 10), with tests/workloads/ckpt_fifo.c: a FIFO opened read-write and read-only by a
/// parent and write-only by its child, 28 bytes in flight. After checkpoint --kill and restore, and after a
/// checkpoint without --kill, the FIFO is the one at its path, every end has its flags, the bytes are read
/// once each, and the child's end still reaches the parent's (the workload checks it all). Refused by name:
/// a FIFO that is no longer a FIFO at restore time, and a FIFO a process outside the tree has open.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class FifoCheckpointRestoreTests
{
    private const int SIGKILL = 9;

    private static string FifoPath(Target target) => File.ReadAllLines(target.Log).Single(l => l.StartsWith("FIFO ", StringComparison.Ordinal))[5..];

    private static int Writer(Target target) => int.Parse(File.ReadAllLines(target.Log).Single(l => l.StartsWith("WRITER ", StringComparison.Ordinal))[7..]);

    private static void CleanUp(Target target, string fifo)
    {
        RestoreTestProcesses.TryKill(target.Pid, SIGKILL);
        RestoreTestProcesses.TryKill(Writer(target), SIGKILL);
        try { File.Delete(fifo); Directory.Delete(Path.GetDirectoryName(fifo)!); }
        catch (IOException) { /* the workload removed it */ }
    }

    [Fact]
    public void A_fifo_with_bytes_in_flight_comes_back_on_its_path_and_the_tree_passes()
    {
        using var target = Start("ckpt_fifo");
        string fifo = FifoPath(target);
        try
        {
            string image = TempPath("fifo.img");
            CkptCheckpoint(target.Pid, image, kill: true);
            ImageModel model = ReadImage(image).Image!;
            var ends = model.Processes.SelectMany(p => p.FileTable.Files.Values).Where(f => f.Record.Kind == FileKind.Fifo).DistinctBy(f => f.Record.ObjRef).ToList();
            Assert.Equal(3, ends.Count); // rw and rd (shared with the child), the child's write end
            Assert.All(ends, e => Assert.Equal(fifo, e.Path));
            PipeImage buffer = Assert.Single(ends.Select(e => e.Fifo!).Distinct());
            Assert.Equal("root-data\nhello-from-writer\n"u8.ToArray(), buffer.Data);
            RestoreTestProcesses.WaitForExit(target.Pid);
            RestoreTestProcesses.WaitUntilGone(target.Pid);
            RestoreTestProcesses.WaitUntilGone(Writer(target));

            Assert.Equal(target.Pid, CkptRestore(image));
            target.RequirePass();
        }
        finally
        {
            CleanUp(target, fifo);
        }
    }

    [Fact]
    public void A_checkpoint_without_kill_leaves_the_fifos_bytes_where_they_were()
    {
        using var target = Start("ckpt_fifo");
        string fifo = FifoPath(target);
        try
        {
            CkptCheckpoint(target.Pid, TempPath("fifo-live.img"), kill: false);
            target.RequirePass(); // reads the 28 bytes exactly once
        }
        finally
        {
            CleanUp(target, fifo);
        }
    }

    [Fact]
    public void A_fifo_that_is_a_regular_file_at_restore_time_refuses_the_restore_naming_it()
    {
        using var target = Start("ckpt_fifo");
        string fifo = FifoPath(target);
        try
        {
            string image = TempPath("fifo-gone.img");
            CkptCheckpoint(target.Pid, image, kill: true);
            RestoreTestProcesses.WaitForExit(target.Pid);
            RestoreTestProcesses.WaitUntilGone(Writer(target));
            File.Delete(fifo);
            File.WriteAllText(fifo, "not a FIFO");
            var (code, _, stderr) = RunCkpt(EngineTimeout, "restore", "--input", image);
            Assert.True(code == 6, $"exit {code}: {stderr}");
            Assert.Contains($"{fifo} was a FIFO and is a regular file now", stderr);
            Assert.False(Directory.Exists($"/proc/{target.Pid}"), "the refused restore created the process");

            File.Delete(fifo);
            (code, _, stderr) = RunCkpt(EngineTimeout, "restore", "--input", image);
            Assert.True(code == 6, $"exit {code}: {stderr}");
            Assert.Contains($"the FIFO {fifo} is missing", stderr);
        }
        finally
        {
            CleanUp(target, fifo);
        }
    }

    [Fact]
    public void A_fifo_open_in_a_process_outside_the_tree_is_refused_naming_it_and_the_tree_runs_on()
    {
        using var target = Start("ckpt_fifo");
        string fifo = FifoPath(target);
        int outside = Native.open(fifo, 2 | 0x800 | 0x80000 /* O_RDWR | O_NONBLOCK | O_CLOEXEC */, 0);
        try
        {
            Assert.True(outside >= 0);
            var (code, _, stderr) = RunCkpt(EngineTimeout, "checkpoint", "--pid", target.Pid.ToString(), "--output", TempPath("fifo-outside.img"));
            Assert.True(code == 6, $"exit {code}: {stderr}");
            Assert.Contains($"is also open in process {Environment.ProcessId}", stderr);
            Assert.Contains(fifo, stderr);
            Native.close(outside);
            outside = -1;
            target.RequirePass();
        }
        finally
        {
            if (outside >= 0) Native.close(outside);
            CleanUp(target, fifo);
        }
    }
}
