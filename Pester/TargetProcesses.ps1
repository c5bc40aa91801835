# Helpers shared by the Pester files: real target processes, started as a user's shell would,
# and checks of their state in /proc. Dot-sourced in each file's BeforeAll.

# Targets are started by bash in their own session, so they are not children of pwsh
# (which would reap them through System.Diagnostics.Process) and have no pipe descriptors:
# descriptors above 2 that pwsh inherited (a CI runner's pipes, say) are closed before $Command.
# Their parent is then init (or the nearest subreaper), which reaps them once they are killed.
function script:Start-Target([string] $Command = 'exec sleep 1000', [string] $Name = 'sleep') {
    $log = Join-Path $TestDrive "target-$([guid]::NewGuid().ToString('N')).log"
    $closeInherited = 'for fd in $(ls /proc/$$/fd); do if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi; done; '
    $id = [int](bash -c 'setsid bash -c "$1" </dev/null >"$2" 2>&1 & echo $!' bash ($closeInherited + $Command) $log)
    # The pid is known before the exec has renamed it: wait until it has its final name.
    $deadline = [datetime]::UtcNow.AddSeconds(10)
    while ((Get-Content "/proc/$id/comm" -ErrorAction SilentlyContinue) -ne $Name) {
        if ([datetime]::UtcNow -gt $deadline) { throw "pid $id did not become $Name" }
        Start-Sleep -Milliseconds 5
    }
    $id
}
function script:Test-Alive([int] $ProcessId) {
    $stat = Get-Content "/proc/$ProcessId/stat" -Raw -ErrorAction SilentlyContinue
    [bool]($stat -and ($stat.Substring($stat.LastIndexOf(')') + 2, 1) -notin 'Z', 'X'))
}
# Nobody froze it: not stopped, no tracer attached.
function script:Test-Untouched([int] $ProcessId) {
    $stat = Get-Content "/proc/$ProcessId/stat" -Raw
    $state = $stat.Substring($stat.LastIndexOf(')') + 2, 1)
    ($state -notin 'T', 't') -and ((Get-Content "/proc/$ProcessId/status") -contains "TracerPid:`t0")
}
function script:Wait-Gone([int] $ProcessId) {
    $deadline = [datetime]::UtcNow.AddSeconds(10)
    while ((Test-Path "/proc/$ProcessId") -and [datetime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 20 }
}
function script:Get-FreePid {
    $max = [int](Get-Content /proc/sys/kernel/pid_max)
    for ($candidate = $max - 1; $candidate -gt 1; $candidate--) {
        if (-not (Test-Path "/proc/$candidate")) { return $candidate }
    }
    throw 'no free pid'
}
