using System.Management.Automation;
using CkptPS.Module.Tests.Infrastructure;
using Xunit;

namespace CkptPS.Module.Tests;

/// <summary>Checkpoint-Process parameter binding, ShouldProcess and the errors found before the engine runs.</summary>
public sealed class CheckpointProcessTests : IDisposable
{
    private readonly ModuleSession session = new();
    private readonly string scratch = RepoPaths.NewScratchDirectory();

    [Fact]
    public void WhatIf_says_what_would_be_done_and_writes_nothing()
    {
        using var target = TargetProcess.StartSleep();
        string image = Path.Combine(scratch, "app.ckpt");
        session.Run("Checkpoint-Process -Id $args[0] -Path $args[1] -Kill -WhatIf", target.Pid, image).AssertClean();
        Assert.Contains($"What if: Performing the operation \"Checkpoint to '{image}', then kill the process\" on target \"process sleep ({target.Pid})\"",
            session.Host.Output);
        Assert.False(File.Exists(image));
        Assert.Empty(Directory.EnumerateFileSystemEntries(scratch));
        Assert.True(target.IsAlive);
        AssertNotTracedOrStopped(target.Pid);
    }

    [Fact]
    public void Process_objects_bind_from_the_pipeline()
    {
        using var target = TargetProcess.StartSleep();
        string image = Path.Combine(scratch, "bound.ckpt");
        session.Run("[System.Diagnostics.Process]::GetProcessById($args[0]) | Checkpoint-Process -Path $args[1] -WhatIf",
            target.Pid, image).AssertClean();
        Assert.Contains($"on target \"process sleep ({target.Pid})\"", session.Host.Output);
    }

    [Fact]
    public void Piped_processes_take_the_image_path_as_the_first_positional_argument()
    {
        using var target = TargetProcess.StartSleep();
        string image = Path.Combine(scratch, "positional.ckpt");
        // Get-Process myapp | Checkpoint-Process app.ckpt: the path must not be taken for an -Id.
        session.Run("[System.Diagnostics.Process]::GetProcessById($args[0]) | Checkpoint-Process $args[1] -WhatIf",
            target.Pid, image).AssertClean();
        Assert.Contains($"Checkpoint to '{image}'\" on target \"process sleep ({target.Pid})\"", session.Host.Output);
    }

    [Fact]
    public void Id_and_Path_bind_by_position_and_InputObject_by_name()
    {
        using var target = TargetProcess.StartSleep();
        string byPosition = Path.Combine(scratch, "by-position.ckpt"), byInputObject = Path.Combine(scratch, "by-input-object.ckpt");
        session.Run("""
            Checkpoint-Process $args[0] $args[1] -WhatIf
            Checkpoint-Process -InputObject ([System.Diagnostics.Process]::GetProcessById($args[0])) -Path $args[2] -WhatIf
            """, target.Pid, byPosition, byInputObject).AssertClean();
        Assert.Contains($"Checkpoint to '{byPosition}'\" on target \"process sleep ({target.Pid})\"", session.Host.Output);
        Assert.Contains($"Checkpoint to '{byInputObject}'\" on target \"process sleep ({target.Pid})\"", session.Host.Output);
        Assert.Empty(Directory.EnumerateFileSystemEntries(scratch));
    }

    [Fact]
    public void Objects_with_an_Id_property_bind_to_Id_by_property_name()
    {
        using var target = TargetProcess.StartSleep();
        string image = Path.Combine(scratch, "byname.ckpt");
        session.Run("[pscustomobject]@{ Id = $args[0]; Name = 'whatever' } | Checkpoint-Process -Path $args[1] -WhatIf",
            target.Pid, image).AssertClean();
        Assert.Contains($"Checkpoint to '{image}'\" on target \"process sleep ({target.Pid})\"", session.Host.Output);
    }

    [Fact]
    public void Several_processes_make_Path_a_folder_of_name_pid_images()
    {
        using var first = TargetProcess.StartSleep();
        using var second = TargetProcess.StartSleep();
        string folder = Path.Combine(scratch, "images");
        session.Run("$args[0], $args[1] | ForEach-Object { [pscustomobject]@{ Id = $_ } } | Checkpoint-Process -Path $args[2] -WhatIf",
            first.Pid, second.Pid, folder).AssertClean();
        string output = session.Host.Output;
        Assert.Contains($"\"Create the folder for the images\" on target \"{folder}\"", output);
        Assert.Contains($"Checkpoint to '{Path.Combine(folder, $"sleep-{first.Pid}.ckpt")}'", output);
        Assert.Contains($"Checkpoint to '{Path.Combine(folder, $"sleep-{second.Pid}.ckpt")}'", output);
        Assert.False(Directory.Exists(folder));
    }

