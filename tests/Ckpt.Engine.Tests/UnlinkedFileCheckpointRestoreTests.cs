using Ckpt.Engine.Checkpoint;

namespace Ckpt.Engine.Tests;

/// <summary>
/// memfds and deleted files (tests/workloads/ckpt_memfd.c: fd 3 a sealed, sparse memfd, fd 4 a memfd
/// without sealing, fd 5 a deleted file opened O_APPEND): the image holds their contents sparsely with
/// size, seals and owner; after `checkpoint --kill` + `restore` they have the same names, contents,
/// seals, flags and positions; a deleted file whose directory is gone refuses the restore by name.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class UnlinkedFileCheckpointRestoreTests
{
    private const int SYS_pause = 34;

    private static (Target Target, string Directory) StartHolding()
    {
        string directory = Directory.CreateTempSubdirectory("ckpt-memfd-").FullName;
        var target = Start("ckpt_memfd", directory);
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        return (target, directory);
    }

    [Fact]
    public void Image_holds_contents_sparsely_with_size_seals_and_owner_and_the_target_runs_on()
    {
        var (target, directory) = StartHolding();
        using (target)
        {
            string image = TempPath("memfd.img");
            using (var output = new FileStream(image, FileMode.Create, FileAccess.Write))
                Checkpointer.Run(new CheckpointOptions(target.Pid, output, false));

            FileTableImage table = ReadImage(image).Image!.Processes[0].FileTable;
            FileImage File(int fd) => table.Files[table.Descriptors.Single(d => d.Fd == fd).FileObjRef];
            Assert.Equal((FileKind.Memfd, "/memfd:ckpt-sealed (deleted)", 7L), (File(3).Record.Kind, File(3).Path, File(3).Record.Position));
            UnlinkedFileImage sealedMemfd = Assert.IsType<UnlinkedFileImage>(File(3).Unlinked);
            Assert.Equal((FileSeals.Shrink | FileSeals.Grow, (1L << 20) + 6), (sealedMemfd.Record.Seals, sealedMemfd.Record.FileSize));
            // Two data pages of 257: the hole between is not in the image.
            Assert.Equal([0ul, 1ul << 20], sealedMemfd.Chunks.SelectMany(c => c.Addresses));
            Assert.Equal((FileKind.Memfd, FileSeals.Seal, 3 * 4096L), (File(4).Record.Kind, File(4).Unlinked!.Record.Seals, File(4).Unlinked!.Record.FileSize));
            Assert.Equal((FileKind.DeletedFile, Path.Combine(directory, "gone") + " (deleted)", 16L), (File(5).Record.Kind, File(5).Path, File(5).Unlinked!.Record.FileSize));
            Assert.Equal(0x1a0u, File(5).Record.Mode & 0xfff);
            target.RequirePass(); // the checkpoint changed nothing of the files
        }
    }

    [Fact]
    public void Memfds_and_deleted_files_come_back_with_contents_seals_and_positions_after_checkpoint_kill_and_restore()
    {
        var (target, _) = StartHolding();
        using (target)
        {
            string image = TempPath("memfd-kill.img");
            var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
            Assert.True(code == 0, stderr);
            RestoreAndRequirePass(target, image);
        }
    }

    [Fact]
    public void A_deleted_file_whose_directory_is_gone_refuses_the_restore_naming_it()
    {
        var (target, directory) = StartHolding();
        using (target)
        {
            string image = TempPath("memfd-nodir.img");
            var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
            Assert.True(code == 0, stderr);
            RestoreTestProcesses.WaitForExit(target.Pid);
            RestoreTestProcesses.WaitUntilGone(target.Pid);
            Directory.Delete(directory);
            var refused = RunCli(["restore", "--input", image]);
            Assert.Equal(6, refused.ExitCode);
            Assert.Contains($"fd 5 is the deleted file {Path.Combine(directory, "gone")} (deleted), whose directory {directory} no longer exists", refused.Stderr);
            Assert.False(IsAlive(target.Pid));
        }
    }
}
