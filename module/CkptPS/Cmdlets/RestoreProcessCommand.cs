using System.Diagnostics;
using System.Globalization;
using System.Management.Automation;
using CkptPS.Reading;

namespace CkptPS.Cmdlets;

/// <summary>
/// Restore-Process: recreates the process of each image through the engine, with its
/// original pid. The restored process is not a child of the shell (the engine makes sure).
/// </summary>
[Cmdlet(VerbsData.Restore, "Process", DefaultParameterSetName = ImagePathSet, SupportsShouldProcess = true,
    ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(Process))]
public sealed class RestoreProcessCommand : EngineCmdlet
{
    private const int ProgressActivityId = 0x5253;
    private const string PathSet = "Path";
    // The default set, so that piped objects with both properties bind ImagePath: the task, VMA,
    // file and thread objects of Get-CkptImage carry ImagePath, and VMAs and files also a Path
    // (the mapped or open file), which -Path would take first by its own name. Strings, FileInfo
    // (PSPath, FullName) and positional arguments bind -Path as before.
    private const string ImagePathSet = "ImagePath";

    // Images already restored (or attempted) by this invocation. `Get-CkptImage app.ckpt | Restore-Process`
    // binds ImagePath from every task, VMA, file and thread object of the image: the image is
    // restored once, not once per object (the second attempt could only fail: pid in use).
    private readonly HashSet<string> seen = new(StringComparer.Ordinal);

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = PathSet)]
    [Alias("PSPath", "FullName")]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = [];

    /// <summary>The image path of objects from Get-CkptImage, Test-CkptImage -Detailed and Checkpoint-Process -PassThru.</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ImagePathSet)]
    [ValidateNotNullOrEmpty]
    public string[] ImagePath { get; set; } = [];

    [Parameter]
    public SwitchParameter Wait { get; set; }

    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>`ckpt restore --lazy`: returns once the process runs; a page server fills its memory.</summary>
    [Parameter]
    public SwitchParameter Lazy { get; set; }

    [Parameter]
    public SwitchParameter TrustImage { get; set; }

    /// <summary>`ckpt restore --shell-terminal`: a process whose terminal was outside the image gets the shell's terminal.</summary>
    [Parameter]
    public SwitchParameter ShellTerminal { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        foreach (string path in ParameterSetName == ImagePathSet ? ImagePath : Path)
        {
            var images = PathResolution.ResolveExisting(this, path, out var error);
            if (error is not null) WriteError(error);
            foreach (string image in images)
            {
                if (seen.Add(image)) RestoreOne(image);
                else WriteVerbose($"'{image}' was already restored by this command; skipping it.");
            }
        }
    }

    private void RestoreOne(string image)
    {
        string what = ImageSummary.TryDescribe(image) is { } task ? $"Restore {task}" : "Restore the process";
        if (!ShouldProcess(image, what)) return;

        var arguments = new List<string> { "restore", "--input", image };
        if (Wait && Lazy)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException("-Lazy and -Wait cannot be combined: a lazy restore returns while its page server still fills the process."), "LazyWithWait", ErrorCategory.InvalidArgument, image));
        if (Wait) arguments.Add("--wait");
        if (Lazy) arguments.Add("--lazy");
        if (Force) arguments.Add("--force");
        if (TrustImage) arguments.Add("--trust-image");
        if (ShellTerminal) arguments.Add("--shell-terminal");
        // Taken as soon as the result arrives: with -Wait the process may be gone by the time the engine exits.
        Process? restored = null;
        var outcome = RunEngine(arguments, ProgressActivityId, what, result =>
        {
            if (PassThru && result is { Ok: true, Pid: int pid }) restored = TryGetProcess(pid);
        }, onCallersTerminal: ShellTerminal);
        if (!outcome.Succeeded)
        {
            WriteError(outcome.ToErrorRecord("RestoreFailed", $"Cannot restore '{image}'", image));
            return;
        }
        if (outcome.Result?.ExitStatus is int status)
            WriteVerbose($"The process restored from '{image}' exited with status {status}.");
        if (!PassThru) return;
        int? restoredPid = outcome.Result?.Pid ?? ParsePid(outcome.StandardOutput);
        restored ??= restoredPid is int id ? TryGetProcess(id) : null;
        if (restored is not null)
            WriteObject(restored);
        else
            WriteWarning($"The process restored from '{image}' (pid {restoredPid?.ToString(CultureInfo.InvariantCulture) ?? "unknown"}) has already exited.");
    }

    private static Process? TryGetProcess(int pid)
    {
        try { return Process.GetProcessById(pid); }
        catch (ArgumentException) { return null; }
        catch (InvalidOperationException) { return null; }
    }

    /// <summary>`ckpt restore` prints the restored pid; the first integer line is it.</summary>
    private static int? ParsePid(string standardOutput)
    {
        foreach (string line in standardOutput.Split('\n'))
        {
            if (int.TryParse(line.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int pid)) return pid;
        }
        return null;
    }
}
