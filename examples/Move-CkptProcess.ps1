<#
.SYNOPSIS
    Moves a running process to another host: checkpoint, kill, send the image, restore it there.

.DESCRIPTION
    Move-CkptProcess checkpoints the process -Id with Checkpoint-Process -Kill (the image is
    complete and on storage before the process is killed), verifies the image with Test-CkptImage,
    and hands it to a transport that restores it on the other side:

      -Destination host     streams the image through ssh into `ckpt restore --input -` on that
                            host (-RemoteCommand changes the command, -SshOption adds ssh options);
      -CommandLine 'cmd'    runs a bash command line with the image on its standard input, e.g.
                            'ssh -p 2222 host sudo ckpt restore --input -';
      -Transport { ... }    runs a script block with the image path as its only argument, e.g.
                            { param($Path) scp $Path host:/tmp/x.ckpt; ssh host pwsh -c 'Restore-Process /tmp/x.ckpt' }.

    On another host, root restores the streamed image's credentials only if that host has the same
    image key (/etc/ckpt/image.key) or the restore says it trusts the image: add --trust-image to
    the remote command (docs/SECURITY.md).

    The transport has succeeded when it exits with status 0 (a command) or neither throws nor
    writes an error nor leaves a non-zero $LASTEXITCODE (a script block). Then the local image is
    deleted, unless -KeepImage. The restored pid is taken from the transport's output (`ckpt
    restore` prints it; a script block may return a Process object or a pid).

    When the transport fails the process is not running anywhere that the script knows of: the
    error names the local image, which is kept. With -RestoreOnFailure the process is restored on
    this host from that image instead.

    The target host needs the same kernel release and the same files (executable, libraries,
    files the process has open) as this one; see Restore-Process.

.PARAMETER Id
    The process to move. For example: -Id 4242, or Get-Process myjob | Move-CkptProcess.ps1 -Destination node2.

.PARAMETER Destination
    The ssh destination ([user@]host) the image is streamed to. For example: -Destination root@node2.

.PARAMETER SshOption
    Extra arguments for ssh, before the destination. For example: -SshOption '-p', '2222', '-o', 'BatchMode=yes'.

.PARAMETER RemoteCommand
    The command ssh runs on the destination; it reads the image on its standard input. For
    example: -RemoteCommand 'sudo /opt/ckptps/ckpt restore --input -'. The default is 'ckpt restore --input -'.

.PARAMETER CommandLine
    A bash command line that reads the image on its standard input and restores it, standing in
    for ssh. For example: -CommandLine 'ssh node2 ckpt restore --input -', or locally
    -CommandLine 'cat > /tmp/copy.ckpt && ckpt restore --input /tmp/copy.ckpt'.

.PARAMETER Transport
    A script block that gets the local image path as its argument and restores it elsewhere.
    For example: -Transport { param($Path) Restore-Process -Path $Path -PassThru }.

.PARAMETER ImagePath
    Where the local image is written. For example: -ImagePath /var/tmp/myjob.ckpt. The default is
    a new file in the temporary folder.

.PARAMETER KeepImage
    Keep the local image after a successful move. For example: -KeepImage, to move the process back later.

.PARAMETER RestoreOnFailure
    If the transport fails, restore the process on this host from the local image. For example:
    -RestoreOnFailure, so that a failed move costs a pause instead of the process.

.EXAMPLE
    PS> ./Move-CkptProcess.ps1 -Id 4242 -Destination root@node2

    Checkpoints and kills 4242, then runs `ckpt restore --input -` on node2 with the image on its
    standard input; the process runs on node2 with pid 4242.

.EXAMPLE
    PS> Get-Process simulation | ./Move-CkptProcess.ps1 -CommandLine 'ssh -C node2 sudo ckpt restore --input -' -RestoreOnFailure -Confirm:$false

    Moves every process named simulation with compression on the wire, without asking; a process
    that cannot be restored on node2 is restored here again.

.EXAMPLE
    PS> ./Move-CkptProcess.ps1 -Id 4242 -Transport { param($Path) scp -q $Path node2:/tmp/job.ckpt; ssh node2 pwsh -c 'Restore-Process /tmp/job.ckpt -PassThru | % Id' }

    Copies the image with scp and restores it through the module on the other side.

.EXAMPLE
    PS> ./Move-CkptProcess.ps1 -Id 4242 -Destination node2 -WhatIf

    Says what would be done; the process runs on untouched.

.INPUTS
    Objects with an Id (or ProcessId) property, such as System.Diagnostics.Process from Get-Process.

.OUTPUTS
    CkptPS.MovedProcess objects: Pid, Destination, RestoredPid, Length, ImagePath (when kept), Output.
#>

#Requires -Version 7.4

[CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'High', DefaultParameterSetName = 'Ssh')]
[OutputType('CkptPS.MovedProcess')]
param(
    [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)]
    [Alias('ProcessId', 'Pid')]
    [ValidateRange(1, [int]::MaxValue)]
    [int] $Id,

    [Parameter(Mandatory, Position = 1, ParameterSetName = 'Ssh')]
    [ValidateNotNullOrEmpty()]
    [string] $Destination,

    [Parameter(ParameterSetName = 'Ssh')]
    [string[]] $SshOption = @(),

    [Parameter(ParameterSetName = 'Ssh')]
    [ValidateNotNullOrEmpty()]
    [string] $RemoteCommand = 'ckpt restore --input -',

    [Parameter(Mandatory, ParameterSetName = 'CommandLine')]
    [ValidateNotNullOrEmpty()]
    [string] $CommandLine,

    [Parameter(Mandatory, ParameterSetName = 'Transport')]
    [scriptblock] $Transport,

    [string] $ImagePath,

    [switch] $KeepImage,

    [switch] $RestoreOnFailure
)

begin {
    if (-not (Get-Command Checkpoint-Process -ErrorAction Ignore)) { Import-Module CkptPS -ErrorAction Stop }

    function New-ErrorRecord([string] $Message, [string] $ErrorId, [System.Management.Automation.ErrorCategory] $Category, $Target, [Exception] $Inner) {
        $exception = if ($Inner) { [System.InvalidOperationException]::new($Message, $Inner) } else { [System.InvalidOperationException]::new($Message) }
        [System.Management.Automation.ErrorRecord]::new($exception, $ErrorId, $Category, $Target)
    }

    # The restored pid: a Process, an int, or the first line that is a number (`ckpt restore` prints it).
    function Find-RestoredPid([object[]] $Output) {
        foreach ($item in $Output) {
            if ($item -is [System.Diagnostics.Process]) { return $item.Id }
            if ($item -is [int]) { return $item }
            if ("$item".Trim() -match '^\d+$') { return [int]"$item".Trim() }
        }
        $null
    }

    $where = switch ($PSCmdlet.ParameterSetName) {
        'Ssh' { "ssh $Destination" }
        'CommandLine' { "the command '$CommandLine'" }
        'Transport' { 'the transport script block' }
    }
}

process {
    $image = if ($ImagePath) { $PSCmdlet.GetUnresolvedProviderPathFromPSPath($ImagePath) }
             else { Join-Path ([System.IO.Path]::GetTempPath()) "ckpt-move-$Id-$([guid]::NewGuid().ToString('N')).ckpt" }
    if (-not $PSCmdlet.ShouldProcess("process $Id", "Checkpoint to '$image', kill it and restore it through $where")) { return }

    $failures = $null
    Checkpoint-Process -Id $Id -Path $image -Kill -Confirm:$false -WhatIf:$false -ErrorAction SilentlyContinue -ErrorVariable failures
    if ($failures) {
        # Nothing happened to the process: Checkpoint-Process kills only once the image is complete.
        foreach ($failure in $failures) { $PSCmdlet.WriteError($failure) }
        return
    }
    $check = Test-CkptImage -Path $image -Detailed
    if (-not $check.IsValid) {
        $PSCmdlet.WriteError((New-ErrorRecord "The image of process $Id at '$image' fails verification ($($check.Problem)); it was not sent." 'ImageVerificationFailed' InvalidData $image))
        return
    }
    $length = (Get-Item -LiteralPath $image).Length

    $output = @()
    $problem = $inner = $null
    if ($PSCmdlet.ParameterSetName -eq 'Transport') {
        try {
            $global:LASTEXITCODE = 0
            # Errors the block writes count as a failure too.
            $output = @(& { $ErrorActionPreference = 'Stop'; & $Transport $image })
            if ($global:LASTEXITCODE -ne 0) { $problem = "its last native command exited with status $global:LASTEXITCODE" }
        }
        catch { $problem = $_.Exception.Message; $inner = $_.Exception }
    }
    else {
        $command = if ($PSCmdlet.ParameterSetName -eq 'Ssh') { @('ssh') + $SshOption + @('--', $Destination, $RemoteCommand) } else { @('bash', '-c', $CommandLine) }
        Write-Verbose "Streaming '$image' into: $($command -join ' ')"
        $stderr = [System.IO.Path]::GetTempFileName()
        try {
            # bash gives the command the image as standard input and keeps its errors for the message.
            $output = @(bash -c 'image=$1 errors=$2; shift 2; "$@" <"$image" 2>"$errors"' bash $image $stderr @command)
            $status = $LASTEXITCODE
            $errors = (Get-Content -LiteralPath $stderr -Raw) ?? ''
            if ($status -ne 0) { $problem = "exit status $status$(if ($errors.Trim()) { ': ' + $errors.Trim() })" }
            elseif ($errors.Trim()) { Write-Verbose $errors.Trim() }
        }
        finally { Remove-Item -LiteralPath $stderr -Force -WhatIf:$false -Confirm:$false -ErrorAction SilentlyContinue }
    }

    if ($problem) {
        $message = "Moving process $Id through $where failed ($problem). Its image stays at '$image'."
        if ($RestoreOnFailure) {
            $restoreFailures = $null
            $back = Restore-Process -Path $image -PassThru -Confirm:$false -WhatIf:$false -ErrorAction SilentlyContinue -ErrorVariable restoreFailures
            $message += if ($restoreFailures) { " Restoring it on this host failed too: $($restoreFailures[0].Exception.Message)" }
                        else { " It was restored on this host (pid $($back.Id))." }
        }
        $PSCmdlet.WriteError((New-ErrorRecord $message 'TransportFailed' ConnectionError $Id $inner))
        return
    }

    if (-not $KeepImage) { Remove-Item -LiteralPath $image -Force -WhatIf:$false -Confirm:$false }
    [pscustomobject]@{
        PSTypeName  = 'CkptPS.MovedProcess'
        Pid         = $Id
        Destination = if ($PSCmdlet.ParameterSetName -eq 'Ssh') { $Destination } else { $where }
        RestoredPid = Find-RestoredPid $output
        Length      = $length
        ImagePath   = if ($KeepImage) { $image } else { $null }
        Output      = $output
    }
}
