<#
.SYNOPSIS
    Checkpoints a long-running process at a fixed interval and keeps the last few good images.

.DESCRIPTION
    Invoke-PeriodicCheckpoint writes an image of the process -Id into the folder -Path every
    -Interval, while the process runs on (Checkpoint-Process without -Kill). Each image is named
    <comm>-<pid>-<UTC time>.ckpt, so the images of one process sort by age.

    Every new image is verified with Test-CkptImage (its checksum and every record) before any
    older image is deleted: only then are the images of that process beyond the newest -Keep
    removed. An image that fails verification is deleted and reported as an error, and no older
    image is touched, so the last good image is never lost to a bad new one.

    The script runs until the process exits (reported as an error), until -Count rounds are done,
    or until it is stopped with Ctrl+C. A checkpoint that fails for another reason (the engine
    refuses the process for now, the disk is full) is reported and the next round is tried.

    One object per round is written to the pipeline: Round, Time, ImagePath, Verified, Removed
    (the images deleted in that round).

    Needs the CkptPS module (imported when the script starts if it is not loaded yet) and the
    privileges Checkpoint-Process needs (root, or CAP_CHECKPOINT_RESTORE + CAP_SYS_PTRACE).

.PARAMETER Id
    The process to checkpoint. For example: -Id 4242, or (Get-Process myjob).Id.

.PARAMETER Path
    The folder the images are written to; it is created if it does not exist. For example:
    -Path /var/lib/ckpt/myjob.

.PARAMETER Interval
    The time from the start of one checkpoint to the start of the next. For example:
    -Interval 00:15:00 (every 15 minutes), or -Interval (New-TimeSpan -Seconds 30).

.PARAMETER Keep
    How many of the newest images of this process to keep in the folder; older ones are deleted
    once a new image has been verified. For example: -Keep 5. The default is 3.

.PARAMETER Count
    Stop after this many rounds; 0 (the default) runs until the process exits. For example: -Count 1
    takes one verified checkpoint and prunes the folder.

.PARAMETER DeferredWrite
    Passed on to Checkpoint-Process: the shortest freeze, the pages are written after the process
    resumes. For example: -DeferredWrite for a latency-sensitive job.

.EXAMPLE
    PS> ./Invoke-PeriodicCheckpoint.ps1 -Id 4242 -Path /var/lib/ckpt/myjob -Interval 00:10:00 -Keep 5

    Checkpoints process 4242 every ten minutes until it exits, keeping the five newest images.

.EXAMPLE
    PS> ./Invoke-PeriodicCheckpoint.ps1 -Id (Get-Process simulation).Id -Path ./images -Interval 0:0:30 -Count 3 -Keep 2

    Three checkpoints 30 seconds apart; afterwards ./images holds the two newest.

.EXAMPLE
    PS> ./Invoke-PeriodicCheckpoint.ps1 -Id 4242 -Path ./images -Count 1 -WhatIf

    Says which image the first round would write, and changes nothing.

.INPUTS
    None.

.OUTPUTS
    CkptPS.PeriodicCheckpoint objects: Round, Time, Pid, ImagePath, Verified, Removed.

