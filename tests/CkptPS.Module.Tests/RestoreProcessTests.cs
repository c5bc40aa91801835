using System.Management.Automation;
using CkptPS.Module.Tests.Infrastructure;
using Xunit;

namespace CkptPS.Module.Tests;

/// <summary>Restore-Process binding, ShouldProcess and refusals; the engine is the real artifacts/CkptPS/ckpt.</summary>
[Collection(EngineCollection.Name)]
public sealed class RestoreProcessTests : IDisposable
{
    private readonly ModuleSession session = new();
    private readonly string scratch = RepoPaths.NewScratchDirectory();

    [Fact]
    public void WhatIf_names_the_process_the_image_holds_and_restores_nothing()
    {
        string image = SyntheticImage.Write(scratch);
        var result = session.Run("[System.IO.FileInfo]::new($args[0]) | Restore-Process -WhatIf -PassThru", image).AssertClean();
        Assert.Empty(result.Output);
        Assert.Contains($"What if: Performing the operation \"Restore process {SyntheticImage.Comm} ({SyntheticImage.Pid})\" on target \"{image}\"",
            session.Host.Output);
        Assert.Empty(result.Progress); // the engine never ran
    }

    [Fact]
    public void A_bad_image_is_InvalidData_from_the_engine_and_the_next_image_is_still_tried()
    {
        string garbage = Path.Combine(scratch, "garbage.ckpt");
        File.WriteAllBytes(garbage, Enumerable.Range(0, 64).Select(i => (byte)i).ToArray());
        string empty = Path.Combine(scratch, "empty.ckpt");
        File.WriteAllBytes(empty, []);
        var result = session.Run("$args[0], $args[1] | Restore-Process", garbage, empty);
        Assert.Null(result.Terminating);
        Assert.Equal(2, result.Errors.Count);
        Assert.All(result.Errors, error =>
        {
            Assert.Equal(ErrorCategory.InvalidData, error.CategoryInfo.Category);
            Assert.StartsWith("RestoreFailed,", error.FullyQualifiedErrorId);
        });
        Assert.Equal([garbage, empty], result.Errors.Select(e => e.TargetObject));
        Assert.Contains(garbage, result.Errors[0].Exception.Message);
    }

    [Fact]
    public void A_missing_image_is_ObjectNotFound_before_the_engine_runs()
    {
        var result = session.Run("Restore-Process -Path $args[0]", Path.Combine(scratch, "absent.ckpt"));
        var error = Assert.Single(result.Errors);
        Assert.Equal(ErrorCategory.ObjectNotFound, error.CategoryInfo.Category);
        Assert.StartsWith("ImageNotFound,", error.FullyQualifiedErrorId);
        Assert.Empty(result.Progress);
    }

    public void Dispose()
    {
        session.Dispose();
        Directory.Delete(scratch, recursive: true);
    }
}
