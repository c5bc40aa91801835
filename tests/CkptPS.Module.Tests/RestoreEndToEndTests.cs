using System.Diagnostics;
using System.Management.Automation;
using CkptPS.Module.Tests.Infrastructure;
using Xunit;

namespace CkptPS.Module.Tests;

/// <summary>Restore-Process through the real engine: -Wait, the pipeline from Checkpoint-Process -PassThru, a pid in use.</summary>
[Collection(EngineCollection.Name)]
public sealed class RestoreEndToEndTests : IDisposable
{
    private readonly ModuleSession session = new();
    private readonly string scratch = RepoPaths.NewScratchDirectory();
    private readonly List<int> restoredPids = [];

    [Fact]
    public void Wait_returns_only_when_the_restored_process_has_exited()
    {
        using var target = TargetProcess.Start("/usr/bin/sleep", "3");
        string image = Path.Combine(scratch, "sleep3.ckpt");
        session.Run("Checkpoint-Process -Id $args[0] -Path $args[1] -Kill -Confirm:$false", target.Pid, image).AssertClean();
        target.Reap();
        restoredPids.Add(target.Pid);

        var clock = Stopwatch.StartNew();
        var result = session.Run("Restore-Process -Path $args[0] -Wait -Verbose", image).AssertClean();
        clock.Stop();
        Assert.Empty(result.Output);
        // The restored sleep has the rest of its 3 seconds to go; -Wait sits through them.
        Assert.True(clock.Elapsed > TimeSpan.FromSeconds(1), $"returned after {clock.Elapsed}");
        Assert.False(TargetProcess.IsRunning(target.Pid));
        Assert.Contains($"VERBOSE: The process restored from '{image}' exited with status 0.", session.Host.Output);
    }

    [Fact]
    public void Checkpoint_PassThru_pipes_into_Restore_Process_through_ImagePath()
    {
        using var target = TargetProcess.StartSleep();
        string image = Path.Combine(scratch, "moved.ckpt");
        restoredPids.Add(target.Pid);
        // The test host is the target's parent: it must collect the killed target before its pid is free again.
        Action reap = () => target.Reap();
        var result = session.Run("""
            $reap = $args[2]
            Checkpoint-Process -Id $args[0] -Path $args[1] -Kill -Confirm:$false -PassThru |
                ForEach-Object { $reap.Invoke(); $_ } |
                Restore-Process -PassThru
            """, target.Pid, image, reap).AssertClean();
        var process = Assert.IsType<Process>(Assert.Single(result.Output).BaseObject);
        Assert.Equal(target.Pid, process.Id);
        Assert.True(TargetProcess.IsRunning(target.Pid));
        Assert.Equal("sleep", File.ReadAllText($"/proc/{target.Pid}/comm").Trim());
    }

    [Fact]
    public void Get_CkptImage_output_restores_its_image_once_through_ImagePath()
    {
        using var target = TargetProcess.StartSleep();
        string image = Path.Combine(scratch, "inspected.ckpt");
        session.Run("Checkpoint-Process -Id $args[0] -Path $args[1] -Kill -Confirm:$false", target.Pid, image).AssertClean();
        target.Reap();
        restoredPids.Add(target.Pid);
        // Every task, VMA, file and thread object carries the ImagePath: one restore, not one per object.
        var result = session.Run("Get-CkptImage $args[0] | Restore-Process -PassThru", image).AssertClean();
        var process = Assert.IsType<Process>(Assert.Single(result.Output).BaseObject);
        Assert.Equal(target.Pid, process.Id);
        Assert.True(TargetProcess.IsRunning(target.Pid));
    }

    [Fact]
    public void A_pid_still_in_use_is_ResourceExists_and_the_running_process_is_untouched()
    {
        using var target = TargetProcess.StartSleep();
        string image = Path.Combine(scratch, "live.ckpt");
        session.Run("Checkpoint-Process -Id $args[0] -Path $args[1]", target.Pid, image).AssertClean();

        var result = session.Run("Restore-Process -Path $args[0] -PassThru", image);
        Assert.Empty(result.Output);
        var error = Assert.Single(result.Errors);
        Assert.Equal(ErrorCategory.ResourceExists, error.CategoryInfo.Category);
        Assert.StartsWith("RestoreFailed,", error.FullyQualifiedErrorId);
        Assert.Equal(image, error.TargetObject);
        Assert.True(target.IsAlive);
        CheckpointProcessTests.AssertNotTracedOrStopped(target.Pid);
    }

    public void Dispose()
    {
        foreach (int pid in restoredPids) TargetProcess.kill(pid, 9);
        session.Dispose();
        Directory.Delete(scratch, recursive: true);
    }
}