.NOTES
    Restore the newest image with:
    Get-ChildItem ./images/*.ckpt | Sort-Object Name | Select-Object -Last 1 | Restore-Process
#>

#Requires -Version 7.4

[CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'Medium')]
[OutputType('CkptPS.PeriodicCheckpoint')]
param(
    [Parameter(Mandatory, Position = 0)]
    [Alias('ProcessId', 'Pid')]
    [ValidateRange(1, [int]::MaxValue)]
    [int] $Id,

    [Parameter(Mandatory, Position = 1)]
    [ValidateNotNullOrEmpty()]
    [string] $Path,

    [ValidateScript({ $_ -gt [timespan]::Zero }, ErrorMessage = 'The interval must be longer than zero.')]
    [timespan] $Interval = (New-TimeSpan -Minutes 5),

    [ValidateRange(1, [int]::MaxValue)]
    [int] $Keep = 3,

    [ValidateRange(0, [int]::MaxValue)]
    [int] $Count = 0,

    [switch] $DeferredWrite
)

if (-not (Get-Command Checkpoint-Process -ErrorAction Ignore)) { Import-Module CkptPS -ErrorAction Stop }

function New-ErrorRecord([string] $Message, [string] $ErrorId, [System.Management.Automation.ErrorCategory] $Category, $Target, [Exception] $Inner) {
    $exception = if ($Inner) { [System.InvalidOperationException]::new($Message, $Inner) } else { [System.InvalidOperationException]::new($Message) }
    [System.Management.Automation.ErrorRecord]::new($exception, $ErrorId, $Category, $Target)
}

$folder = $PSCmdlet.GetUnresolvedProviderPathFromPSPath($Path)
$comm = Get-Content -LiteralPath "/proc/$Id/comm" -ErrorAction Ignore
if (-not $comm) {
    $PSCmdlet.ThrowTerminatingError((New-ErrorRecord "Cannot find a process with the id $Id." 'ProcessNotFound' ObjectNotFound $Id))
}
# Names stay file-name safe whatever the process called itself.
$prefix = '{0}-{1}-' -f ($comm -replace '[^\w.+-]', '_'), $Id
if (-not (Test-Path -LiteralPath $folder -PathType Container) -and $PSCmdlet.ShouldProcess($folder, 'Create the folder for the images')) {
    $null = New-Item -ItemType Directory -Path $folder -Force -ErrorAction Stop
}

$round = 0
while ($Count -eq 0 -or $round -lt $Count) {
    $round++
    $started = [datetime]::UtcNow
    $image = Join-Path $folder ('{0}{1:yyyyMMdd\THHmmss\.fffffff}Z.ckpt' -f $prefix, $started)
    if (-not (Test-Path -LiteralPath "/proc/$Id")) {
        $PSCmdlet.WriteError((New-ErrorRecord "Process $Id has exited; no more checkpoints." 'ProcessExited' ObjectNotFound $Id))
        return
    }

    $verified = $false
    $removed = [System.Collections.Generic.List[string]]::new()
    if ($PSCmdlet.ShouldProcess("process $Id ($comm)", "Checkpoint to '$image'")) {
        $failures = $null
        Checkpoint-Process -Id $Id -Path $image -DeferredWrite:$DeferredWrite -Confirm:$false -WhatIf:$false -ErrorAction SilentlyContinue -ErrorVariable failures
        foreach ($failure in $failures) { $PSCmdlet.WriteError($failure) }
        if ($failures -and -not (Test-Path -LiteralPath "/proc/$Id")) { return } # the job ended while we were at it
        if (Test-Path -LiteralPath $image) {
            $check = Test-CkptImage -Path $image -Detailed -ErrorAction SilentlyContinue
            $verified = [bool]$check.IsValid
            if (-not $verified) {
                # Never let a bad image push a good one out: drop it and keep every older image.
                Remove-Item -LiteralPath $image -Force -WhatIf:$false -Confirm:$false -ErrorAction SilentlyContinue
                $PSCmdlet.WriteError((New-ErrorRecord "The new image '$image' failed verification ($($check.Problem)); it was deleted and no older image was removed." 'ImageVerificationFailed' InvalidData $image))
            }
        }
        if ($verified) {
            $series = @(Get-ChildItem -LiteralPath $folder -File -Filter "$prefix*.ckpt" | Sort-Object Name -Descending)
            foreach ($old in $series | Select-Object -Skip $Keep) {
                if ($PSCmdlet.ShouldProcess($old.FullName, 'Delete an old image')) {
                    Remove-Item -LiteralPath $old.FullName -Force -WhatIf:$false -Confirm:$false
                    $removed.Add($old.FullName)
                }
            }
        }
        [pscustomobject]@{
            PSTypeName = 'CkptPS.PeriodicCheckpoint'
            Round      = $round
            Time       = $started
            Pid        = $Id
            ImagePath  = if ($verified) { $image } else { $null }
            Verified   = $verified
            Removed    = $removed.ToArray()
        }
    }

    if ($Count -ne 0 -and $round -ge $Count) { break }
    if ($WhatIfPreference) { break } # every round would be the same: one is enough to tell
    $left = $started + $Interval - [datetime]::UtcNow
    if ($left -gt [timespan]::Zero) { Start-Sleep -Duration $left }
}
