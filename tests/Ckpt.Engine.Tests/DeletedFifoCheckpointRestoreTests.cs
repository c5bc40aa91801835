using System.Runtime.InteropServices;

namespace Ckpt.Engine.Tests;

/// <summary>
/// Deleted FIFOs (issue 10), with tests/workloads/ckpt_fifo.c in its "deleted" modes: the FIFO of the
/// named-FIFO test, unlinked once 28 bytes are buffered (and its directory removed too in "deleted-dir").
/// After checkpoint --kill and restore, every end is one FIFO again with no name, its mode and owner, the
/// bytes read once each, the child's end still reaching the parent's, and no name left behind (the
/// workload checks it all); /proc shows the same "PATH (deleted)" when the original path was free, a
/// hidden name next to it when something took the path, a private directory under /tmp when the
/// directory is gone. A checkpoint without --kill leaves it as it was; a FIFO owned by another user than
/// the holder is refused by name.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed partial class DeletedFifoCheckpointRestoreTests
{
    private const int SIGKILL = 9;

    private static string FifoPath(Target target) => File.ReadAllLines(target.Log).Single(l => l.StartsWith("FIFO ", StringComparison.Ordinal))[5..];

    private static int Writer(Target target) => int.Parse(File.ReadAllLines(target.Log).Single(l => l.StartsWith("WRITER ", StringComparison.Ordinal))[7..]);

    private static void CleanUp(Target target, string fifo)
    {
        RestoreTestProcesses.TryKill(target.Pid, SIGKILL);
        RestoreTestProcesses.TryKill(Writer(target), SIGKILL);
        try { if (File.Exists(fifo)) File.Delete(fifo); if (Directory.Exists(Path.GetDirectoryName(fifo))) Directory.Delete(Path.GetDirectoryName(fifo)!); }
        catch (IOException) { /* the workload removed it */ }
    }

    private static string CheckpointKill(Target target, string name)
    {
        string image = TempPath(name);
        CkptCheckpoint(target.Pid, image, kill: true);
        RestoreTestProcesses.WaitForExit(target.Pid);
        RestoreTestProcesses.WaitUntilGone(target.Pid);
        RestoreTestProcesses.WaitUntilGone(Writer(target));
        return image;
    }

    private static string LinkOf(int pid, int fd) => new FileInfo($"/proc/{pid}/fd/{fd}").LinkTarget!;

    [Theory]
    [InlineData("deleted")]
    [InlineData("deleted-dir")]
    public void A_deleted_fifo_with_bytes_in_flight_comes_back_without_a_name_and_the_tree_passes(string mode)
    {
        using var target = Start("ckpt_fifo", mode);
        string fifo = FifoPath(target);
        try
        {
            string image = CheckpointKill(target, $"fifo-{mode}.img");
            ImageModel model = ReadImage(image).Image!;
            var ends = model.Processes.SelectMany(p => p.FileTable.Files.Values).Where(f => f.Record.Kind == FileKind.DeletedFifo).DistinctBy(f => f.Record.ObjRef).ToList();
            Assert.Equal(3, ends.Count); // rw and rd (shared with the child), the child's write end
            Assert.All(ends, e => Assert.Equal($"{fifo} (deleted)", e.Path));
            PipeImage buffer = Assert.Single(ends.Select(e => e.Fifo!).Distinct());
            Assert.Equal("root-data\nhello-from-writer\n"u8.ToArray(), buffer.Data);

            Assert.Equal(target.Pid, CkptRestore(image));
            string link = LinkOf(target.Pid, 3);
            if (mode == "deleted")
                Assert.Equal($"{fifo} (deleted)", link); // made at its own path, free again, and unlinked
            else
            {
                Assert.Matches(@"^/tmp/\.ckpt-fifo-[0-9a-f]{32}/fifo \(deleted\)$", link);
                Assert.False(Directory.Exists(Path.GetDirectoryName(link)), "the private directory was left behind");
            }
            Assert.Equal(link, LinkOf(Writer(target), 5)); // the child's own end is the same FIFO
            target.RequirePass();
        }
        finally
        {
            CleanUp(target, fifo);
        }
    }

    [Fact]
    public void A_deleted_fifo_whose_path_is_taken_at_restore_is_made_next_to_it_and_the_other_file_is_left_alone()
    {
        using var target = Start("ckpt_fifo", "deleted");
        string fifo = FifoPath(target);
        try
        {
            string image = CheckpointKill(target, "fifo-taken.img");
            File.WriteAllText(fifo, "someone else's file");
            Assert.Equal(target.Pid, CkptRestore(image));
            Assert.Matches($@"^{System.Text.RegularExpressions.Regex.Escape(Path.GetDirectoryName(fifo)!)}/\.ckpt-fifo-[0-9a-f]{{32}} \(deleted\)$", LinkOf(target.Pid, 3));
            Assert.Equal("someone else's file", File.ReadAllText(fifo));
            File.Delete(fifo); // the workload requires its directory empty
            target.RequirePass();
        }
        finally
        {
            CleanUp(target, fifo);
        }
    }

    [Fact]
    public void A_checkpoint_without_kill_leaves_the_deleted_fifo_and_its_bytes_as_they_were()
    {
        using var target = Start("ckpt_fifo", "deleted");
        string fifo = FifoPath(target);
        try
        {
            CkptCheckpoint(target.Pid, TempPath("fifo-deleted-live.img"), kill: false);
            Assert.Equal($"{fifo} (deleted)", LinkOf(target.Pid, 3));
            target.RequirePass(); // reads the 28 bytes exactly once, no name appeared
        }
        finally
        {
            CleanUp(target, fifo);
        }
    }

    [Fact]
    public void A_deleted_fifo_owned_by_another_user_is_refused_naming_it_and_the_tree_runs_on()
    {
        using var target = Start("ckpt_fifo", "deleted");
        string fifo = FifoPath(target);
        string handle = $"/proc/{target.Pid}/fd/3";
        try
        {
            Assert.Equal(0, chown(handle, 4321, 0)); // follows the /proc link to the FIFO itself
            var (code, _, stderr) = RunCkpt(EngineTimeout, "checkpoint", "--pid", target.Pid.ToString(), "--output", TempPath("fifo-owner.img"), "--kill");
            Assert.True(code == 6, $"exit {code}: {stderr}");
            Assert.Contains($"fd 3 of process {target.Pid} (the deleted FIFO {fifo} (deleted)) is owned by uid 4321 gid 0", stderr);
            Assert.Equal(0, chown(handle, 0, 0));
            target.RequirePass();
        }
        finally
        {
            CleanUp(target, fifo);
        }
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int chown(string path, uint owner, uint group);
}
