<#
.SYNOPSIS
    Watches a service's process and restores its last good image when it dies.

.DESCRIPTION
    Start-CkptWatchdog polls the process -Id every -PollInterval. When the process is gone (no
    /proc entry, or only a zombie left), it looks in the folder -Path for the images of that pid,
    newest first (by the checkpoint time recorded in the image), and restores the first one that
    passes Test-CkptImage with Restore-Process. The process comes back with its original pid, so
    the watchdog goes on watching the same pid and restores it again if it dies again.

    Images that fail verification are skipped with a warning; images of other processes in the
    same folder are ignored. When no image of the process passes verification, or the restore
    fails, the error is reported and the watchdog stops: it cannot bring the service back.

    Without -Id the watchdog watches the process of the newest good image in the folder.
    -Once stops after the first restore; -Timeout stops the watchdog after that much time (a
    restore already under way is finished first). One object is written per restore: Time, Pid,
    ImagePath, Skipped (images that failed verification).

    Images are typically written by Invoke-PeriodicCheckpoint.ps1 or Checkpoint-Process.

.PARAMETER Path
    The folder holding the service's images. For example: -Path /var/lib/ckpt/myservice.

.PARAMETER Id
    The pid of the service to watch. For example: -Id 4242. Without it, the pid of the newest
    good image in the folder.

.PARAMETER Filter
    Which files of the folder are images. For example: -Filter 'myservice-*.ckpt'. The default is *.ckpt.

.PARAMETER PollInterval
    How often the process is looked at. For example: -PollInterval 00:00:05. The default is one second.

.PARAMETER Timeout
    Stop watching after this long. For example: -Timeout 01:00:00. The default is to watch until
    stopped with Ctrl+C.

.PARAMETER Once
    Stop after the first restore. For example: -Once, to bring a dead service back and return.

.PARAMETER Force
    Passed on to Restore-Process: restore even if the image was made on another kernel release.
    For example: -Force after a kernel update that left the process's files unchanged.

.EXAMPLE
    PS> ./Start-CkptWatchdog.ps1 -Path /var/lib/ckpt/myservice -Id 4242

    Watches process 4242 until stopped and restores its newest good image whenever it dies.

.EXAMPLE
    PS> ./Start-CkptWatchdog.ps1 -Path ./images -Once -Timeout 00:10:00

    Watches the process of the newest good image in ./images for ten minutes, restores it once if it dies.

.EXAMPLE
    PS> Start-ThreadJob { & ./examples/Start-CkptWatchdog.ps1 -Path /var/lib/ckpt/myservice -Id 4242 }

    Runs the watchdog in the background of the current session.

.INPUTS
    None.

.OUTPUTS
    CkptPS.WatchdogRestore objects: Time, Pid, ImagePath, Skipped.

.NOTES
    A pid is a name that the kernel may give to another process once the watched one is gone.
    The watchdog notices only that the pid is free or a zombie; if an unrelated process took the
    pid in between two polls, the restore fails with "pid in use" and the watchdog stops.
#>

#Requires -Version 7.4

[CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'Medium')]
[OutputType('CkptPS.WatchdogRestore')]
param(
    [Parameter(Mandatory, Position = 0)]
    [ValidateNotNullOrEmpty()]
    [string] $Path,

    [Parameter(Position = 1)]
    [Alias('ProcessId', 'Pid')]
    [ValidateRange(1, [int]::MaxValue)]
    [int] $Id,

    [ValidateNotNullOrEmpty()]
    [string] $Filter = '*.ckpt',

    [ValidateScript({ $_ -gt [timespan]::Zero }, ErrorMessage = 'The poll interval must be longer than zero.')]
    [timespan] $PollInterval = (New-TimeSpan -Seconds 1),

    [ValidateScript({ $_ -gt [timespan]::Zero }, ErrorMessage = 'The timeout must be longer than zero.')]
    [timespan] $Timeout,

    [switch] $Once,

    [switch] $Force
)

if (-not (Get-Command Restore-Process -ErrorAction Ignore)) { Import-Module CkptPS -ErrorAction Stop }

function New-ErrorRecord([string] $Message, [string] $ErrorId, [System.Management.Automation.ErrorCategory] $Category, $Target) {
    [System.Management.Automation.ErrorRecord]::new([System.InvalidOperationException]::new($Message), $ErrorId, $Category, $Target)
}

