namespace Ckpt.Engine.Tests;

/// <summary>
/// `ckpt restore --wait`: ckpt stays until the restored process ends and exits with its status
/// (128 + signal when a signal ended it), as a shell reports a child's.
/// </summary>
public class RestoreWaitTests
{
    [Fact]
    public async Task Restore_wait_returns_the_status_of_the_restored_process()
    {
        using var target = StartProgram("/usr/bin/sleep", "1000");
        RestoreTestProcesses.WaitUntilInSyscall(target.Pid, 230); // clock_nanosleep
        string image = TempPath("sleep.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
        Assert.True(code == 0, stderr);
        RestoreTestProcesses.WaitForExit(target.Pid);
        RestoreTestProcesses.WaitUntilGone(target.Pid);

        var waiting = Task.Run(() => RunCli(["restore", "--input", image, "--wait", "--progress-fd", "2"]));
        Assert.True(SpinWait.SpinUntil(() => RunsSleepingUntraced(target.Pid), TimeSpan.FromSeconds(20)), "the restored sleep never ran on");
        Assert.False(waiting.IsCompleted, "ckpt restore --wait returned while the process still runs");
        RestoreTestProcesses.Signal(target.Pid, 15);
        var (restoreCode, _, progress) = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(128 + 15, restoreCode);
        Assert.Contains("\"exitStatus\":143", progress);
    }

    // Restored and let go: back in clock_nanosleep (or its restart), no longer traced by the engine.
    private static bool RunsSleepingUntraced(int pid)
    {
        try
        {
            bool untraced = File.ReadLines($"/proc/{pid}/status").Contains("TracerPid:\t0");
            // The release wakes the task inside the re-entered call once (ptrace detach sets
            // TIF_SIGPENDING), so the kernel may go on with the sleep through restart_syscall (219).
            string syscall = File.ReadAllText($"/proc/{pid}/syscall");
            return untraced && (syscall.StartsWith("230 ", StringComparison.Ordinal) || syscall.StartsWith("219 ", StringComparison.Ordinal));
        }
        catch (IOException)
        {
            return false; // not created yet
        }
    }
}
