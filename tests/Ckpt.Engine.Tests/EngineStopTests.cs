using System.Runtime.InteropServices;

namespace Ckpt.Engine.Tests;

/// <summary>
/// A checkpoint stopped halfway must leave the process as it was: asked to stop (SIGTERM, as the
/// module's Ctrl+C does) the engine stops at its next safe point and detaches; killed outright
/// (SIGKILL) the kernel detaches the process, which must then run on unharmed (no single-step
/// state or injected registers left in it). The image goes to a FIFO that the test drains, so
/// the checkpoint is reliably in its page phase when the signal comes.
/// </summary>
public sealed partial class EngineStopTests
{
    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mkfifo(string path, uint mode);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);

    [Theory]
    [InlineData(15, 1)]  // SIGTERM: stopped at a safe point, exit 1 (OperationStopped)
    [InlineData(9, 137)] // SIGKILL: no chance to clean up
    public async Task A_checkpoint_stopped_in_its_page_phase_leaves_the_process_running_as_before(int signal, int expectedExit)
    {
        using var target = Start("ckpt_dirty", "128");
        string fifo = TempPath("image.fifo"), enginePidFile = TempPath("engine.pid");
        Assert.Equal(0, mkfifo(fifo, 0x180));
        // `exec` keeps the shell's pid: the pid file names the engine itself.
        string script = $"echo $$ > '{enginePidFile}'; exec \"$0\" \"$@\"";
        var engine = Task.Run(() => RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", fifo, "--progress-fd", "2"],
            prefix: ["/bin/sh", "-c", script]));

        using (var image = new FileStream(fifo, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1))
        {
            var buffer = new byte[1 << 20];
            await image.ReadExactlyAsync(buffer); // the header is out: injection is over, pages are being read
            Assert.Equal(0, kill(int.Parse(File.ReadAllText(enginePidFile).Trim()), signal));
            while (await image.ReadAsync(buffer) > 0) { } // drain, so a stopping engine is not held up
        }
        var (code, _, stderr) = await engine.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(expectedExit, code);
        if (signal == 15) Assert.Contains("\"category\":\"OperationStopped\"", stderr);

        Assert.True(SpinWait.SpinUntil(() => File.ReadLines($"/proc/{target.Pid}/status").Contains("TracerPid:\t0"), TimeSpan.FromSeconds(5)),
            "the process is still traced");
        // A SIGKILLed engine cannot release the process as it does itself (docs/RESTORE.md, "Release"): the
        // kernel's detach wakes it out of pause(), and a signal that came before it re-entered the call from
        // user space would be handled there and leave pause() waiting for ever (the workload's loop checks
        // its flag before the call, not after). No engine can close that window; the signal is sent once
        // the process sleeps inside pause() again (syscall 34).
        Assert.True(SpinWait.SpinUntil(() => SleepsInPause(target.Pid), TimeSpan.FromSeconds(5)), "the process did not go back into pause()");
        target.RequirePass(); // alive, its memory intact, its signal handler working
    }

    private static bool SleepsInPause(int pid) =>
        File.ReadLines($"/proc/{pid}/status").Any(l => l.StartsWith("State:\tS", StringComparison.Ordinal))
        && File.ReadAllText($"/proc/{pid}/syscall").StartsWith("34 ", StringComparison.Ordinal);
}
