#Requires -Version 7.4
# Pester 5 tests of the CkptPS module, written as a user of the module would check it.
# Run from the repository root after ./build.sh:  Invoke-Pester -Path ./Pester -Output Detailed
# They need root (the engine ptraces and recreates processes) and mirror the xUnit tests in
# tests/CkptPS.Module.Tests. Not covered here: Write-Progress records and prompts (pwsh cannot
# capture them without a custom host; the xUnit tests have one).

BeforeAll {
    $script:RepoRoot = Split-Path -Parent $PSScriptRoot
    $script:ModulePath = Join-Path $RepoRoot 'artifacts/CkptPS'
    Import-Module $ModulePath -Force
    $script:Cmdlets = @('Checkpoint-Process', 'Get-CkptImage', 'Restore-Process', 'Test-CkptImage')

    . (Join-Path $PSScriptRoot 'TargetProcesses.ps1')
}

AfterAll {
    Remove-Module CkptPS -ErrorAction SilentlyContinue
}

Describe 'The CkptPS module' {
    It 'has a manifest that passes Test-ModuleManifest and declares its views and types' {
        $manifest = Test-ModuleManifest -Path (Join-Path $ModulePath 'CkptPS.psd1')
        $manifest.ExportedCmdlets.Keys | Sort-Object | Should -Be $Cmdlets
        $manifest.ExportedFunctions.Count | Should -Be 0
        $manifest.ExportedAliases.Count | Should -Be 0
        $manifest.ExportedFormatFiles | Should -Match 'CkptPS\.format\.ps1xml$'
        $manifest.ExportedTypeFiles | Should -Match 'CkptPS\.types\.ps1xml$'
    }

    It 'exports exactly its four cmdlets, from the module folder' {
        $commands = Get-Command -Module CkptPS
        $commands.Name | Sort-Object | Should -Be $Cmdlets
        $commands | ForEach-Object { $_.CommandType | Should -Be 'Cmdlet'; $_.DLL | Should -Be (Join-Path $ModulePath 'CkptPS.dll') }
    }

    It 'has help with examples for <_>' -ForEach 'Checkpoint-Process', 'Restore-Process', 'Get-CkptImage', 'Test-CkptImage' {
        $command = $_
        $help = Get-Help $command -Full
        $help.Synopsis | Should -Not -BeNullOrEmpty
        $help.Synopsis | Should -Not -Match ([regex]::Escape($command)) -Because 'pwsh shows the syntax as synopsis when help is missing'
        @($help.examples.example).Count | Should -BeGreaterOrEqual 2
        $help.examples.example | ForEach-Object { $_.code | Should -Match ([regex]::Escape($command)) }
        $common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
        foreach ($name in (Get-Command $command).Parameters.Keys | Where-Object { $_ -notin $common }) {
            ((Get-Help $command -Parameter $name).description.Text -join ' ') | Should -Match 'For example' -Because "-$name needs help"
        }
    }

    It 'shows every parameter of <_> with its description and its examples in Get-Help -Full' -ForEach 'Checkpoint-Process', 'Restore-Process', 'Get-CkptImage', 'Test-CkptImage' {
        # The text a user reads (wide enough not to wrap), not the help objects.
        $command = $_
        $text = Get-Help $command -Full | Out-String -Width 4096
        $text | Should -Match '(?m)^PARAMETERS\s*$'
        $common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
        foreach ($parameter in (Get-Command $command).Parameters.Values | Where-Object { $_.Name -notin $common -or $_.Name -in 'WhatIf', 'Confirm' }) {
            # "-Name <Type>" (or "-Name" for a switch), then a line of description before "Required?".
            $heading = if ($parameter.SwitchParameter) { "-$($parameter.Name)" } else { "-$($parameter.Name) <$($parameter.ParameterType.Name)>" }
            $text | Should -Match ("(?m)^ +{0}\s*\r?\n +(?!Required\?)\w[^\r\n]+\r?\n" -f [regex]::Escape($heading)) -Because "-$($parameter.Name) needs a description under PARAMETERS"
        }
        $examples = [regex]::Matches($text, '(?m)^ *-+ Example (\d+): \S[^\r\n]* -+\s*$')
        $examples.Count | Should -BeGreaterOrEqual 2
        $examples | ForEach-Object { $_.Groups[1].Value } | Should -Be (1..$examples.Count | ForEach-Object { "$_" })
    }

    It 'shows Checkpoint-Process help as the prose in module/help says, with the syntax of the cmdlet' {
        $text = Get-Help Checkpoint-Process -Full | Out-String -Width 4096
        $text | Should -Match 'Checkpoint-Process \[-Id\] <Int32\[\]> \[-Path\] <String> \[-Kill\] \[-Force\] \[-DeferredWrite\] \[-TcpEstablished\] \[-PassThru\] \[-WhatIf\] \[-Confirm\]'
        $text | Should -Match 'Checkpoint-Process -InputObject <Process\[\]> \[-Path\] <String>'
        $text | Should -Match '(?m)^ +-Id <Int32\[\]>\s*\r?\n +The process ids to checkpoint\. Binds from the Id property'
        $text | Should -Match 'Position\? +1 \(Id\), 0 \(InputObject\)'
        $text | Should -Match 'Aliases +ProcessId'
        $text | Should -Match 'Accept pipeline input\? +True \(ByValue\)'
        $text | Should -Match '(?m)^ +-Kill\s*\r?\n +Kills each process once its image is complete'
        $text | Should -Match '-+ Example 1: Checkpoint a process by id -+'
        $text | Should -Match ([regex]::Escape('PS> Checkpoint-Process -Id 1234 -Path app.ckpt'))
        $text | Should -Match 'Writes the image of process 1234 to app\.ckpt in the current folder\.'
        $text | Should -Match '-+ Example 4: See what would happen -+'
        $text | Should -Match ([regex]::Escape('What if: Performing the operation "Checkpoint to'))
        $text | Should -Match '(?m)^OUTPUTS\s*\r?\n(.*\r?\n)*? +CkptPS\.CkptImageInfo'
        $text | Should -Match 'Requires CAP_CHECKPOINT_RESTORE and CAP_SYS_PTRACE'
        (Get-Help Checkpoint-Process -Examples).examples.example.Count | Should -Be 4
    }

    Context 'the -Id argument completer' {
        BeforeAll { $script:Completed = Start-Target }
        AfterAll { Stop-Process -Id $Completed -Force -ErrorAction SilentlyContinue }

        It 'offers live pids with their names' {
            $prefix = "$Completed".Substring(0, "$Completed".Length - 1)
            $line = "Checkpoint-Process -Path x.ckpt -Id $prefix"
            $completions = (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches
            $completions.ListItemText | Should -Contain "$Completed sleep"
            $completions.CompletionText | ForEach-Object { $_ | Should -BeLike "$prefix*" }
        }

        It 'matches process names too' {
            $line = 'Checkpoint-Process -Path x.ckpt -Id slee'
            (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText |
                Should -Contain "$Completed"
        }
    }
}

Describe 'Checkpoint-Process' {
    BeforeEach {
        $script:Target = Start-Target
        $script:Image = Join-Path $TestDrive "app-$([guid]::NewGuid().ToString('N')).ckpt"
    }
    AfterEach {
        Stop-Process -Id $Target -Force -ErrorAction SilentlyContinue
    }

    It 'writes an image and the process runs on: Checkpoint-Process -Id 1234 -Path app.ckpt' {
        $output = Checkpoint-Process -Id $Target -Path $Image
        $output | Should -BeNullOrEmpty
        $Image | Should -Exist
        Get-ChildItem (Split-Path $Image) -Filter '*.partial' -Force | Should -BeNullOrEmpty
        Test-CkptImage $Image | Should -BeTrue
        Test-Alive $Target | Should -BeTrue
        Test-Untouched $Target | Should -BeTrue
    }

    It 'writes a valid image with -DeferredWrite and the process runs on' {
        Checkpoint-Process -Id $Target -Path $Image -DeferredWrite
        Test-CkptImage $Image | Should -BeTrue
        Test-Alive $Target | Should -BeTrue
        Test-Untouched $Target | Should -BeTrue
    }

    It 'does nothing with -WhatIf' {
        $folder = Join-Path $TestDrive 'whatif-images'
        Checkpoint-Process -Id $Target -Path $Image -Kill -WhatIf
        Checkpoint-Process -Id $Target, $PID -Path $folder -WhatIf
        $Image | Should -Not -Exist
        $folder | Should -Not -Exist
        Test-Alive $Target | Should -BeTrue
        Test-Untouched $Target | Should -BeTrue
    }

    It 'binds Get-Process output from the pipeline, with the path as first positional argument' {
        $info = @(Get-Process -Id $Target | Checkpoint-Process $Image -PassThru)
        $info.Count | Should -Be 1
        $info[0] | Should -BeOfType CkptPS.CkptImageInfo
        $info[0].Pid | Should -Be $Target
        $info[0].ImagePath | Should -Be $Image
        $info[0].Length | Should -Be (Get-Item $Image).Length
        $info[0].Killed | Should -BeFalse
    }

    It 'binds -Id by property name and takes -InputObject' {
        $byName = Join-Path $TestDrive 'by-name.ckpt'
        $byInputObject = Join-Path $TestDrive 'by-input-object.ckpt'
        [pscustomobject]@{ Id = $Target; Name = 'whatever' } | Checkpoint-Process -Path $byName
        Checkpoint-Process -InputObject (Get-Process -Id $Target) -Path $byInputObject
        (Get-CkptImage $byName | Where-Object { $_ -is [CkptPS.CkptTask] }).Pid | Should -Be $Target
        (Get-CkptImage $byInputObject | Where-Object { $_ -is [CkptPS.CkptTask] }).Pid | Should -Be $Target
    }

    It 'writes one sleep-PID.ckpt per process into a folder' {
        $second = Start-Target
        try {
            $folder = Join-Path $TestDrive 'images'
            $infos = Get-Process -Id $Target, $second | Checkpoint-Process -Path $folder -PassThru
            $infos.ImagePath | Sort-Object | Should -Be (@("sleep-$Target.ckpt", "sleep-$second.ckpt") | ForEach-Object { Join-Path $folder $_ } | Sort-Object)
            Join-Path $folder "sleep-$Target.ckpt" | Should -Exist
            Join-Path $folder "sleep-$second.ckpt" | Should -Exist
            Test-Alive $second | Should -BeTrue
        }
        finally { Stop-Process -Id $second -Force -ErrorAction SilentlyContinue }
    }

    It 'reports a missing pid as ObjectNotFound and goes on with the others' {
        $folder = Join-Path $TestDrive 'partial'
        $missing = Get-FreePid
        Checkpoint-Process -Id $missing, $Target -Path $folder -ErrorVariable failures -ErrorAction SilentlyContinue
        $failures.Count | Should -Be 1
        $failures[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $failures[0].FullyQualifiedErrorId | Should -Be 'ProcessNotFound,CkptPS.Cmdlets.CheckpointProcessCommand'
        $failures[0].TargetObject | Should -Be $missing
        Join-Path $folder "sleep-$Target.ckpt" | Should -Exist
    }

    It 'throws the ProcessNotFound error with -ErrorAction Stop' {
        $missing = Get-FreePid
        { Checkpoint-Process -Id $missing -Path $Image -ErrorAction Stop } |
            Should -Throw -ErrorId 'ProcessNotFound,CkptPS.Cmdlets.CheckpointProcessCommand'
    }

    It 'reports a process the engine refuses (a pseudo-terminal master) as InvalidOperation and leaves it running' {
        $refused = Start-Target -Command "exec 5<>/dev/ptmx; exec sleep 1000"
        try {
            Checkpoint-Process -Id $refused -Path $Image -ErrorVariable failures -ErrorAction SilentlyContinue
            $failures.Count | Should -Be 1
            $failures[0].CategoryInfo.Category | Should -Be 'InvalidOperation'
            $failures[0].FullyQualifiedErrorId | Should -BeLike 'CheckpointFailed,*'
            $failures[0].Exception.Message | Should -Match 'fd 5'
            $Image | Should -Not -Exist
            Test-Alive $refused | Should -BeTrue
            Test-Untouched $refused | Should -BeTrue
        }
        finally { Stop-Process -Id $refused -Force -ErrorAction SilentlyContinue }
    }

    It 'reports the refusal of a process of another user as PermissionDenied when the engine runs without root' {
        # The real engine, run as nobody: it checkpoints only the processes of its caller (docs/SECURITY.md).
        # A copy nobody can reach: the checkout's own folders need not be searchable by nobody.
        $reachable = Join-Path ([IO.Path]::GetTempPath()) "ckptps-nobody-$([guid]::NewGuid().ToString('N'))"
        $null = New-Item -ItemType Directory $reachable
        chmod 755 $reachable
        Copy-Item (Join-Path $ModulePath 'ckpt') (Join-Path $reachable 'ckpt')
        chmod 755 (Join-Path $reachable 'ckpt')
        $unprivileged = Join-Path $TestDrive 'ckpt-as-nobody'
        Set-Content -Path $unprivileged -Value "#!/bin/sh`nexec setpriv --reuid=65534 --regid=65534 --clear-groups '$(Join-Path $reachable 'ckpt')' `"`$@`""
        chmod 700 $unprivileged
        $folder = Join-Path $TestDrive 'writable-by-nobody'
        $null = New-Item -ItemType Directory $folder
        chmod 777 $folder
        $global:CkptPSEnginePath = $unprivileged
        try {
            Checkpoint-Process -Id $Target -Path (Join-Path $folder 'denied.ckpt') -ErrorVariable failures -ErrorAction SilentlyContinue
        }
        finally { Remove-Variable -Name CkptPSEnginePath -Scope Global }
        $failures.Count | Should -Be 1
        $failures[0].CategoryInfo.Category | Should -Be 'PermissionDenied'
        $failures[0].Exception.Message | Should -Match "checkpoints only that user's own processes"
        Get-ChildItem $folder -Force | Should -BeNullOrEmpty
        Test-Untouched $Target | Should -BeTrue
    }

    It 'does not overwrite an existing image without -Force, and does with it' {
        Set-Content -Path $Image -Value 'precious'
        Checkpoint-Process -Id $Target -Path $Image -ErrorVariable failures -ErrorAction SilentlyContinue
        $failures.Count | Should -Be 1
        $failures[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'ImageExists,*'
        Get-Content $Image | Should -Be 'precious'
        Checkpoint-Process -Id $Target -Path $Image -Force
        Test-CkptImage $Image | Should -BeTrue
    }

    It 'kills without asking when $ConfirmPreference is None' {
        $ConfirmPreference = 'None'
        Checkpoint-Process -Id $Target -Path $Image -Kill
        Wait-Gone $Target
        Test-Alive $Target | Should -BeFalse
        Test-CkptImage $Image | Should -BeTrue
    }
}

Describe 'Get-CkptImage' {
    BeforeAll {
        $script:Target = Start-Target
        $script:Image = Join-Path $TestDrive 'inspect.ckpt'
        Checkpoint-Process -Id $Target -Path $Image
    }
    AfterAll {
        Stop-Process -Id $Target -Force -ErrorAction SilentlyContinue
    }

    It 'filters VMAs by type as written: Get-CkptImage app.ckpt | Where vma_type -eq Anon' {
        $anon = Get-CkptImage $Image | Where vma_type -eq Anon
        $anon | Should -Not -BeNullOrEmpty
        $anon | ForEach-Object { $_ | Should -BeOfType CkptPS.CkptVma; $_.VmaType | Should -Be ([Ckpt.Image.Records.VmaType]::Anon) }
        $anon.Path | Should -Contain '[stack]'
    }

    It 'emits the task first, then VMAs, then files, then threads, each with ImagePath and Pid' {
        $objects = Get-CkptImage $Image
        $objects[0] | Should -BeOfType CkptPS.CkptTask
        $objects[0].Pid | Should -Be $Target
        $objects[0].Comm | Should -Be 'sleep'
        $objects[0].Exe | Should -Be '/usr/bin/sleep'
        $objects[0].VmaCount | Should -Be @($objects | Where-Object { $_ -is [CkptPS.CkptVma] }).Count
        ($objects | ForEach-Object { $_.GetType().Name }) -join ',' | Should -Match '^CkptTask(,CkptVma)+(,CkptFile)+,CkptThread$'
        $objects | ForEach-Object { $_.Pid | Should -Be $Target; $_.ImagePath | Should -Be $Image }
    }

    It 'has the mappings of the live process, with protections like r-xp' {
        $maps = Get-Content "/proc/$Target/maps" | ForEach-Object { ($_ -split ' ')[0, 1] -join ' ' }
        $vmas = Get-CkptImage $Image | Where-Object { $_ -is [CkptPS.CkptVma] -and $_.VmaType -ne 'Vsyscall' }
        foreach ($vma in $vmas) {
            $vma.Protection | Should -Match '^[r-][w-][x-][ps]$'
            $maps | Should -Contain ('{0:x}-{1:x} {2}' -f $vma.Start, $vma.End, $vma.Protection)
        }
    }

    It 'has the kernel field names as alias properties' {
        $all = Get-CkptImage $Image
        $vma = $all | Where-Object { $_ -is [CkptPS.CkptVma] } | Select-Object -First 1
        $vma.vm_start | Should -Be $vma.Start
        $vma.vm_end | Should -Be $vma.End
        $vma.vm_flags | Should -Be $vma.Flags
        $vma.vm_pgoff | Should -Be $vma.PageOffset
        $vma.vma_type | Should -Be $vma.VmaType
        $file = $all | Where-Object { $_ -is [CkptPS.CkptFile] } | Where-Object fd -eq 1
        $file.f_pos | Should -Be $file.Position
        $file.f_flags | Should -Be $file.Flags
        $task = $all | Where-Object { $_ -is [CkptPS.CkptTask] }
        $task.Id | Should -Be $Target
        $task.ProcessName | Should -Be 'sleep'
        $task.nr_threads | Should -Be 1
        $task.cred.Uid | Should -Be 0
    }

    It 'shows VMAs like /proc/PID/maps and files like ls -l /proc/PID/fd' {
        $text = Get-CkptImage $Image | Out-String -Width 200
        $text | Should -Match 'Tasks in '
        $text | Should -Match "Memory of $Target \(like /proc/$Target/maps\)"
        $text | Should -Match '[0-9a-f]{12}-[0-9a-f]{12} r-xp [0-9a-f]{8} [0-9a-f]{2}:[0-9a-f]{2}\s+\d+\s+\S+\s+\S+ File\s+/usr/bin/sleep'
        $text | Should -Match 'rw-p 00000000 00:00\s+0\s+\d+(\.\d)?[KMG]\s+\S+ Anon\s+\[stack\]'
        $text | Should -Match 'lr-x------\s+0 -> /dev/null'
        $anonText = Get-CkptImage $Image | Where vma_type -eq Anon | Out-String -Width 200
        $anonText | Should -Not -Match 'Files of'
    }

    It 'emits one thread object per thread of a multi-threaded python, with its tid, name and syscall' {
        $script = Join-Path $TestDrive 'threads.py'
        Set-Content -Path $script -Value @(
            'import ctypes, threading, time'
            'libc = ctypes.CDLL(None)'
            'lock = threading.Lock(); lock.acquire(); stop = threading.Event()'
            'def run(name, work):'
            '    libc.prctl(15, name.encode(), 0, 0, 0)'
            '    work()'
            'threads = [threading.Thread(target=run, args=(n, w)) for n, w in'
            '           (("ckpt-wait", stop.wait), ("ckpt-sleep", lambda: time.sleep(1000)), ("ckpt-lock", lock.acquire))]'
            'for t in threads: t.start()'
            'for t in threads: t.join()'
        )
        $python = Start-Target -Command "exec /usr/bin/python3 -I $script" -Name 'python3'
        try {
            $deadline = [datetime]::UtcNow.AddSeconds(20)
            do {
                Start-Sleep -Milliseconds 20
                $live = Get-ChildItem "/proc/$python/task" | ForEach-Object {
                    [pscustomobject]@{
                        Tid     = [int]$_.Name
                        Name    = (Get-Content "/proc/$python/task/$($_.Name)/comm")
                        Syscall = [int](((Get-Content "/proc/$python/task/$($_.Name)/syscall") -split ' ')[0] -replace '^running$', '-1')
                    }
                }
                $settled = $live.Count -eq 4 -and @($live | Where-Object { $_.Syscall -notin 202, 230 }).Count -eq 0 -and
                    @($live | Where-Object Name -like 'ckpt-*').Count -eq 3
            } until ($settled -or [datetime]::UtcNow -gt $deadline)
            $settled | Should -BeTrue

            $pythonImage = Join-Path $TestDrive 'python.ckpt'
            Checkpoint-Process -Id $python -Path $pythonImage
            $threads = @(Get-CkptImage $pythonImage | Where-Object { $_ -is [CkptPS.CkptThread] })
            $threads.Count | Should -Be 4
            $threads[0].Tid | Should -Be $python
            $threads[0].IsLeader | Should -BeTrue
            ($threads | Sort-Object Tid | ForEach-Object { '{0}={1}' -f $_.Tid, $_.Name }) -join ',' |
                Should -Be (($live | Sort-Object Tid | ForEach-Object { '{0}={1}' -f $_.Tid, $_.Name }) -join ',')
            ($threads | Where-Object Name -eq 'ckpt-sleep').SyscallName | Should -Be 'clock_nanosleep'
            ($threads | Where-Object Name -eq 'ckpt-wait').Syscall | Should -Be '202 futex'
            $threads | ForEach-Object { $_.Pid | Should -Be $python; $_.State | Should -Not -Be 'NotInSyscall' }
            (Get-CkptImage $pythonImage | Out-String -Width 200) | Should -Match 'ckpt-sleep\s+(Restart|RestartBlock)\s+230 clock_nanosleep'
            Test-Alive $python | Should -BeTrue
        }
        finally {
            Stop-Process -Id $python -Force -ErrorAction SilentlyContinue
        }
    }

    It 'takes FileInfo objects from Get-ChildItem' {
        (Get-ChildItem $Image | Get-CkptImage | Where-Object { $_ -is [CkptPS.CkptTask] }).Pid | Should -Be $Target
    }

    It 'reports a damaged image as InvalidData with the record and offset, and goes on with the next' {
        $bad = Join-Path $TestDrive 'bad.ckpt'
        $bytes = [System.IO.File]::ReadAllBytes($Image)
        [System.IO.File]::WriteAllBytes($bad, $bytes[0..199])
        $good = Get-CkptImage $bad, $Image -ErrorVariable failures -ErrorAction SilentlyContinue
        $failures.Count | Should -Be 1
        $failures[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'InvalidImage,*'
        $failures[0].Exception.Message | Should -Match 'record \w+ \(\d+\) at offset \d+'
        ($good | Where-Object { $_ -is [CkptPS.CkptTask] }).Pid | Should -Be $Target
    }

    It 'reports a missing image as ObjectNotFound' {
        { Get-CkptImage (Join-Path $TestDrive 'absent.ckpt') -ErrorAction Stop } |
            Should -Throw -ErrorId 'ImageNotFound,CkptPS.Cmdlets.GetCkptImageCommand'
    }
}

Describe 'Test-CkptImage' {
    BeforeAll {
        $script:Target = Start-Target
        $script:Image = Join-Path $TestDrive 'valid.ckpt'
        Checkpoint-Process -Id $Target -Path $Image
    }
    AfterAll { Stop-Process -Id $Target -Force -ErrorAction SilentlyContinue }

    It 'is true for an intact image and false for a damaged, a truncated or a missing one' {
        $bytes = [System.IO.File]::ReadAllBytes($Image)
        $flipped = Join-Path $TestDrive 'flipped.ckpt'
        $damaged = [byte[]]$bytes.Clone()
        $damaged[[int]($bytes.Length / 2)] = $damaged[[int]($bytes.Length / 2)] -bxor 0xff
        [System.IO.File]::WriteAllBytes($flipped, $damaged)
        $cut = Join-Path $TestDrive 'cut.ckpt'
        [System.IO.File]::WriteAllBytes($cut, $bytes[0..($bytes.Length - 9)])
        Test-CkptImage $Image, $flipped, $cut, (Join-Path $TestDrive 'absent.ckpt') | Should -Be @($true, $false, $false, $false)
    }

    It 'says with -Detailed what is wrong and where' {
        $valid = Test-CkptImage $Image -Detailed
        $valid | Should -BeOfType CkptPS.CkptImageValidation
        $valid.IsValid | Should -BeTrue
        $valid.Pid | Should -Be $Target
        $bytes = [System.IO.File]::ReadAllBytes($Image)
        $cut = Join-Path $TestDrive 'cut-detailed.ckpt'
        [System.IO.File]::WriteAllBytes($cut, $bytes[0..($bytes.Length - 9)])
        $detail = Test-CkptImage $cut -Detailed
        $detail.IsValid | Should -BeFalse
        "$($detail.RecordType)" | Should -Be 'Tail'
        $detail.Offset | Should -Be ($bytes.Length - 32) # the tail record is 32 bytes
        $detail.Problem | Should -Match 'truncated'
    }

    It 'accepts FileInfo objects from Get-ChildItem' {
        Get-ChildItem $Image | Test-CkptImage | Should -BeTrue
    }
}

Describe 'Restore-Process' {
    BeforeEach { $script:Restored = $null }
    AfterEach { if ($Restored) { Stop-Process -Id $Restored -Force -ErrorAction SilentlyContinue } }

    It 'restores a killed process with its pid: Restore-Process -Path app.ckpt' {
        $target = Start-Target
        $image = Join-Path $TestDrive 'restore.ckpt'
        Checkpoint-Process -Id $target -Path $image -Kill -Confirm:$false
        Wait-Gone $target
        Test-Alive $target | Should -BeFalse
        $script:Restored = $target
        $process = Get-ChildItem $image | Restore-Process -PassThru
        $process | Should -BeOfType System.Diagnostics.Process
        $process.Id | Should -Be $target
        Test-Alive $target | Should -BeTrue
        Get-Content "/proc/$target/comm" | Should -Be 'sleep'
    }

    It 'takes the output of Checkpoint-Process -PassThru' {
        $target = Start-Target
        $script:Restored = $target
        # Wait-Gone: init has to collect the killed process before its pid is free again.
        $process = Checkpoint-Process -Id $target -Path (Join-Path $TestDrive 'moved.ckpt') -Kill -Confirm:$false -PassThru |
            ForEach-Object { Wait-Gone $_.Pid; $_ } |
            Restore-Process -PassThru
        $process.Id | Should -Be $target
        Test-Alive $target | Should -BeTrue
    }

    It 'waits for the restored process to exit with -Wait' {
        $target = Start-Target -Command 'exec sleep 3'
        $image = Join-Path $TestDrive 'sleep3.ckpt'
        Checkpoint-Process -Id $target -Path $image -Kill -Confirm:$false
        Wait-Gone $target
        $script:Restored = $target
        $clock = [System.Diagnostics.Stopwatch]::StartNew()
        $messages = Restore-Process -Path $image -Wait -Verbose 4>&1
        $clock.Stop()
        $clock.Elapsed.TotalSeconds | Should -BeGreaterThan 1 -Because 'the restored sleep has the rest of its 3 seconds to go'
        Test-Alive $target | Should -BeFalse
        ($messages | Out-String) | Should -Match 'exited with status 0'
    }

    It 'does nothing with -WhatIf' {
        $target = Start-Target
        $image = Join-Path $TestDrive 'whatif.ckpt'
        Checkpoint-Process -Id $target -Path $image -Kill -Confirm:$false
        Wait-Gone $target
        Restore-Process -Path $image -WhatIf -PassThru | Should -BeNullOrEmpty
        Test-Path "/proc/$target" | Should -BeFalse
    }

    It 'reports a pid still in use as ResourceExists and leaves that process alone' {
        $target = Start-Target
        try {
            $image = Join-Path $TestDrive 'live.ckpt'
            Checkpoint-Process -Id $target -Path $image
            Restore-Process -Path $image -ErrorVariable failures -ErrorAction SilentlyContinue
            $failures.Count | Should -Be 1
            $failures[0].CategoryInfo.Category | Should -Be 'ResourceExists'
            $failures[0].FullyQualifiedErrorId | Should -BeLike 'RestoreFailed,*'
            Test-Untouched $target | Should -BeTrue
        }
        finally { Stop-Process -Id $target -Force -ErrorAction SilentlyContinue }
    }

    It 'reports damaged images as InvalidData, one error per image' {
        $garbage = Join-Path $TestDrive 'garbage.ckpt'
        [System.IO.File]::WriteAllBytes($garbage, [byte[]](1..64))
        $empty = Join-Path $TestDrive 'empty.ckpt'
        [System.IO.File]::WriteAllBytes($empty, [byte[]]@())
        $garbage, $empty | Restore-Process -ErrorVariable failures -ErrorAction SilentlyContinue
        $failures.Count | Should -Be 2
        $failures | ForEach-Object { $_.CategoryInfo.Category | Should -Be 'InvalidData' }
        $failures.TargetObject | Should -Be @($garbage, $empty)
    }

    It 'reports a missing image as ObjectNotFound' {
        { Restore-Process -Path (Join-Path $TestDrive 'absent.ckpt') -ErrorAction Stop } |
            Should -Throw -ErrorId 'ImageNotFound,CkptPS.Cmdlets.RestoreProcessCommand'
    }
}

Describe 'Images through the pipeline' {
    BeforeEach { $script:Restored = @() }
    AfterEach { $Restored | ForEach-Object { Stop-Process -Id $_ -Force -ErrorAction SilentlyContinue } }

    It 'writes name-pid.ckpt for one process into an existing folder and into a path ending in /' {
        $target = Start-Target
        try {
            $existing = New-Item -ItemType Directory (Join-Path $TestDrive 'one-existing')
            $missing = Join-Path $TestDrive 'one-new'
            Checkpoint-Process -Id $target -Path $existing.FullName
            Checkpoint-Process -Id $target -Path "$missing/"
            Join-Path $existing "sleep-$target.ckpt" | Should -Exist
            Join-Path $missing "sleep-$target.ckpt" | Should -Exist
        }
        finally { Stop-Process -Id $target -Force -ErrorAction SilentlyContinue }
    }

    It 'restores every image of a folder: Get-ChildItem *.ckpt | Restore-Process' {
        $first, $second = (Start-Target), (Start-Target)
        $folder = Join-Path $TestDrive 'pipeline-folder'
        Checkpoint-Process -Id $first, $second -Path $folder -Kill -Confirm:$false
        Wait-Gone $first; Wait-Gone $second
        $script:Restored = $first, $second
        $processes = Get-ChildItem (Join-Path $folder '*.ckpt') | Restore-Process -PassThru
        $processes.Id | Sort-Object | Should -Be (@($first, $second) | Sort-Object)
        Test-Alive $first | Should -BeTrue
        Test-Alive $second | Should -BeTrue
    }

    It 'restores an image once from all the objects Get-CkptImage emits for it' {
        $target = Start-Target
        $image = Join-Path $TestDrive 'pipeline-inspected.ckpt'
        Checkpoint-Process -Id $target -Path $image -Kill -Confirm:$false
        Wait-Gone $target
        $script:Restored = @($target)
        $processes = @(Get-CkptImage $image | Restore-Process -PassThru -ErrorVariable failures)
        $failures | Should -BeNullOrEmpty
        $processes.Count | Should -Be 1
        $processes[0].Id | Should -Be $target
    }

    It 'restores only the images Test-CkptImage -Detailed finds valid, by their ImagePath' {
        $target = Start-Target
        $folder = Join-Path $TestDrive 'pipeline-validated'
        $null = New-Item -ItemType Directory $folder
        $image = Join-Path $folder 'good.ckpt'
        Checkpoint-Process -Id $target -Path $image -Kill -Confirm:$false
        Wait-Gone $target
        [System.IO.File]::WriteAllBytes((Join-Path $folder 'bad.ckpt'), [byte[]](1..64))
        $script:Restored = @($target)
        $processes = @(Test-CkptImage (Join-Path $folder '*.ckpt') -Detailed | Where-Object IsValid | Restore-Process -PassThru)
        $processes.Id | Should -Be $target
    }
}
