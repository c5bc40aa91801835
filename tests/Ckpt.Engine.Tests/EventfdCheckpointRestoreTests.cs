using Ckpt.Engine.Checkpoint;

namespace Ckpt.Engine.Tests;

/// <summary>
/// eventfd descriptors (tests/workloads/ckpt_eventfd.c: fd 3 counter 5, fd 4 semaphore + nonblocking
/// counter 3, fd 5 a close-on-exec dup of fd 3, fd 6 a counter above 32 bits): what the image holds,
/// that a checkpoint leaves the counters alone, and that `ckpt checkpoint --kill` + `ckpt restore`
/// brings them back (the workload reads every counter and checks the flags and the sharing).
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class EventfdCheckpointRestoreTests
{
    private const int SYS_pause = 34;

    [Fact]
    public void Image_holds_each_eventfd_once_with_its_counter_and_flags_and_the_target_runs_on()
    {
        using var target = Start("ckpt_eventfd");
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        string image = TempPath("eventfd.img");
        using (var output = new FileStream(image, FileMode.Create, FileAccess.Write))
            Checkpointer.Run(new CheckpointOptions(target.Pid, output, false));

        ImageContents contents = ReadImage(image);
        Assert.Null(contents.Error);
        FileTableImage table = contents.Image!.Processes[0].FileTable;
        FileDescriptorRecord Descriptor(int fd) => table.Descriptors.Single(d => d.Fd == fd);
        FileImage File(int fd) => table.Files[Descriptor(fd).FileObjRef];
        EventfdRecord Eventfd(int fd) => Assert.NotNull(File(fd).Eventfd);

        Assert.All(new[] { 3, 4, 5, 6 }, fd => Assert.Equal((FileKind.Eventfd, "anon_inode:[eventfd]"), (File(fd).Record.Kind, File(fd).Path)));
        Assert.Same(File(3), File(5)); // a dup is the same eventfd: one object
        Assert.Equal(3, new[] { 3, 4, 5, 6 }.Select(fd => Descriptor(fd).FileObjRef).Distinct().Count());
        Assert.Equal((EventfdFlags.None, 5ul), (Eventfd(3).Flags, Eventfd(3).Count));
        Assert.Equal((EventfdFlags.Semaphore | EventfdFlags.NonBlock, 3ul), (Eventfd(4).Flags, Eventfd(4).Count));
        Assert.Equal((EventfdFlags.None, 0x1_0000_0005ul), (Eventfd(6).Flags, Eventfd(6).Count));
        Assert.Equal([0, 0, 1, 1], new[] { 3, 4, 5, 6 }.Select(fd => Descriptor(fd).CloseOnExec));
        target.RequirePass(); // the checkpoint read no counter
    }

    [Fact]
    public void Eventfds_come_back_after_checkpoint_kill_and_restore_through_the_cli()
    {
        using var target = Start("ckpt_eventfd");
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        string image = TempPath("eventfd-kill.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
        Assert.True(code == 0, stderr);
        RestoreAndRequirePass(target, image);
    }
}
