#Requires -Version 7.4
# Pester 5 tests of the automation scripts in examples/, run end to end against real processes
# the way a user runs them: the module imported from artifacts/CkptPS, the script called by path.
# Run from the repository root after ./build.sh (as root): Invoke-Pester -Path ./Pester/Examples.Tests.ps1

BeforeAll {
    $script:RepoRoot = Split-Path -Parent $PSScriptRoot
    $script:ModulePath = Join-Path $RepoRoot 'artifacts/CkptPS'
    $script:Examples = Join-Path $RepoRoot 'examples'
    $script:Engine = Join-Path $ModulePath 'ckpt'
    Import-Module $ModulePath -Force

    . (Join-Path $PSScriptRoot 'TargetProcesses.ps1')
    # Damages the page contents in the middle of an image: it still parses (Get-CkptImage does not
    # read page contents) but its checksum no longer matches (Test-CkptImage is false).
    function script:Edit-Damage([string] $Image) {
        $bytes = [System.IO.File]::ReadAllBytes($Image)
        $middle = [int]($bytes.Length / 2)
        $bytes[$middle] = $bytes[$middle] -bxor 0xff
        [System.IO.File]::WriteAllBytes($Image, $bytes)
    }
    # Runs a script as a user at the prompt sees it: what it writes to the pipeline, and the errors
    # it shows (-ErrorVariable would also collect the errors the script silenced or caught inside).
    function script:Invoke-Visible([scriptblock] $Block) {
        $ErrorActionPreference = 'Continue'
        $all = @(& $Block 2>&1)
        [pscustomobject]@{
            Output = @($all | Where-Object { $_ -isnot [System.Management.Automation.ErrorRecord] })
            Errors = @($all | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })
        }
    }
    # Kills a process from outside, a moment from now, while the script under test is watching.
    function script:Stop-Later([int] $ProcessId, [double] $Seconds) {
        bash -c 'setsid bash -c "sleep $1; kill -KILL $2" bash "$1" "$2" </dev/null >/dev/null 2>&1 &' bash $Seconds $ProcessId
    }
}

AfterAll {
    Remove-Module CkptPS -ErrorAction SilentlyContinue
}

Describe 'The example scripts' {
    It '<_> has complete comment-based help and an approved verb' -ForEach 'Invoke-PeriodicCheckpoint', 'Start-CkptWatchdog', 'Move-CkptProcess', 'Get-CkptImageReport' {
        $name = $_
        $script = Join-Path $Examples "$name.ps1"
        $script | Should -Exist
        $tokens = $errors = $null
        $null = [System.Management.Automation.Language.Parser]::ParseFile($script, [ref]$tokens, [ref]$errors)
        $errors | Should -BeNullOrEmpty
        ($name -split '-')[0] | Should -BeIn (Get-Verb).Verb
        $help = Get-Help $script -Full
        $help.Synopsis | Should -Not -BeNullOrEmpty
        $help.Synopsis | Should -Not -Match ([regex]::Escape($name)) -Because 'pwsh shows the syntax as synopsis when help is missing'
        ($help.description.Text -join ' ') | Should -Not -BeNullOrEmpty
        @($help.examples.example).Count | Should -BeGreaterOrEqual 2
        $help.examples.example | ForEach-Object { $_.code | Should -Match ([regex]::Escape("$name.ps1")) }
        $command = Get-Command $script
        $command.Parameters.ContainsKey('WhatIf') | Should -BeTrue -Because 'every script changes state and supports -WhatIf'
        $common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
        foreach ($parameter in $command.Parameters.Keys | Where-Object { $_ -notin $common }) {
            ((Get-Help $script -Parameter $parameter).description.Text -join ' ') | Should -Match 'For\s+example' -Because "-$parameter needs help"
        }
    }
}

