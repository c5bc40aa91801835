#Requires -Version 7.4
# Pester 5 tests of the CkptPS module, written as a user of the module would check it.
# Run from the repository root after ./build.sh:  Invoke-Pester -Path ./Pester -Output Detailed
# They need root (the engine ptraces and recreates processes).

BeforeAll {
    $script:RepoRoot = Split-Path -Parent $PSScriptRoot
    $script:ModulePath = Join-Path $RepoRoot 'artifacts/CkptPS'
    Import-Module $ModulePath -Force

    # Targets are started by bash in their own session, so they are not children of pwsh
    # (which would reap them through System.Diagnostics.Process) and have no pipe descriptors.
    function script:Start-Target {
        $log = Join-Path $TestDrive "target-$([guid]::NewGuid().ToString('N')).log"
        $id = [int](bash -c "setsid sleep 1000 </dev/null >'$log' 2>&1 & echo `$!")
        # The pid is known before the exec has renamed it: wait until it is `sleep`.
        $deadline = [datetime]::UtcNow.AddSeconds(10)
        while ((Get-Content "/proc/$id/comm" -ErrorAction SilentlyContinue) -ne 'sleep' -and [datetime]::UtcNow -lt $deadline) {
            Start-Sleep -Milliseconds 5
        }
        $id
    }
    function script:Test-Alive([int] $ProcessId) {
        $stat = Get-Content "/proc/$ProcessId/stat" -ErrorAction SilentlyContinue
        $stat -and ($stat.Substring($stat.LastIndexOf(')') + 2, 1) -notin 'Z', 'X')
    }
    function script:Wait-Gone([int] $ProcessId) {
        $deadline = [datetime]::UtcNow.AddSeconds(10)
        while ((Test-Path "/proc/$ProcessId") -and [datetime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
    }
    function script:Get-FreePid {
        $max = [int](Get-Content /proc/sys/kernel/pid_max)
        ($max - 1)..2 | Where-Object { -not (Test-Path "/proc/$_") } | Select-Object -First 1
    }
}

AfterAll {
    Remove-Module CkptPS -ErrorAction SilentlyContinue
}

Describe 'The CkptPS module' {
    It 'has a manifest that passes Test-ModuleManifest' {
        $manifest = Test-ModuleManifest -Path (Join-Path $ModulePath 'CkptPS.psd1')
        $manifest.ExportedCmdlets.Keys | Sort-Object | Should -Be @('Checkpoint-Process', 'Get-CkptImage', 'Restore-Process', 'Test-CkptImage')
        $manifest.ExportedFormatFiles | Should -Match 'CkptPS\.format\.ps1xml$'
        $manifest.ExportedTypeFiles | Should -Match 'CkptPS\.types\.ps1xml$'
    }

    It 'exports exactly its four cmdlets' {
        (Get-Command -Module CkptPS).Name | Sort-Object |
            Should -Be @('Checkpoint-Process', 'Get-CkptImage', 'Restore-Process', 'Test-CkptImage')
    }

    It 'has help with examples for <_>' -ForEach 'Checkpoint-Process', 'Restore-Process', 'Get-CkptImage', 'Test-CkptImage' {
        $command = $_
        $help = Get-Help $command -Full
        $help.Synopsis | Should -Not -BeNullOrEmpty
        @($help.examples.example).Count | Should -BeGreaterOrEqual 2
        $common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
        foreach ($name in (Get-Command $command).Parameters.Keys | Where-Object { $_ -notin $common }) {
            (Get-Help $command -Parameter $name).description.Text | Should -Match 'For example' -Because "-$name needs help"
        }
    }

    It 'completes -Id with live pids and their names' {
        $target = Start-Target
        try {
            $line = "Checkpoint-Process -Path x.ckpt -Id $target"
            $completions = (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches
            $completions.ListItemText | Should -Contain "$target sleep"
        }
        finally { Stop-Process -Id $target -Force -ErrorAction SilentlyContinue }
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

    It 'writes an image: Checkpoint-Process -Id 1234 -Path app.ckpt' {
        Checkpoint-Process -Id $Target -Path $Image
        $Image | Should -Exist
        Test-CkptImage $Image | Should -BeTrue
        Test-Alive $Target | Should -BeTrue
    }

    It 'does nothing with -WhatIf' {
        Checkpoint-Process -Id $Target -Path $Image -Kill -WhatIf
        $Image | Should -Not -Exist
        Test-Alive $Target | Should -BeTrue
    }

    It 'binds Get-Process output from the pipeline' {
        Get-Process -Id $Target | Checkpoint-Process -Path $Image -PassThru |
            ForEach-Object { $_.Pid | Should -Be $Target; $_.ImagePath | Should -Be $Image }
        $Image | Should -Exist
    }

    It 'writes one <name>-<pid>.ckpt per process into a folder' {
        $second = Start-Target
        try {
            $folder = Join-Path $TestDrive 'images'
            Get-Process -Id $Target, $second | Checkpoint-Process -Path $folder
            Join-Path $folder "sleep-$Target.ckpt" | Should -Exist
            Join-Path $folder "sleep-$second.ckpt" | Should -Exist
        }
        finally { Stop-Process -Id $second -Force -ErrorAction SilentlyContinue }
    }

    It 'reports a missing pid as ObjectNotFound and goes on with the others' {
        $folder = Join-Path $TestDrive 'partial'
        $missing = Get-FreePid
        Checkpoint-Process -Id $missing, $Target -Path $folder -ErrorVariable failures -ErrorAction SilentlyContinue
        $failures.Count | Should -Be 1
        $failures[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'ProcessNotFound,*'
        Join-Path $folder "sleep-$Target.ckpt" | Should -Exist
    }

    It 'reports a process the engine refuses (a FIFO descriptor) as InvalidOperation and leaves it running' {
        $fifo = Join-Path $TestDrive 'fifo'
        mkfifo $fifo
        $refused = [int](bash -c "setsid bash -c 'exec 5<>$fifo; exec sleep 1000' </dev/null >/dev/null 2>&1 & echo `$!")
        try {
            while ((Get-Content "/proc/$refused/comm" -ErrorAction SilentlyContinue) -ne 'sleep') { Start-Sleep -Milliseconds 5 }
            Checkpoint-Process -Id $refused -Path $Image -ErrorVariable failures -ErrorAction SilentlyContinue
            $failures[0].CategoryInfo.Category | Should -Be 'InvalidOperation'
            $failures[0].Exception.Message | Should -Match 'fd 5'
            $Image | Should -Not -Exist
            Test-Alive $refused | Should -BeTrue
        }
        finally { Stop-Process -Id $refused -Force -ErrorAction SilentlyContinue }
    }

    It 'does not overwrite an existing image without -Force' {
        Set-Content -Path $Image -Value 'precious'
        Checkpoint-Process -Id $Target -Path $Image -ErrorVariable failures -ErrorAction SilentlyContinue
        $failures[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        Get-Content $Image | Should -Be 'precious'
        Checkpoint-Process -Id $Target -Path $Image -Force
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
        $anon | ForEach-Object { $_.VmaType | Should -Be ([Ckpt.Image.Records.VmaType]::Anon) }
        $anon | ForEach-Object { $_.Pid | Should -Be $Target; $_.ImagePath | Should -Be $Image }
    }

    It 'emits the task first, then VMAs, then files' {
        $objects = Get-CkptImage $Image
        $objects[0] | Should -BeOfType CkptPS.CkptTask
        $objects[0].Pid | Should -Be $Target
        $objects[0].Comm | Should -Be 'sleep'
        $kinds = $objects | ForEach-Object { $_.GetType().Name }
        ($kinds -join ',') | Should -Match '^CkptTask(,CkptVma)+(,CkptFile)+$'
    }

    It 'has the kernel field names as alias properties' {
        $vma = Get-CkptImage $Image | Where-Object { $_ -is [CkptPS.CkptVma] } | Select-Object -First 1
        $vma.vm_start | Should -Be $vma.Start
        $vma.vm_end | Should -Be $vma.End
        $vma.vm_flags | Should -Be $vma.Flags
        $vma.vm_pgoff | Should -Be $vma.PageOffset
        $vma.vma_type | Should -Be $vma.VmaType
    }

    It 'shows VMAs like /proc/PID/maps and files like ls -l /proc/PID/fd' {
        $text = Get-CkptImage $Image | Out-String -Width 200
        $text | Should -Match '[0-9a-f]{12}-[0-9a-f]{12}\s+r-xp'
        $text | Should -Match '\[stack\]'
        $text | Should -Match 'lr-x------\s+0 -> /dev/null'
    }

    It 'reports a damaged image as InvalidData with the record and offset' {
        $bad = Join-Path $TestDrive 'bad.ckpt'
        $bytes = [System.IO.File]::ReadAllBytes($Image)
        [System.IO.File]::WriteAllBytes($bad, $bytes[0..199])
        Get-CkptImage $bad -ErrorVariable failures -ErrorAction SilentlyContinue
        $failures[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $failures[0].Exception.Message | Should -Match 'offset'
    }
}

Describe 'Test-CkptImage' {
    BeforeAll {
        $script:Target = Start-Target
        $script:Image = Join-Path $TestDrive 'valid.ckpt'
        Checkpoint-Process -Id $Target -Path $Image
    }
    AfterAll { Stop-Process -Id $Target -Force -ErrorAction SilentlyContinue }

    It 'is true for an intact image and false for a damaged one' {
        Test-CkptImage $Image | Should -BeTrue
        $bad = Join-Path $TestDrive 'flipped.ckpt'
        $bytes = [System.IO.File]::ReadAllBytes($Image)
        $bytes[$bytes.Length - 100] = $bytes[$bytes.Length - 100] -bxor 0xff
        [System.IO.File]::WriteAllBytes($bad, $bytes)
        Test-CkptImage $bad | Should -BeFalse
        $detail = Test-CkptImage $bad -Detailed
        $detail.IsValid | Should -BeFalse
        $detail.Problem | Should -Not -BeNullOrEmpty
    }

    It 'accepts FileInfo objects from Get-ChildItem' {
        Get-ChildItem $Image | Test-CkptImage | Should -BeTrue
    }
}

Describe 'Restore-Process' {
    It 'restores a killed process with its pid: Restore-Process -Path app.ckpt' {
        $target = Start-Target
        $image = Join-Path $TestDrive 'restore.ckpt'
        Checkpoint-Process -Id $target -Path $image -Kill -Confirm:$false
        Wait-Gone $target
        Test-Alive $target | Should -BeFalse
        try {
            $restored = Get-ChildItem $image | Restore-Process -PassThru
            $restored.Id | Should -Be $target
            Test-Alive $target | Should -BeTrue
            (Get-Content "/proc/$target/comm") | Should -Be 'sleep'
        }
        finally { Stop-Process -Id $target -Force -ErrorAction SilentlyContinue }
    }

    It 'does nothing with -WhatIf' {
        $target = Start-Target
        $image = Join-Path $TestDrive 'whatif.ckpt'
        Checkpoint-Process -Id $target -Path $image -Kill -Confirm:$false
        Wait-Gone $target
        Restore-Process -Path $image -WhatIf
        Test-Path "/proc/$target" | Should -BeFalse
    }

    It 'reports a damaged image as InvalidData and restores nothing' {
        $bad = Join-Path $TestDrive 'garbage.ckpt'
        [System.IO.File]::WriteAllBytes($bad, [byte[]](1..64))
        Restore-Process -Path $bad -ErrorVariable failures -ErrorAction SilentlyContinue
        $failures[0].CategoryInfo.Category | Should -Be 'InvalidData'
    }
}
