namespace Ckpt.Engine.Tests;

/// <summary>
/// The checkpoint's batched injected reads (Linux/ProbeBatch.cs, Linux/ProbeRoutine.cs) with
/// tests/workloads/ckpt_sigtrap.c: the routine's page is mapped in the process only while its state is
/// read, so a checkpoint without --kill leaves /proc/PID/maps as it was; SIGTRAP at SIG_DFL (blocked or
/// not) lets the routine run and the thread's mask comes back as it was; a caught or ignored SIGTRAP
/// makes the engine inject the calls one by one, and the disposition stays as set (the routine's int3
/// would have reset it). The image saves SIGTRAP's disposition either way, and the restored process
/// checks it again.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class ProbeRoutineTests
{
    private const int SIGTRAP = 5;

    [Theory]
    [InlineData("default")]
    [InlineData("block")]
    [InlineData("catch")]
    [InlineData("ignore")]
    public void A_checkpoint_leaves_the_mappings_mask_and_SIGTRAP_disposition_as_they_were(string mode)
    {
        using var target = Start("ckpt_sigtrap", mode);
        WaitUntilBackInPause(target.Pid);
        string maps = File.ReadAllText($"/proc/{target.Pid}/maps");
        string image = TempPath($"sigtrap-{mode}-live.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image]);
        Assert.True(code == 0, stderr);
        Assert.Equal(maps, File.ReadAllText($"/proc/{target.Pid}/maps"));
        ImageModel model = ReadImage(image).Image!;
        Assert.Equal(2, model.Processes[0].Threads.Count);
        ulong handler = model.Processes[0].SignalHandlers.Actions[SIGTRAP - 1].Handler;
        Assert.True(mode switch { "catch" => handler > 1, "ignore" => handler == 1, _ => handler == 0 }, $"SIGTRAP handler 0x{handler:x} in the image of mode {mode}");
        target.RequirePass();
    }

    [Theory]
    [InlineData("block")]
    [InlineData("catch")]
    public void A_process_checkpointed_with_or_without_the_routine_restores_and_passes(string mode)
    {
        using var target = Start("ckpt_sigtrap", mode);
        WaitUntilBackInPause(target.Pid);
        string image = TempPath($"sigtrap-{mode}.img");
        var (code, _, stderr) = RunCli(["checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--kill"]);
        Assert.True(code == 0, stderr);
        RestoreAndRequirePass(target, image);
    }
}
