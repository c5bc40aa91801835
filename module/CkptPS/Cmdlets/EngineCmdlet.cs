using System.Management.Automation;
using CkptPS.Engine;

namespace CkptPS.Cmdlets;

/// <summary>
/// Base of the cmdlets that run the `ckpt` engine: starts it, turns its progress channel
/// into Write-Progress on the pipeline thread, and stops it on Ctrl+C.
/// </summary>
public abstract class EngineCmdlet : PSCmdlet
{
    private volatile EngineRun? running;

    /// <summary>
    /// The engine: $CkptPSEnginePath when the session sets it, else $env:CKPTPS_ENGINE, else the
    /// `ckpt` shipped next to the module (e.g. to use a NativeAOT build or one with file capabilities).
    /// </summary>
    internal string EnginePath
    {
        get
        {
            if (GetVariableValue("CkptPSEnginePath") is { } variable && variable.ToString() is { Length: > 0 } fromSession)
                return SessionState.Path.GetUnresolvedProviderPathFromPSPath(fromSession);
            if (Environment.GetEnvironmentVariable("CKPTPS_ENGINE") is { Length: > 0 } fromEnvironment)
                return fromEnvironment;
            string bundled = Path.Combine(Path.GetDirectoryName(typeof(EngineCmdlet).Assembly.Location) ?? ".", "ckpt");
            MakeExecutable(bundled);
            return bundled;
        }
    }

    /// <summary>
    /// A module package (.nupkg) carries no file modes: installed by Install-PSResource, the
    /// bundled engine arrives as rw-r--r--. It gets the execute bits its read bits call for
    /// (rw-r--r-- becomes rwxr-xr-x) when it is first needed. A file with any execute bit is left
    /// as it is. Only its owner (who installed the module) or root can change it; for anyone else
    /// posix_spawn fails with EACCES and the EngineNotStarted error names the file.
    /// </summary>
    private static void MakeExecutable(string path)
    {
        const UnixFileMode anyExecute = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
        if (OperatingSystem.IsWindows()) return; // for the analyzer: the module is Linux-only
        try
        {
            UnixFileMode mode = File.GetUnixFileMode(path);
            if ((mode & anyExecute) != 0) return;
            UnixFileMode execute = UnixFileMode.None;
            if (mode.HasFlag(UnixFileMode.UserRead)) execute |= UnixFileMode.UserExecute;
            if (mode.HasFlag(UnixFileMode.GroupRead)) execute |= UnixFileMode.GroupExecute;
            if (mode.HasFlag(UnixFileMode.OtherRead)) execute |= UnixFileMode.OtherExecute;
            File.SetUnixFileMode(path, mode | execute);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            // Missing or not ours: posix_spawn reports it.
        }
    }

    /// <summary>Runs the engine to completion, draining its events here, on the pipeline thread.</summary>
    internal EngineOutcome RunEngine(IReadOnlyList<string> arguments, int activityId, string activity, Action<EngineEvent>? onResult = null, bool onCallersTerminal = false)
    {
        string engine = EnginePath;
        WriteVerbose($"{engine} {string.Join(' ', arguments)}");
        EngineRun run;
        try
        {
            run = EngineRun.Start(engine, arguments, onCallersTerminal);
        }
        catch (IOException exception)
        {
            // Every further input would fail the same way: stop the pipeline.
            ThrowTerminatingError(new ErrorRecord(exception, "EngineNotStarted", ErrorCategory.ResourceUnavailable, engine));
            throw; // not reached: ThrowTerminatingError always throws
        }
        using var disposeRun = run;
        running = run;
        EngineEvent? result = null;
        int exitCode = -1;
        try
        {
            foreach (var engineEvent in run.Events.GetConsumingEnumerable())
            {
                switch (engineEvent.Kind)
                {
                    case EngineEventKind.Progress:
                        WriteProgress(ProgressOf(activityId, activity, engineEvent));
                        break;
                    case EngineEventKind.Result:
                        result = engineEvent;
                        onResult?.Invoke(engineEvent);
                        break;
                    case EngineEventKind.Unrecognized:
                        WriteVerbose($"ckpt channel: {engineEvent.Text}");
                        break;
                    case EngineEventKind.Exited:
                        exitCode = engineEvent.ExitCode;
                        break;
                }
            }
        }
        finally
        {
            running = null;
            WriteProgress(new ProgressRecord(activityId, activity, "done") { RecordType = ProgressRecordType.Completed });
        }
        if (!string.IsNullOrWhiteSpace(run.StandardError)) WriteVerbose($"ckpt stderr: {run.StandardError.Trim()}");
        return new EngineOutcome(exitCode, result, run.StandardOutput, run.StandardError);
    }

    /// <summary>A new record per update: hosts may keep the records they are given.</summary>
    private static ProgressRecord ProgressOf(int activityId, string activity, EngineEvent engineEvent)
    {
        string phase = engineEvent.Phase ?? "working";
        var record = new ProgressRecord(activityId, activity, phase);
        if (engineEvent is { Done: long done, Total: long total and > 0 })
        {
            record.StatusDescription = $"{phase}: {done:N0} of {total:N0}";
            record.PercentComplete = (int)Math.Clamp(done * 100 / total, 0, 100);
        }
        return record;
    }

    protected override void StopProcessing() => running?.RequestStop();
}