    [Fact]
    public void One_process_into_an_existing_folder_or_a_path_ending_in_a_slash_gets_a_name_pid_ckpt_image()
    {
        using var target = TargetProcess.StartSleep();
        string existing = Directory.CreateDirectory(Path.Combine(scratch, "existing")).FullName;
        string missing = Path.Combine(scratch, "new-folder");
        session.Run("Checkpoint-Process -Id $args[0] -Path $args[1] -WhatIf; Checkpoint-Process -Id $args[0] -Path $args[2] -WhatIf",
            target.Pid, existing, missing + "/").AssertClean();
        string output = session.Host.Output;
        Assert.Contains($"Checkpoint to '{Path.Combine(existing, $"sleep-{target.Pid}.ckpt")}'", output);
        Assert.Contains($"\"Create the folder for the images\" on target \"{missing}\"", output);
        Assert.Contains($"Checkpoint to '{Path.Combine(missing, $"sleep-{target.Pid}.ckpt")}'", output);
        Assert.False(Directory.Exists(missing));
        Assert.Empty(Directory.EnumerateFileSystemEntries(existing));
    }

    [Fact]
    public void A_missing_pid_is_a_non_terminating_ObjectNotFound_error_and_the_others_go_on()
    {
        using var target = TargetProcess.StartSleep();
        int missing = UnusedPid();
        string folder = Path.Combine(scratch, "images");
        var result = session.Run("Checkpoint-Process -Id $args[0], $args[1] -Path $args[2] -WhatIf", missing, target.Pid, folder);
        Assert.Null(result.Terminating);
        var error = Assert.Single(result.Errors);
        Assert.Equal(ErrorCategory.ObjectNotFound, error.CategoryInfo.Category);
        Assert.StartsWith("ProcessNotFound,", error.FullyQualifiedErrorId);
        Assert.Equal(missing, error.TargetObject);
        Assert.Contains($"process sleep ({target.Pid})", session.Host.Output);
        // Two pids were asked for, so -Path is a folder even though one of them does not exist.
        Assert.Contains($"Checkpoint to '{Path.Combine(folder, $"sleep-{target.Pid}.ckpt")}'", session.Host.Output);
    }

    [Fact]
    public void An_existing_image_is_not_overwritten_without_Force()
    {
        using var target = TargetProcess.StartSleep();
        string image = Path.Combine(scratch, "exists.ckpt");
        File.WriteAllText(image, "precious");
        var result = session.Run("Checkpoint-Process -Id $args[0] -Path $args[1]", target.Pid, image);
        var error = Assert.Single(result.Errors);
        Assert.Equal(ErrorCategory.ResourceExists, error.CategoryInfo.Category);
        Assert.StartsWith("ImageExists,", error.FullyQualifiedErrorId);
        Assert.Equal("precious", File.ReadAllText(image));
        Assert.True(target.IsAlive);
    }

    [Fact]
    public void Kill_asks_for_confirmation_and_No_leaves_the_process_alone()
    {
        using var target = TargetProcess.StartSleep();
        string image = Path.Combine(scratch, "kill.ckpt");
        session.Host.ChoiceAnswer = "&No";
        var result = session.Run("Checkpoint-Process -Id $args[0] -Path $args[1] -Kill", target.Pid, image).AssertClean();
        Assert.Contains(session.Host.Prompts, p => p.Contains($"Kill process sleep ({target.Pid})", StringComparison.Ordinal));
        Assert.Empty(result.Output);
        Assert.False(File.Exists(image));
        Assert.True(target.IsAlive);
    }

    [Fact]
    public void Without_Kill_no_confirmation_is_asked()
    {
        using var target = TargetProcess.StartSleep();
        session.Run("Checkpoint-Process -Id $args[0] -Path $args[1] -WhatIf", target.Pid, Path.Combine(scratch, "a.ckpt")).AssertClean();
        Assert.Empty(session.Host.Prompts);
    }

    /// <summary>Running or sleeping, no tracer attached: nobody froze the process.</summary>
    internal static void AssertNotTracedOrStopped(int pid)
    {
        Assert.DoesNotContain(ProcessState(pid), new[] { "T", "t" });
        Assert.Contains("TracerPid:\t0", File.ReadAllLines($"/proc/{pid}/status"));
    }

    internal static string ProcessState(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        return stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
    }

    internal static int UnusedPid()
    {
        int max = int.Parse(File.ReadAllText("/proc/sys/kernel/pid_max").Trim());
        for (int pid = max - 1; pid > 1; pid--)
        {
            if (!Directory.Exists($"/proc/{pid}")) return pid;
        }
        throw new InvalidOperationException("no free pid");
    }

    public void Dispose()
    {
        session.Dispose();
        Directory.Delete(scratch, recursive: true);
    }
}
