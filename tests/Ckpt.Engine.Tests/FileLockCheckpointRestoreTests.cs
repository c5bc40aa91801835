using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Ckpt.Engine.Tests;

/// <summary>
/// File locks (tests/workloads/ckpt_flock.c: fd 3 flock write lock, fd 4 POSIX write lock 0..99 and
/// read lock 200..EOF, fd 5 OFD read lock 10..19): the image holds each, they are held again after
/// `checkpoint --kill` + `restore` (the workload's child, another process, finds them all), and a
/// restore whose lock someone else took meanwhile fails naming the file and the holder, leaving
/// nothing running.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed partial class FileLockCheckpointRestoreTests
{
    private const int SYS_pause = 34, LOCK_EX = 2, LOCK_NB = 4;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int flock(int fd, int operation);

    [Fact]
    public void Locks_are_in_the_image_and_held_again_after_checkpoint_kill_and_restore()
    {
        string directory = Directory.CreateTempSubdirectory("ckpt-locks-").FullName;
        using var target = Start("ckpt_flock", directory);
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        string image = TempPath("locks.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
        Assert.True(code == 0, stderr);

        var table = ReadImage(image).Image!.Processes[0].FileTable;
        int ObjRef(int fd) => table.Descriptors.Single(d => d.Fd == fd).FileObjRef;
        Assert.Equal(
            new[]
            {
                new FileLockRecord { FileObjRef = ObjRef(3), Kind = FileLockKind.Flock, Exclusive = 1 },
                new FileLockRecord { FileObjRef = ObjRef(4), Kind = FileLockKind.Posix, Exclusive = 1, Start = 0, Length = 100 },
                new FileLockRecord { FileObjRef = ObjRef(4), Kind = FileLockKind.Posix, Exclusive = 0, Start = 200, Length = 0 },
                new FileLockRecord { FileObjRef = ObjRef(5), Kind = FileLockKind.Ofd, Exclusive = 0, Start = 10, Length = 10 },
            }.OrderBy(l => (l.FileObjRef, l.Start)),
            table.Locks.OrderBy(l => (l.FileObjRef, l.Start)));
        RestoreAndRequirePass(target, image);
    }

    [Fact]
    public void A_lock_someone_else_holds_now_fails_the_restore_naming_file_and_holder_and_nothing_runs()
    {
        string directory = Directory.CreateTempSubdirectory("ckpt-locks-").FullName;
        using var target = Start("ckpt_flock", directory);
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, SYS_pause);
        string image = TempPath("locks-taken.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
        Assert.True(code == 0, stderr);
        RestoreTestProcesses.WaitForExit(target.Pid);
        RestoreTestProcesses.WaitUntilGone(target.Pid);

        string locked = Path.Combine(directory, "flock");
        using (SafeFileHandle holder = File.OpenHandle(locked, FileMode.Open, FileAccess.Read))
        {
            Assert.Equal(0, flock((int)holder.DangerousGetHandle(), LOCK_EX | LOCK_NB));
            var refused = RunCli(["restore", "--input", image]);
            Assert.NotEqual(0, refused.ExitCode);
            Assert.Contains($"flock write lock on {locked} (fd 3) is held by process {Environment.ProcessId}", refused.Stderr);
            Assert.False(IsAlive(target.Pid), $"process {target.Pid} runs after a refused restore");
            RestoreTestProcesses.WaitUntilGone(target.Pid);
        }
        // The holder is gone: the same image restores, locks and all.
        RequireRestoredAndPass(target, RunCli(["restore", "--input", image]));
    }
}
