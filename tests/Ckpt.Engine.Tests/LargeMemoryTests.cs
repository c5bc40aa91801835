using Xunit;
using static Ckpt.Engine.Tests.CheckpointTestSupport;

namespace Ckpt.Engine.Tests;

/// <summary>
/// A process with 512 MiB of dirty memory: the engine's own memory must not grow with the
/// target's (issue 3: bounded whatever the target's size), and every page must come back intact
/// through the chunks and blocks of a real image and the restore's page paths.
/// </summary>
public class LargeMemoryTests
{
    private const int TargetMebibytes = 512;
    private const long EngineBoundKib = 100 * 1024; // issue 6's bound for a 1 GiB target

    [Fact]
    public void Checkpointing_512_MiB_keeps_the_engine_small_and_the_restore_brings_back_every_page()
    {
        using var target = Start("ckpt_dirty", TargetMebibytes.ToString());
        string image = TempPath("large.img");
        var (code, _, stderr, checkpointRss) = RunCliMeasured(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
        Assert.True(code == 0, stderr);
        Assert.True(new FileInfo(image).Length > TargetMebibytes * 0.98 * (1 << 20), "the image holds the dirty pages");
        Assert.True(checkpointRss < EngineBoundKib, $"checkpoint engine peak RSS {checkpointRss} KiB for a {TargetMebibytes} MiB target");
        RestoreTestProcesses.WaitForExit(target.Pid);
        RestoreTestProcesses.WaitUntilGone(target.Pid);

        var (restoreCode, stdout, restoreError, restoreRss) = RunCliMeasured(["restore", "--input", image]);
        try
        {
            Assert.True(restoreCode == 0, restoreError);
            Assert.Equal(target.Pid, int.Parse(stdout.Trim()));
            Assert.True(restoreRss < EngineBoundKib, $"restore engine peak RSS {restoreRss} KiB for a {TargetMebibytes} MiB image");
            target.RequirePass();
        }
        finally
        {
            if (IsAlive(target.Pid)) RestoreTestProcesses.Signal(target.Pid, 9);
            File.Delete(image);
        }
    }
}