Describe 'Invoke-PeriodicCheckpoint.ps1' {
    BeforeEach {
        $script:Target = Start-Target
        $script:Folder = Join-Path $TestDrive "periodic-$([guid]::NewGuid().ToString('N'))"
        $script:Periodic = Join-Path $Examples 'Invoke-PeriodicCheckpoint.ps1'
    }
    AfterEach {
        Stop-Process -Id $Target -Force -ErrorAction SilentlyContinue
        Remove-Variable -Name CkptPSEnginePath -Scope Global -ErrorAction SilentlyContinue
    }

    It 'checkpoints every -Interval and keeps the newest -Keep verified images; the process runs on' {
        $clock = [System.Diagnostics.Stopwatch]::StartNew()
        $rounds = @(& $Periodic -Id $Target -Path $Folder -Interval 0:0:0.5 -Keep 2 -Count 4)
        $clock.Stop()
        $clock.Elapsed.TotalSeconds | Should -BeGreaterOrEqual 1.5 -Because 'three intervals lie between four rounds'
        $rounds.Count | Should -Be 4
        $rounds | ForEach-Object { $_.Verified | Should -BeTrue; $_.Pid | Should -Be $Target }
        $rounds.Round | Should -Be 1, 2, 3, 4
        $images = @(Get-ChildItem $Folder -Filter '*.ckpt' | Sort-Object Name)
        $images.FullName | Should -Be $rounds[2].ImagePath, $rounds[3].ImagePath
        $images | ForEach-Object { $_.Name | Should -Match "^sleep-$Target-\d{8}T\d{6}\.\d+Z\.ckpt$"; Test-CkptImage $_.FullName | Should -BeTrue }
        @($rounds.Removed) | Sort-Object | Should -Be (@($rounds[0].ImagePath, $rounds[1].ImagePath) | Sort-Object)
        Get-ChildItem $Folder -Force | Where-Object Name -like '*.partial' | Should -BeNullOrEmpty
        Test-Alive $Target | Should -BeTrue
        Test-Untouched $Target | Should -BeTrue
    }

    It 'keeps the last good image when a new one fails verification, and reports it' {
        $good = @(& $Periodic -Id $Target -Path $Folder -Interval 0:0:0.1 -Keep 1 -Count 1)
        $good[0].Verified | Should -BeTrue
        # An engine whose images are damaged on the way to storage.
        $damaging = Join-Path $TestDrive 'damaging-ckpt'
        Set-Content -Path $damaging -Value @(
            '#!/bin/bash'
            "'$Engine' `"`$@`" || exit"
            'while [ "$1" != --output ]; do shift; done; out=$2'
            'size=$(stat -c %s "$out"); printf "garbage!" | dd of="$out" bs=1 seek=$((size / 2)) conv=notrunc status=none'
        )
        chmod 755 $damaging
        $global:CkptPSEnginePath = $damaging
        $bad = @(& $Periodic -Id $Target -Path $Folder -Interval 0:0:0.1 -Keep 1 -Count 2 -ErrorVariable failures -ErrorAction SilentlyContinue)
        $failures.Count | Should -Be 2
        $failures | ForEach-Object {
            $_.FullyQualifiedErrorId | Should -BeLike 'ImageVerificationFailed*'
            $_.CategoryInfo.Category | Should -Be 'InvalidData'
        }
        $bad | ForEach-Object { $_.Verified | Should -BeFalse; $_.Removed | Should -BeNullOrEmpty }
        (Get-ChildItem $Folder -Filter '*.ckpt').FullName | Should -Be $good[0].ImagePath
        Test-CkptImage $good[0].ImagePath | Should -BeTrue
        Test-Alive $Target | Should -BeTrue
    }

    It 'stops with ProcessExited when the job ends between rounds' {
        Stop-Later $Target 1.5
        $rounds = @(& $Periodic -Id $Target -Path $Folder -Interval 0:0:0.2 -Keep 2 -Count 50 -ErrorVariable failures -ErrorAction SilentlyContinue)
        $rounds.Count | Should -BeLessThan 50
        $rounds.Count | Should -BeGreaterOrEqual 1
        $failures[-1].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        @(Get-ChildItem $Folder -Filter '*.ckpt').Count | Should -BeIn 1, 2
    }

    It 'throws ProcessNotFound for a pid that does not exist' {
        { & $Periodic -Id (Get-FreePid) -Path $Folder -Count 1 -ErrorAction Stop } | Should -Throw -ErrorId 'ProcessNotFound*'
        $Folder | Should -Not -Exist
    }

    It 'does nothing with -WhatIf, and returns after telling what the first round would do' {
        # No -Count: without -WhatIf this would run as long as the process does.
        & $Periodic -Id $Target -Path $Folder -Interval 0:0:1 -WhatIf | Should -BeNullOrEmpty
        $Folder | Should -Not -Exist
        Test-Untouched $Target | Should -BeTrue
    }
}