# Alive means running (or stopped): a zombie has died and only waits for its parent to reap it.
function Test-Alive([int] $ProcessId) {
    $stat = Get-Content -LiteralPath "/proc/$ProcessId/stat" -Raw -ErrorAction Ignore
    [bool]($stat -and ($stat.Substring($stat.LastIndexOf(')') + 2, 1) -notin 'Z', 'X'))
}

# The images of the folder with what they say about themselves, newest checkpoint first.
# Only the header and task are read here (Get-CkptImage); the checksum is checked later, on the
# candidates in order, so a large folder costs one full read per restore, not one per image.
function Get-Candidate {
    foreach ($file in Get-ChildItem -LiteralPath $folder -File -Filter $Filter -ErrorAction SilentlyContinue) {
        $task = Get-CkptImage -Path $file.FullName -ErrorAction SilentlyContinue | Where-Object { $_ -is [CkptPS.CkptTask] } | Select-Object -First 1
        if ($task) { [pscustomobject]@{ Path = $file.FullName; Pid = $task.Pid; Time = $task.CheckpointTimeUtc } }
    }
}

$folder = $PSCmdlet.GetUnresolvedProviderPathFromPSPath($Path)
if (-not (Test-Path -LiteralPath $folder -PathType Container)) {
    $PSCmdlet.ThrowTerminatingError((New-ErrorRecord "Cannot find the image folder '$folder'." 'FolderNotFound' ObjectNotFound $folder))
}
if (-not $PSBoundParameters.ContainsKey('Id')) {
    $newest = Get-Candidate | Sort-Object Time -Descending | Where-Object { Test-CkptImage -Path $_.Path } | Select-Object -First 1
    if (-not $newest) {
        $PSCmdlet.ThrowTerminatingError((New-ErrorRecord "No valid image matching '$Filter' in '$folder' says which process to watch; give -Id." 'NoImage' ObjectNotFound $folder))
    }
    $Id = $newest.Pid
}
Write-Verbose "Watching process $Id; images in '$folder'."
$deadline = if ($PSBoundParameters.ContainsKey('Timeout')) { [datetime]::UtcNow + $Timeout } else { [datetime]::MaxValue }

while ([datetime]::UtcNow -lt $deadline) {
    if (Test-Alive $Id) {
        $left = $deadline - [datetime]::UtcNow
        Start-Sleep -Duration ($left -lt $PollInterval ? ($left -gt [timespan]::Zero ? $left : [timespan]::Zero) : $PollInterval)
        continue
    }

    Write-Verbose "Process $Id is gone; looking for its last good image."
    $skipped = [System.Collections.Generic.List[string]]::new()
    $good = $null
    foreach ($candidate in Get-Candidate | Where-Object Pid -eq $Id | Sort-Object Time -Descending) {
        $check = Test-CkptImage -Path $candidate.Path -Detailed -ErrorAction SilentlyContinue
        if ($check.IsValid) { $good = $candidate; break }
        Write-Warning "Skipping '$($candidate.Path)': $($check.Problem)"
        $skipped.Add($candidate.Path)
    }
    if (-not $good) {
        $PSCmdlet.WriteError((New-ErrorRecord "Process $Id died and no image of it in '$folder' passes Test-CkptImage." 'NoGoodImage' ObjectNotFound $Id))
        return
    }
    if (-not $PSCmdlet.ShouldProcess("process $Id", "Restore from '$($good.Path)'")) { return } # -WhatIf: nothing more would happen
    $failures = $null
    Restore-Process -Path $good.Path -Force:$Force -Confirm:$false -WhatIf:$false -ErrorAction SilentlyContinue -ErrorVariable failures
    if ($failures) {
        foreach ($failure in $failures) { $PSCmdlet.WriteError($failure) }
        return
    }
    [pscustomobject]@{
        PSTypeName = 'CkptPS.WatchdogRestore'
        Time       = [datetime]::UtcNow
        Pid        = $Id
        ImagePath  = $good.Path
        Skipped    = $skipped.ToArray()
    }
    if ($Once) { return }
}
Write-Verbose "Timeout: stopped watching process $Id."
