using System.Management.Automation;
using CkptPS.Module.Tests.Infrastructure;
using Xunit;

namespace CkptPS.Module.Tests;

/// <summary>
/// The module's side of the engine contract (docs/ARCHITECTURE.md: arguments, --progress-fd
/// JSON lines, exit codes, the `ckpt:` stderr line), driven by a scripted engine set through
/// $CkptPSEnginePath so each line and exit code is exactly known. The real engine is
/// exercised end to end by EndToEndTests.
/// </summary>
public sealed class EngineChannelTests : IDisposable
{
    private readonly ModuleSession session = new();
    private readonly string scratch = RepoPaths.NewScratchDirectory();
    private readonly string argumentsLog;

    public EngineChannelTests() => argumentsLog = Path.Combine(scratch, "arguments.log");

    /// <summary>Installs a bash script as the engine; it logs its arguments, then runs <paramref name="body"/>.</summary>
    private void UseScriptedEngine(string body)
    {
        string engine = Path.Combine(scratch, "fake-ckpt");
        File.WriteAllText(engine, $"#!/bin/bash\necho \"$*\" >> '{argumentsLog}'\n{body}\n");
        File.SetUnixFileMode(engine, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        session.Run("$global:CkptPSEnginePath = $args[0]", engine).AssertClean();
    }

    /// <summary>The value after <paramref name="option"/> in the engine's command line.</summary>
    private const string OutputOf = """out=""; prev=""; for a in "$@"; do [ "$prev" = --output ] && out="$a"; prev="$a"; done""";

    [Fact]
    public void Page_progress_lines_become_Write_Progress_with_percentages()
    {
        using var target = TargetProcess.StartSleep();
        string image = Path.Combine(scratch, "app.ckpt");
        UseScriptedEngine(OutputOf + """

            echo '{"event":"progress","phase":"freeze"}' >&3
            for i in 1 2 3 4; do echo "{\"event\":\"progress\",\"phase\":\"pages\",\"done\":$i,\"total\":4}" >&3; done
            echo image > "$out"
            echo "{\"event\":\"result\",\"ok\":true,\"pid\":1,\"image\":\"$out\",\"bytes\":6}" >&3
            """);
        var result = session.Run("Checkpoint-Process -Id $args[0] -Path $args[1] -Kill -Confirm:$false", target.Pid, image).AssertClean();

        var records = result.Progress.Count > 0 ? result.Progress : session.Host.Progress;
        Assert.Contains(records, r => r.StatusDescription == "freeze");
        var pages = records.Where(r => r.StatusDescription.StartsWith("pages:", StringComparison.Ordinal)).ToList();
        Assert.Equal([25, 50, 75, 100], pages.Select(r => r.PercentComplete));
        Assert.Equal("pages: 2 of 4", pages[1].StatusDescription);
        Assert.Equal(ProgressRecordType.Completed, records[^1].RecordType);
        Assert.Equal("image\n", File.ReadAllText(image));
        Assert.Equal(["app.ckpt", "arguments.log", "fake-ckpt"], Directory.EnumerateFiles(scratch).Select(Path.GetFileName).Order());

        string arguments = File.ReadAllText(argumentsLog).Trim();
        // The engine gets the image path itself: it writes beside it and puts the image in place when complete.
        Assert.Equal($"checkpoint --pid {target.Pid} --output {scratch}/app.ckpt --kill --progress-fd 3", arguments);
    }

    [Fact]
    public void A_failure_result_becomes_an_ErrorRecord_with_the_channel_category_and_no_image()
    {
        using var target = TargetProcess.StartSleep();
        string image = Path.Combine(scratch, "denied.ckpt");
        // Like the real engine, which leaves nothing at the output when it fails (docs/SECURITY.md).
        UseScriptedEngine(OutputOf + """

            echo '{"event":"result","ok":false,"category":"PermissionDenied","message":"ptrace(PTRACE_SEIZE) of pid 42 failed: Operation not permitted","errno":1}' >&3
            echo 'ckpt: ptrace(PTRACE_SEIZE) of pid 42 failed: Operation not permitted' >&2
            exit 4
            """);
        var result = session.Run("Checkpoint-Process -Id $args[0] -Path $args[1]", target.Pid, image);
        Assert.Null(result.Terminating);
        var error = Assert.Single(result.Errors);
        Assert.Equal(ErrorCategory.PermissionDenied, error.CategoryInfo.Category);
        Assert.StartsWith("CheckpointFailed,", error.FullyQualifiedErrorId);
        Assert.Equal($"Cannot checkpoint process sleep ({target.Pid}): ptrace(PTRACE_SEIZE) of pid 42 failed: Operation not permitted (errno 1)",
            error.Exception.Message);
        Assert.False(File.Exists(image));
        Assert.Equal(["arguments.log", "fake-ckpt"], Directory.EnumerateFiles(scratch).Select(Path.GetFileName).Order());
    }

    [Theory]
    [InlineData(3, ErrorCategory.ObjectNotFound)]
    [InlineData(4, ErrorCategory.PermissionDenied)]
    [InlineData(5, ErrorCategory.InvalidData)]
    [InlineData(6, ErrorCategory.InvalidOperation)]
    public void Without_a_result_line_the_exit_code_and_stderr_line_say_what_failed(int exitCode, ErrorCategory category)
    {
        using var target = TargetProcess.StartSleep();
        UseScriptedEngine($"echo 'some noise'; echo 'ckpt: it went wrong' >&2; exit {exitCode}");
        var result = session.Run("Checkpoint-Process -Id $args[0] -Path $args[1]", target.Pid, Path.Combine(scratch, "x.ckpt"));
        var error = Assert.Single(result.Errors);
        Assert.Equal(category, error.CategoryInfo.Category);
        Assert.EndsWith(": it went wrong", error.Exception.Message);
    }

    [Fact]
    public void One_failing_process_does_not_stop_the_others()
    {
        using var first = TargetProcess.StartSleep();
        using var second = TargetProcess.StartSleep();
        string folder = Path.Combine(scratch, "images");
        UseScriptedEngine(OutputOf + $$"""

            case "$*" in
              *"--pid {{first.Pid}} "*) echo '{"event":"result","ok":false,"category":"InvalidOperation","message":"the process has 2 threads"}' >&3; exit 6 ;;
            esac
            echo data > "$out"
            """);
        var result = session.Run("Checkpoint-Process -Id $args[0], $args[1] -Path $args[2]", first.Pid, second.Pid, folder);
        var error = Assert.Single(result.Errors);
        Assert.Equal(ErrorCategory.InvalidOperation, error.CategoryInfo.Category);
        Assert.Equal(first.Pid, error.TargetObject);
        Assert.False(File.Exists(Path.Combine(folder, $"sleep-{first.Pid}.ckpt")));
        Assert.True(File.Exists(Path.Combine(folder, $"sleep-{second.Pid}.ckpt")));
    }

    [Fact]
    public void Restore_PassThru_emits_the_process_the_result_line_names()
    {
        using var restored = TargetProcess.StartSleep(); // stands in for the process the engine recreated
        string image = Path.Combine(scratch, "app.ckpt");
        File.WriteAllText(image, "not read by the module for a restore");
        UseScriptedEngine($$"""echo '{"event":"progress","phase":"memory"}' >&3; echo '{"event":"result","ok":true,"pid":{{restored.Pid}}}' >&3""");
        var result = session.Run("[System.IO.FileInfo]::new($args[0]) | Restore-Process -Wait -Force -PassThru", image).AssertClean();
        var process = Assert.IsType<System.Diagnostics.Process>(Assert.Single(result.Output).BaseObject);
        Assert.Equal(restored.Pid, process.Id);
        Assert.Equal($"restore --input {image} --wait --force --progress-fd 3", File.ReadAllText(argumentsLog).Trim());
    }

    [Fact]
    public void Ctrl_C_asks_the_engine_to_stop_and_waits_for_it()
    {
        using var target = TargetProcess.StartSleep();
        string stopped = Path.Combine(scratch, "engine-stopped");
        UseScriptedEngine($$"""
            sleep 1000 & child=$!
            trap 'kill $child; echo terminated > "{{stopped}}"; exit 1' TERM
            echo '{"event":"progress","phase":"freeze"}' >&3
            wait
            """);
        using var shell = session.CreateShell();
        shell.AddScript("Checkpoint-Process -Id $args[0] -Path $args[1]").AddArgument(target.Pid).AddArgument(Path.Combine(scratch, "x.ckpt"));
        using var progressSeen = new ManualResetEventSlim();
        shell.Streams.Progress.DataAdded += (_, _) => progressSeen.Set();
        var invocation = shell.BeginInvoke();
        progressSeen.Wait(); // the engine is running and has reported
        shell.Stop();        // what Ctrl+C does: StopProcessing, then the pipeline unwinds
        Assert.Equal(PSInvocationState.Stopped, shell.InvocationStateInfo.State);
        Assert.True(invocation.IsCompleted);
        Assert.Equal("terminated\n", File.ReadAllText(stopped));
        Assert.False(File.Exists(Path.Combine(scratch, "x.ckpt")));
        Assert.True(target.IsAlive);
    }

    [Fact]
    public void Restore_Wait_succeeds_whatever_status_the_restored_process_exits_with()
    {
        string image = Path.Combine(scratch, "app.ckpt");
        File.WriteAllText(image, "not read by the module for a restore");
        // `ckpt restore --wait` exits with the restored process's status; the result line says the restore worked.
        UseScriptedEngine("""echo 4321; echo '{"event":"result","ok":true,"pid":4321,"exitStatus":3}' >&3; exit 3""");
        var result = session.Run("Restore-Process -Path $args[0] -Wait -Verbose", image).AssertClean();
        Assert.Empty(result.Output);
        Assert.Contains($"VERBOSE: The process restored from '{image}' exited with status 3.", session.Host.Output);
    }

    [Fact]
    public void A_missing_engine_stops_the_pipeline_with_an_error_naming_it()
    {
        using var first = TargetProcess.StartSleep();
        using var second = TargetProcess.StartSleep();
        session.Run("$global:CkptPSEnginePath = $args[0]", Path.Combine(scratch, "no-such-ckpt")).AssertClean();
        var result = session.Run("Checkpoint-Process -Id $args[0], $args[1] -Path $args[2]; 'next statement'",
            first.Pid, second.Pid, Path.Combine(scratch, "images"));
        var error = Assert.Single(result.Errors); // not one per process: the first failure ends the command
        Assert.Equal("EngineNotStarted,CkptPS.Cmdlets.CheckpointProcessCommand", error.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.ResourceUnavailable, error.CategoryInfo.Category);
        Assert.Contains("no-such-ckpt", error.Exception.Message);
        Assert.Equal("next statement", Assert.Single(result.Output).ToString());
    }

    public void Dispose()
    {
        session.Dispose();
        Directory.Delete(scratch, recursive: true);
    }
}
