using System.Diagnostics;
using System.Management.Automation;
using CkptPS.Engine;
using CkptPS.Reading;

namespace CkptPS.Cmdlets;

/// <summary>
/// Checkpoint-Process: writes the image of one or more running processes through the engine.
/// Targets are collected first and checkpointed in EndProcessing, because whether -Path
/// names one image or a folder of them depends on how many processes arrive.
/// </summary>
[Cmdlet(VerbsData.Checkpoint, "Process", DefaultParameterSetName = IdSet, SupportsShouldProcess = true,
    ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(CkptImageInfo))]
public sealed class CheckpointProcessCommand : EngineCmdlet
{
    private const string IdSet = "Id";
    private const string InputObjectSet = "InputObject";
    private const int ProgressActivityId = 0x434b;

    private readonly List<ProcessTarget> targets = [];
    // Every distinct pid asked for, found or not: whether -Path is a folder depends on what the
    // user asked for, not on how many of the processes still exist.
    private readonly HashSet<int> requested = [];
    private bool yesToAll, noToAll;

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = IdSet, ValueFromPipelineByPropertyName = true)]
    [Alias("ProcessId")]
    [ValidateRange(1, int.MaxValue)]
    [ArgumentCompleter(typeof(ProcessIdCompleter))]
    public int[] Id { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = InputObjectSet, ValueFromPipeline = true)]
    public Process[] InputObject { get; set; } = [];

    // Position 0 in the InputObject set, so `Get-Process app | Checkpoint-Process app.ckpt` binds
    // the path positionally instead of failing to convert it to an -Id.
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = IdSet)]
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = InputObjectSet)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    [Parameter]
    public SwitchParameter Kill { get; set; }

    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Shortest freeze: the engine copies every page while the process is stopped and writes after it resumes.</summary>
    [Parameter]
    public SwitchParameter DeferredWrite { get; set; }

    /// <summary>Saves established TCP connections with TCP_REPAIR (the engine's --tcp-established); without it they are refused.</summary>
    [Parameter]
    public SwitchParameter TcpEstablished { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        if (ParameterSetName == InputObjectSet)
        {
            foreach (var process in InputObject) AddTarget(process.Id, process);
        }
        else
        {
            foreach (int pid in Id) AddTarget(pid, pid);
        }
    }

    protected override void EndProcessing()
    {
        if (targets.Count == 0) return;
        string resolved = PathResolution.ResolveForOutput(this, Path);
        // A pid that does not exist (reported by AddTarget) still counts: with `-Id 1,2 -Path dir`
        // and no process 1, the image of 2 goes into dir, not to a file named dir.
        // A path ending in '/' names a folder too, even for one process and before it exists.
        bool folder = requested.Count > 1 || Directory.Exists(resolved) || System.IO.Path.EndsInDirectorySeparator(Path);
        if (folder) resolved = System.IO.Path.TrimEndingDirectorySeparator(resolved);
        if (folder && !Directory.Exists(resolved))
        {
            string action = $"Performing the operation \"Create the folder for the images\" on target \"{resolved}\".";
            if (ShouldProcess(action, action, "Create the folder for the images", out var reason))
                Directory.CreateDirectory(resolved);
            else if (reason != ShouldProcessReason.WhatIf)
                return; // declined: no folder, no images; under -WhatIf go on and tell what would be done
        }
        foreach (var target in targets)
        {
            string image = folder ? System.IO.Path.Combine(resolved, $"{target.Name}-{target.Pid}.ckpt") : resolved;
            CheckpointOne(target, image);
        }
    }

    private void AddTarget(int pid, object source)
    {
        if (!requested.Add(pid)) return;
        if (ProcessTarget.TryFind(pid, source, out var target, out var error))
            targets.Add(target!);
        else
            WriteError(error!);
    }

    private void CheckpointOne(ProcessTarget target, string image)
    {
        if (File.Exists(image) && !Force)
        {
            WriteError(new ErrorRecord(
                new IOException($"The image '{image}' already exists; use -Force to overwrite it."),
                "ImageExists", ErrorCategory.ResourceExists, image));
            return;
        }
        string action = Kill ? $"Checkpoint to '{image}', then kill the process" : $"Checkpoint to '{image}'";
        if (!ShouldProcess(target.Description, action)) return;
        if (Kill && !ConfirmKill(target)) return;

        // The engine writes beside the destination and puts the image in place only once it is
        // complete (docs/SECURITY.md): a failed checkpoint leaves nothing and never destroys the image
        // -Force would replace; without -Force an image that appeared meanwhile is not replaced either.
        var arguments = new List<string> { "checkpoint", "--pid", target.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), "--output", image };
        if (Force) arguments.Add("--force");
        if (Kill) arguments.Add("--kill");
        if (DeferredWrite) arguments.Add("--deferred-write");
        if (TcpEstablished) arguments.Add("--tcp-established");
        EngineOutcome outcome = RunEngine(arguments, ProgressActivityId, $"Checkpoint {target.Description}");
        if (!outcome.Succeeded)
        {
            WriteError(outcome.ToErrorRecord("CheckpointFailed", $"Cannot checkpoint {target.Description}", target.Source));
            return;
        }
        if (PassThru) WriteObject(ImageSummary.Read(image, Kill));
    }

    /// <summary>
    /// -Kill is a high-impact action on a medium-impact cmdlet: ask as PowerShell would for a
    /// ConfirmImpact High cmdlet, unless the user already answered with -Confirm or -Confirm:$false.
    /// </summary>
    private bool ConfirmKill(ProcessTarget target)
    {
        if (MyInvocation.BoundParameters.ContainsKey("Confirm")) return true;
        var preference = ConfirmImpact.High;
        if (GetVariableValue("ConfirmPreference") is { } value
            && LanguagePrimitives.TryConvertTo(value, out ConfirmImpact parsed))
            preference = parsed;
        if (preference == ConfirmImpact.None || preference > ConfirmImpact.High) return true;
        return ShouldContinue($"Kill {target.Description} once its image is written?", "Confirm -Kill",
            ref yesToAll, ref noToAll);
    }
}
