namespace Ckpt.Engine.Tests;

/// <summary>
/// Migration over a pipe, as `ckpt checkpoint --output - | ssh host ckpt restore --input -` does:
/// the image never exists as a file; restore spools stdin to an unlinked file and the restored
/// task reads its pages from that file through /proc.
/// </summary>
public class PipeCheckpointRestoreTests
{
    [Fact]
    public async Task Checkpoint_to_stdout_piped_into_restore_from_stdin_brings_the_process_back()
    {
        using var target = Start("ckpt_state", TempPath("data"));
        // The target is our child: reap it as soon as the checkpoint kills it, so that its pid is
        // free when the restore at the other end of the pipe wants it (ckpt waits up to 2 s for that).
        var reaper = Task.Run(() => RestoreTestProcesses.WaitForExit(target.Pid));
        string script = $"\"$0\" checkpoint --pid {target.Pid} --output - --kill | \"$0\" restore --input -";
        var pipeline = RunCli([], prefix: ["/bin/sh", "-c", script]);
        await reaper.WaitAsync(TimeSpan.FromSeconds(10));
        RequireRestoredAndPass(target, pipeline);
    }
}
