using System.Management.Automation;
using CkptPS.Module.Tests.Infrastructure;
using Xunit;

namespace CkptPS.Module.Tests;

/// <summary>Checkpoint-Process through the real engine: -Force, a confirmed -Kill, and a real permission refusal.</summary>
[Collection(EngineCollection.Name)]
public sealed class CheckpointEndToEndTests : IDisposable
{
    private readonly ModuleSession session = new();
    private readonly string scratch = RepoPaths.NewScratchDirectory();

    [Fact]
    public void Force_replaces_an_existing_image_with_a_valid_one()
    {
        using var target = TargetProcess.StartSleep();
        string image = Path.Combine(scratch, "exists.ckpt");
        File.WriteAllText(image, "stale");
        var info = session.Run("Checkpoint-Process -Id $args[0] -Path $args[1] -Force -PassThru", target.Pid, image)
            .AssertClean().OfType<CkptImageInfo>().Single();
        Assert.Equal((target.Pid, image), (info.Pid, info.ImagePath));
        var validation = session.Run("Test-CkptImage $args[0] -Detailed", image).AssertClean().OfType<CkptImageValidation>().Single();
        Assert.True(validation.IsValid, validation.Problem);
        Assert.Equal(target.Pid, validation.Pid);
        Assert.Single(Directory.EnumerateFiles(scratch)); // the temporary image was renamed, not copied
        Assert.True(target.IsAlive);
    }

    [Fact]
    public void DeferredWrite_writes_a_valid_image_and_the_process_runs_on()
    {
        using var target = TargetProcess.StartSleep();
        string image = Path.Combine(scratch, "deferred.ckpt");
        session.Run("Checkpoint-Process -Id $args[0] -Path $args[1] -DeferredWrite", target.Pid, image).AssertClean();
        var validation = session.Run("Test-CkptImage $args[0] -Detailed", image).AssertClean().OfType<CkptImageValidation>().Single();
        Assert.True(validation.IsValid, validation.Problem);
        Assert.Equal(target.Pid, validation.Pid);
        Assert.True(target.IsAlive);
    }

    [Fact]
    public void Kill_confirmed_with_Yes_kills_the_process_once_its_image_is_written()
    {
        using var target = TargetProcess.StartSleep();
        string image = Path.Combine(scratch, "killed.ckpt");
        session.Host.ChoiceAnswer = "&Yes";
        session.Run("Checkpoint-Process -Id $args[0] -Path $args[1] -Kill", target.Pid, image).AssertClean();
        Assert.Contains(session.Host.Prompts, p => p.Contains($"Kill process sleep ({target.Pid})", StringComparison.Ordinal));
        int status = target.Reap();
        Assert.Equal(9, status & 0x7f); // SIGKILL, from the engine
        Assert.True(LanguagePrimitives.IsTrue(session.Run("Test-CkptImage $args[0]", image).AssertClean().Output.Single()));
    }

    [Fact]
    public void An_engine_without_privileges_gets_a_PermissionDenied_error_and_the_process_is_untouched()
    {
        // The real engine, run as nobody: what a user without CAP_SYS_PTRACE gets from the kernel.
        // A copy in the scratch folder (under /tmp): the checkout's own folders need not be searchable by nobody.
        string engine = Path.Combine(scratch, "ckpt");
        File.Copy(RepoPaths.ModuleEngine, engine);
        const UnixFileMode ReadAndExecuteForAll = (UnixFileMode)0x1ed; // 0755
        File.SetUnixFileMode(engine, ReadAndExecuteForAll);
        File.SetUnixFileMode(scratch, ReadAndExecuteForAll);
        string unprivileged = Path.Combine(scratch, "ckpt-as-nobody");
        File.WriteAllText(unprivileged, $"#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups '{engine}' \"$@\"\n");
        File.SetUnixFileMode(unprivileged, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        session.Run("$global:CkptPSEnginePath = $args[0]", unprivileged).AssertClean();
        using var first = TargetProcess.StartSleep();
        using var second = TargetProcess.StartSleep();
        // A folder the user nobody may write to (mode 0777), so that the refusal comes from the engine's
        // check of whose process it is (unprivileged mode), not from creating the image.
        string folder = Directory.CreateDirectory(Path.Combine(scratch, "images")).FullName;
        File.SetUnixFileMode(folder, (UnixFileMode)0x1ff);

        var result = session.Run("Checkpoint-Process -Id $args[0], $args[1] -Path $args[2]", first.Pid, second.Pid, folder);
        Assert.Null(result.Terminating);
        Assert.Equal([first.Pid, second.Pid], result.Errors.Select(e => e.TargetObject)); // one error per process
        Assert.All(result.Errors, error =>
        {
            Assert.Equal(ErrorCategory.PermissionDenied, error.CategoryInfo.Category);
            Assert.StartsWith("CheckpointFailed,", error.FullyQualifiedErrorId);
            Assert.Contains("checkpoints only that user's own processes", error.Exception.Message); // the engine's own refusal
        });
        Assert.Empty(Directory.EnumerateFileSystemEntries(folder));
        foreach (var target in new[] { first, second })
        {
            Assert.True(target.IsAlive);
            CheckpointProcessTests.AssertNotTracedOrStopped(target.Pid);
        }
    }

    public void Dispose()
    {
        session.Dispose();
        Directory.Delete(scratch, recursive: true);
    }
}