Describe 'Start-CkptWatchdog.ps1' {
    BeforeEach {
        $script:Target = Start-Target
        $script:Folder = Join-Path $TestDrive "watchdog-$([guid]::NewGuid().ToString('N'))"
        $null = New-Item -ItemType Directory $Folder
        $script:Watchdog = Join-Path $Examples 'Start-CkptWatchdog.ps1'
        $script:Older = Join-Path $Folder 'older.ckpt'
        $script:Newer = Join-Path $Folder 'newer.ckpt'
        Checkpoint-Process -Id $Target -Path $Older
        Start-Sleep -Milliseconds 50
        Checkpoint-Process -Id $Target -Path $Newer
    }
    AfterEach { Stop-Process -Id $Target -Force -ErrorAction SilentlyContinue }

    It 'restores the newest image when the process is killed, and watches the restored one' {
        Stop-Later $Target 1
        $restores = @(& $Watchdog -Path $Folder -Id $Target -PollInterval 0:0:0.1 -Once -Timeout 0:0:30)
        $restores.Count | Should -Be 1
        $restores[0].ImagePath | Should -Be $Newer
        $restores[0].Pid | Should -Be $Target
        $restores[0].Skipped | Should -BeNullOrEmpty
        Test-Alive $Target | Should -BeTrue
        Get-Content "/proc/$Target/comm" | Should -Be 'sleep'
    }

    It 'skips a newer image that fails verification and restores the last good one' {
        Edit-Damage $Newer
        Test-CkptImage $Newer | Should -BeFalse
        Stop-Later $Target 0.5
        $restores = @(& $Watchdog -Path $Folder -PollInterval 0:0:0.1 -Once -Timeout 0:0:30 -WarningVariable warnings -WarningAction SilentlyContinue)
        $restores.Count | Should -Be 1
        $restores[0].ImagePath | Should -Be $Older
        $restores[0].Skipped | Should -Be $Newer
        ($warnings | Out-String) | Should -Match 'newer\.ckpt'
        Test-Alive $Target | Should -BeTrue
    }

    It 'restores again when the restored process dies again' {
        # The second kill comes well after the first restore (about a second) has brought the pid back.
        Stop-Later $Target 0.5
        Stop-Later $Target 5
        $restores = @(& $Watchdog -Path $Folder -Id $Target -PollInterval 0:0:0.1 -Timeout 0:0:10)
        $restores.Count | Should -Be 2
        Test-Alive $Target | Should -BeTrue
    }

    It 'returns after -Timeout with nothing to do while the process lives' {
        $clock = [System.Diagnostics.Stopwatch]::StartNew()
        & $Watchdog -Path $Folder -Id $Target -PollInterval 0:0:0.2 -Timeout 0:0:1 -ErrorVariable failures | Should -BeNullOrEmpty
        $clock.Elapsed.TotalSeconds | Should -BeGreaterOrEqual 0.9
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 10
        $failures | Should -BeNullOrEmpty
        Test-Untouched $Target | Should -BeTrue
    }

    It 'reports NoGoodImage when every image of the process is damaged' {
        Edit-Damage $Older
        Edit-Damage $Newer
        Stop-Process -Id $Target -Force
        Wait-Gone $Target
        & $Watchdog -Path $Folder -Id $Target -PollInterval 0:0:0.1 -Once -Timeout 0:0:10 -ErrorVariable failures -ErrorAction SilentlyContinue -WarningAction SilentlyContinue |
            Should -BeNullOrEmpty
        $failures.Count | Should -Be 1
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'NoGoodImage*'
        $failures[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        Test-Path "/proc/$Target" | Should -BeFalse
    }

    It 'does not restore with -WhatIf' {
        Stop-Process -Id $Target -Force
        Wait-Gone $Target
        & $Watchdog -Path $Folder -Id $Target -PollInterval 0:0:0.1 -Once -Timeout 0:0:10 -WhatIf | Should -BeNullOrEmpty
        Test-Path "/proc/$Target" | Should -BeFalse
    }
}

Describe 'Move-CkptProcess.ps1' {
    BeforeEach {
        $script:Target = Start-Target
        $script:Move = Join-Path $Examples 'Move-CkptProcess.ps1'
        $script:Before = @(Get-ChildItem ([System.IO.Path]::GetTempPath()) -Filter 'ckpt-move-*' -Force -ErrorAction SilentlyContinue).Name
    }
    AfterEach { Stop-Process -Id $Target -Force -ErrorAction SilentlyContinue }

    It 'streams the image into `ckpt restore --input -` (standing in for ssh) and leaves no image behind' {
        $moved = & $Move -Id $Target -CommandLine "'$Engine' restore --input -" -Confirm:$false
        $moved.Pid | Should -Be $Target
        $moved.RestoredPid | Should -Be $Target
        $moved.Length | Should -BeGreaterThan 0
        $moved.ImagePath | Should -BeNullOrEmpty
        Test-Alive $Target | Should -BeTrue
        Get-Content "/proc/$Target/comm" | Should -Be 'sleep'
        @(Get-ChildItem ([System.IO.Path]::GetTempPath()) -Filter 'ckpt-move-*' -Force -ErrorAction SilentlyContinue).Name |
            Where-Object { $_ -notin $Before } | Should -BeNullOrEmpty
    }

    It 'runs ssh with -SshOption, the destination and -RemoteCommand (a stand-in ssh on PATH)' {
        $bin = Join-Path $TestDrive 'fake-ssh-bin'
        $null = New-Item -ItemType Directory $bin -Force
        $log = Join-Path $TestDrive 'ssh-arguments.log'
        # Like ssh: options, then the destination, then the remote command run by a shell "there".
        Set-Content -Path (Join-Path $bin 'ssh') -Value @(
            '#!/bin/bash'
            "printf '%s\n' `"`$@`" > '$log'"
            'while [ "$1" != -- ]; do shift; done; shift 2'
            'exec bash -c "$*"'
        )
        chmod 755 (Join-Path $bin 'ssh')
        $path = $env:PATH
        try {
            $env:PATH = "${bin}:$path"
            $moved = Get-Process -Id $Target | & $Move -Destination 'root@node2' -SshOption '-p', '2222' -RemoteCommand "'$Engine' restore --input -" -Confirm:$false
        }
        finally { $env:PATH = $path }
        Get-Content $log | Should -Be '-p', '2222', '--', 'root@node2', "'$Engine' restore --input -"
        $moved.Destination | Should -Be 'root@node2'
        $moved.RestoredPid | Should -Be $Target
        Test-Alive $Target | Should -BeTrue
    }

    It 'keeps the image with -KeepImage at -ImagePath, for a command that stores it first' {
        $image = Join-Path $TestDrive 'kept.ckpt'
        $copy = Join-Path $TestDrive 'received.ckpt'
        $moved = & $Move -Id $Target -ImagePath $image -KeepImage -CommandLine "cat > '$copy' && '$Engine' restore --input '$copy'" -Confirm:$false
        $moved.ImagePath | Should -Be $image
        Test-CkptImage $image | Should -BeTrue
        (Get-FileHash $copy).Hash | Should -Be (Get-FileHash $image).Hash
        $moved.RestoredPid | Should -Be $Target
        Test-Alive $Target | Should -BeTrue
    }

    It 'hands the image path to a -Transport script block (another pwsh restores it)' {
        $pwsh = Join-Path $PSHOME 'pwsh'
        $moved = & $Move -Id $Target -Confirm:$false -Transport {
            param($Path)
            & $pwsh -NoProfile -NonInteractive -Command "Import-Module '$ModulePath'; (Restore-Process -Path '$Path' -PassThru).Id"
        }
        $moved.Destination | Should -Be 'the transport script block'
        $moved.RestoredPid | Should -Be $Target
        Test-Alive $Target | Should -BeTrue
    }

    It 'reports a failed transport as TransportFailed and keeps the image' {
        $image = Join-Path $TestDrive 'stranded.ckpt'
        $run = Invoke-Visible { & $Move -Id $Target -ImagePath $image -CommandLine 'cat > /dev/null; echo "no route to node2" >&2; exit 3' -Confirm:$false }
        $run.Output | Should -BeNullOrEmpty
        $failures = $run.Errors
        $failures.Count | Should -Be 1
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'TransportFailed*'
        $failures[0].CategoryInfo.Category | Should -Be 'ConnectionError'
        $failures[0].Exception.Message | Should -Match 'exit status 3: no route to node2'
        $failures[0].Exception.Message | Should -Match ([regex]::Escape($image))
        Test-CkptImage $image | Should -BeTrue
        Wait-Gone $Target
        Test-Alive $Target | Should -BeFalse
    }

    It 'restores the process here with -RestoreOnFailure when the transport fails' {
        $run = Invoke-Visible { & $Move -Id $Target -Transport { param($Path) throw 'node2 is down' } -RestoreOnFailure -Confirm:$false }
        $run.Output | Should -BeNullOrEmpty
        $failures = $run.Errors
        $failures.Count | Should -Be 1
        $failures[0].Exception.Message | Should -Match 'node2 is down'
        $failures[0].Exception.Message | Should -Match "restored on this host \(pid $Target\)"
        Test-Alive $Target | Should -BeTrue
    }

    It 'leaves the process alone when it cannot be checkpointed' {
        $refused = Start-Target -Command "exec 5<>/dev/ptmx; exec sleep 1000"
        try {
            $run = Invoke-Visible { & $Move -Id $refused -CommandLine "'$Engine' restore --input -" -Confirm:$false }
            $run.Output | Should -BeNullOrEmpty
            $failures = $run.Errors
            $failures.Count | Should -Be 1
            $failures[0].FullyQualifiedErrorId | Should -BeLike 'CheckpointFailed*'
            Test-Untouched $refused | Should -BeTrue
        }
        finally { Stop-Process -Id $refused -Force -ErrorAction SilentlyContinue }
    }

    It 'does nothing with -WhatIf' {
        & $Move -Id $Target -Destination 'node2' -WhatIf | Should -BeNullOrEmpty
        Test-Alive $Target | Should -BeTrue
        Test-Untouched $Target | Should -BeTrue
    }
}

Describe 'Get-CkptImageReport.ps1' {
    BeforeAll {
        $script:Report = Join-Path $Examples 'Get-CkptImageReport.ps1'
        $script:Folder = Join-Path $TestDrive 'report'
        $null = New-Item -ItemType Directory $Folder
        $script:Sleeper = Start-Target
        # Four threads and 16 written pages of shared anonymous memory (mmap(-1, ...) is MAP_SHARED).
        $script:Python = Start-Target -Name 'python3' -Command (
            'exec /usr/bin/python3 -I -c "import mmap, threading, time; m = mmap.mmap(-1, 16 * 4096); m.write(b''x'' * 16 * 4096); ' +
            '[threading.Thread(target=time.sleep, args=(1000,)).start() for _ in range(3)]; open(''/tmp/ckptps-ready-$$'', ''w'').close(); time.sleep(1000)"')
        $deadline = [datetime]::UtcNow.AddSeconds(20)
        while (-not (Test-Path "/tmp/ckptps-ready-$Python") -and [datetime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 20 }
        Remove-Item "/tmp/ckptps-ready-$Python" -ErrorAction SilentlyContinue
        Checkpoint-Process -Id $Sleeper, $Python -Path $Folder
        $script:SleeperImage = Join-Path $Folder "sleep-$Sleeper.ckpt"
        $script:PythonImage = Join-Path $Folder "python3-$Python.ckpt"
    }
    AfterAll {
        Stop-Process -Id $Sleeper, $Python -Force -ErrorAction SilentlyContinue
    }

    It 'writes one object per image with the process, its threads, memory by kind and age' {
        $rows = @(& $Report -Path $Folder)
        $rows.Count | Should -Be 2
        $rows.ImagePath | Sort-Object | Should -Be (@($SleeperImage, $PythonImage) | Sort-Object)
        $sleep = $rows | Where-Object Pid -eq $Sleeper
        $python = $rows | Where-Object Pid -eq $Python
        $sleep.Comm | Should -Be 'sleep'
        $sleep.Threads | Should -Be 1
        $python.Comm | Should -Be 'python3'
        $python.Threads | Should -Be 4
        $python.SharedPages | Should -Be 16
        $sleep.SharedPages | Should -Be 0
        foreach ($row in $rows) {
            $vmas = Get-CkptImage $row.ImagePath | Where-Object { $_ -is [CkptPS.CkptVma] }
            $row.AnonPages | Should -Be (($vmas | Where-Object VmaType -eq 'Anon' | Measure-Object PagesSaved -Sum).Sum)
            $row.FilePages | Should -Be (($vmas | Where-Object VmaType -eq 'File' | Measure-Object PagesSaved -Sum).Sum)
            $row.AnonPages | Should -BeGreaterThan 0
            $row.Length | Should -Be (Get-Item $row.ImagePath).Length
            $row.Age | Should -BeOfType [timespan]
            $row.Age | Should -BeGreaterThan ([timespan]::Zero)
            $row.Age.TotalMinutes | Should -BeLessThan 10
            $row.Valid | Should -BeNullOrEmpty
        }
    }

    It 'shows a table by default' {
        $text = & $Report -Path $Folder | Out-String -Width 200
        $text | Should -Match 'Name\s+Pid\s+Comm\s+Threads\s+Anon\s+File\s+Shared\s+Length\s+Age'
        $text | Should -Match "python3-$Python\.ckpt\s+$Python\s+python3\s+4\s+\S+\s+\S+\s+64K"
    }

    It 'exports the report with -CsvPath, and passes the objects on with -PassThru' {
        $csv = Join-Path $TestDrive 'report.csv'
        & $Report -Path $Folder -CsvPath $csv -Verify | Should -BeNullOrEmpty
        $rows = @(Import-Csv $csv)
        $rows.Count | Should -Be 2
        $python = $rows | Where-Object Pid -eq "$Python"
        $python.Comm | Should -Be 'python3'
        $python.Threads | Should -Be '4'
        $python.SharedPages | Should -Be '16'
        $python.Valid | Should -Be 'True'
        [datetime]::Parse($python.CheckpointTime).ToUniversalTime() | Should -BeLessThan ([datetime]::UtcNow)
        [double]$python.AgeSeconds | Should -BeGreaterThan 0
        $passed = @(& $Report -Path $Folder -CsvPath $csv -PassThru)
        $passed.Count | Should -Be 2
    }

    It 'takes images from Get-ChildItem, marks damaged ones with -Verify and reports unreadable ones' {
        $other = Join-Path $TestDrive 'report-damaged'
        $null = New-Item -ItemType Directory $other
        Copy-Item $SleeperImage (Join-Path $other 'flipped.ckpt')
        Edit-Damage (Join-Path $other 'flipped.ckpt')
        [System.IO.File]::WriteAllBytes((Join-Path $other 'garbage.ckpt'), [byte[]](1..64))
        $run = Invoke-Visible { Get-ChildItem $other -Filter '*.ckpt' | & $Report -Verify }
        $rows = $run.Output
        $failures = $run.Errors
        $rows.Count | Should -Be 1
        $rows[0].Name | Should -Be 'flipped.ckpt'
        $rows[0].Valid | Should -BeFalse
        $failures.Count | Should -Be 1
        $failures[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $failures[0].TargetObject | Should -BeLike '*garbage.ckpt'
    }

    It 'writes no CSV with -WhatIf' {
        $csv = Join-Path $TestDrive 'whatif.csv'
        & $Report -Path $Folder -CsvPath $csv -WhatIf
        $csv | Should -Not -Exist
    }
}
