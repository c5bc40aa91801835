namespace Ckpt.Engine.Tests;

/// <summary>
/// `ckpt checkpoint --deferred-write`: every page is copied into the engine while the process is
/// frozen and the image is written after it resumes. The image must be as good as a pipelined one,
/// and a write-out that fails after the resume must fail the checkpoint, not the process.
/// </summary>
public class DeferredWriteCheckpointTests
{
    [Fact]
    public void A_deferred_image_restores_the_process_with_its_state()
    {
        using var target = Start("ckpt_state", TempPath("data"));
        string image = TempPath("deferred.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--deferred-write"]);
        Assert.True(code == 0, stderr);
        Assert.True(IsAlive(target.Pid), "the process runs on after a checkpoint without --kill");
        ReadImage(image); // every record and page readable, checksum verified

        RestoreTestProcesses.Signal(target.Pid, 9);
        RestoreAndRequirePass(target, image);
    }

    [Fact]
    public void A_write_out_that_fails_after_the_resume_fails_the_checkpoint_and_the_process_runs_on()
    {
        using var target = Start("ckpt_state", TempPath("data"));
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", "/dev/full", "--deferred-write"]);
        Assert.Equal(1, code);
        Assert.Contains("space", stderr, StringComparison.OrdinalIgnoreCase);
        target.RequirePass();
    }
}
