namespace Ckpt.Engine.Tests;

/// <summary>
/// inotify (tests/workloads/ckpt_inotify.c: fd 3 with watch 1 on a directory for IN_CREATE and watch 2 on
/// a file in it for IN_MODIFY): the image holds both watches with their paths, the instance reports
/// events on the same watch descriptors after `checkpoint --kill` + `restore`, a restore whose watched
/// path is gone is refused naming it, and an instance with queued events is refused at checkpoint time
/// while the target runs on untouched.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class InotifyCheckpointRestoreTests
{
    private const int SYS_pause = 34;

    private static (Target Target, string Directory) StartWatching()
    {
        string directory = System.IO.Directory.CreateTempSubdirectory("ckpt-inotify-").FullName;
        File.WriteAllText(Path.Combine(directory, "watched"), "watched\n");
        var target = Start("ckpt_inotify", directory);
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        return (target, directory);
    }

    [Fact]
    public void Watches_are_in_the_image_and_report_events_after_checkpoint_kill_and_restore()
    {
        var (target, directory) = StartWatching();
        using (target)
        {
            string image = TempPath("inotify.img");
            var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
            Assert.True(code == 0, stderr);

            FileTableImage table = ReadImage(image).Image!.Processes[0].FileTable;
            FileImage file = table.Files[table.Descriptors.Single(d => d.Fd == 3).FileObjRef];
            Assert.Equal((FileKind.Inotify, "anon_inode:inotify"), (file.Record.Kind, file.Path));
            InotifyImage inotify = Assert.IsType<InotifyImage>(file.Inotify);
            Assert.Equal(0x800u, inotify.Record.Flags);
            Assert.Equal([(1, 0x100u, directory), (2, 0x2u, Path.Combine(directory, "watched"))],
                inotify.Watches.Select(w => (w.Watch.WatchDescriptor, w.Watch.Mask, w.Path)));
            RestoreAndRequirePass(target, image);
        }
    }

    [Fact]
    public void A_restore_whose_watched_path_is_gone_is_refused_naming_it()
    {
        var (target, directory) = StartWatching();
        using (target)
        {
            string image = TempPath("inotify-gone.img");
            var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
            Assert.True(code == 0, stderr);
            RestoreTestProcesses.WaitForExit(target.Pid);
            RestoreTestProcesses.WaitUntilGone(target.Pid);
            string watched = Path.Combine(directory, "watched");
            File.Delete(watched);
            var refused = RunCli(["restore", "--input", image]);
            Assert.NotEqual(0, refused.ExitCode);
            Assert.Contains($"inotify watch 2 watched {watched}, which no longer exists", refused.Stderr);
            Assert.False(IsAlive(target.Pid));
        }
    }

    [Fact]
    public void Queued_events_refuse_the_checkpoint_and_the_target_runs_on_untouched()
    {
        var (target, directory) = StartWatching();
        using (target)
        {
            File.WriteAllText(Path.Combine(directory, "queued"), ""); // IN_CREATE queued on watch 1
            string image = TempPath("inotify-queued.img");
            var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image]);
            Assert.Equal(6, code);
            Assert.Contains($"fd 3 of process {target.Pid} is an inotify instance with", stderr);
            Assert.Contains("queued events", stderr);
            Assert.True(IsAlive(target.Pid));
            // Untouched: both watches still there, not traced, and the event still queued for the target to read.
            Assert.Equal(2, File.ReadLines($"/proc/{target.Pid}/fdinfo/3").Count(l => l.StartsWith("inotify wd:", StringComparison.Ordinal)));
            Assert.Contains("TracerPid:\t0", File.ReadAllText($"/proc/{target.Pid}/status"));
            string second = TempPath("inotify-queued-again.img");
            Assert.Equal(6, RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", second]).ExitCode);
        }
    }
}
