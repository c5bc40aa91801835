#Requires -Version 7.4
# Installing CkptPS the way modules are installed: PSResourceGet (shipped with pwsh 7.4+) takes
# the module package that ./build.sh writes (artifacts/packages/CkptPS.<version>.nupkg, see
# module/build-module.sh) from a repository folder, and the installed module works on its own.
# Needs root (the checkpoint and restore ptrace a real process).
#
# The install runs in a separate pwsh whose HOME is a fresh folder: its CurrentUser module path,
# its PSResourceGet repository list and caches are all in there, so the user's own are untouched,
# and nothing in that pwsh has seen artifacts/CkptPS.

BeforeAll {
    $script:RepoRoot = Split-Path -Parent $PSScriptRoot
    $script:Packages = Join-Path $RepoRoot 'artifacts/packages'
    $script:SourceManifest = Import-PowerShellDataFile (Join-Path $RepoRoot 'module/CkptPS/CkptPS.psd1')
    $script:Version = $SourceManifest.ModuleVersion
    $script:Pwsh = Join-Path $PSHOME 'pwsh'
}

Describe 'The CkptPS module package' {
    It 'is built as artifacts/packages/CkptPS.(ModuleVersion).nupkg with the module files at its root' {
        $package = Join-Path $Packages "CkptPS.$Version.nupkg"
        $package | Should -Exist
        Add-Type -AssemblyName System.IO.Compression.FileSystem
        $zip = [System.IO.Compression.ZipFile]::OpenRead($package)
        try { $entries = $zip.Entries.FullName } finally { $zip.Dispose() }
        foreach ($file in 'CkptPS.psd1', 'CkptPS.dll', 'Ckpt.Image.dll', 'System.IO.Hashing.dll', 'ckpt',
                          'CkptPS.format.ps1xml', 'CkptPS.types.ps1xml', 'en-US/CkptPS.dll-Help.xml') {
            $entries | Should -Contain $file
        }
    }

    Context 'installed by Install-PSResource from a local repository into a clean module path' {
        BeforeAll {
            $script:CleanHome = Join-Path ([IO.Path]::GetTempPath()) "ckptps-home-$([guid]::NewGuid().ToString('N'))"
            $null = New-Item -ItemType Directory $CleanHome
            $script:Result = Join-Path $CleanHome 'result.json'
            $script:Image = Join-Path $CleanHome 'sleep.ckpt'

            # The target: /usr/bin/sleep in its own session, with no descriptors but 0-2 (whatever
            # this pwsh inherited is closed first), not a child of any pwsh.
            $closeInherited = 'for fd in $(ls /proc/$$/fd); do if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi; done; '
            $script:Target = [int](bash -c 'setsid bash -c "$1" </dev/null >/dev/null 2>&1 & echo $!' bash ($closeInherited + 'exec /usr/bin/sleep 1000'))
            $deadline = [datetime]::UtcNow.AddSeconds(10)
            while ((Get-Content "/proc/$Target/comm" -ErrorAction SilentlyContinue) -ne 'sleep') {
                if ([datetime]::UtcNow -gt $deadline) { throw "pid $Target did not become sleep" }
                Start-Sleep -Milliseconds 5
            }

            # What a user types, in a fresh pwsh; the facts the tests check go to result.json.
            $script:UserScript = Join-Path $CleanHome 'install-and-use.ps1'
            Set-Content -Path $UserScript -Value @'
param([string] $Packages, [int] $Target, [string] $Image, [string] $Result)
$ErrorActionPreference = 'Stop'
$facts = [ordered]@{}
$facts.LoadedBefore = @(Get-Module CkptPS -ListAvailable).ModuleBase
Register-PSResourceRepository -Name local -Uri $Packages -Trusted
$found = Find-PSResource CkptPS -Repository local
$facts.Found = $found | Select-Object Name, @{ n = 'Version'; e = { "$($_.Version)" } }, @{ n = 'Type'; e = { "$($_.Type)" } }, Description, Tags, @{ n = 'ProjectUri'; e = { "$($_.ProjectUri)" } }, @{ n = 'LicenseUri'; e = { "$($_.LicenseUri)" } }
Install-PSResource CkptPS -Repository local -Scope CurrentUser
$facts.Installed = Get-InstalledPSResource CkptPS | Select-Object Name, @{ n = 'Version'; e = { "$($_.Version)" } }, InstalledLocation
Import-Module CkptPS
$module = Get-Module CkptPS
$facts.ModuleBase = $module.ModuleBase
$facts.ModuleVersion = "$($module.Version)"
$facts.Commands = @((Get-Command -Module CkptPS).Name | Sort-Object)
$facts.Checkpoint = Checkpoint-Process -Id $Target -Path $Image -Kill -Confirm:$false -PassThru -Verbose 4>&1 |
    ForEach-Object { if ($_ -is [System.Management.Automation.VerboseRecord]) { $facts.CheckpointVerbose = $_.Message } else { $_ } } |
    Select-Object Pid, ImagePath, Killed
$facts.ImageValid = Test-CkptImage $Image
$facts.ImageExe = (Get-CkptImage $Image | Where-Object { $_ -is [CkptPS.CkptTask] }).Exe
# init reaps the killed process; its pid must be free before it can be given back.
$deadline = [datetime]::UtcNow.AddSeconds(10)
while ((Test-Path "/proc/$Target") -and [datetime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 20 }
$facts.Restored = (Restore-Process -Path $Image -PassThru).Id
$facts | ConvertTo-Json -Depth 4 | Set-Content -Path $Result
'@
            # A fresh HOME: no XDG_* folders from this session; PSModulePath as pwsh makes it
            # for that HOME (its own Modules folder, where PSResourceGet lives, included).
            $script:Output = env -u XDG_DATA_HOME -u XDG_CONFIG_HOME -u XDG_CACHE_HOME -u PSModulePath -u CKPTPS_ENGINE "HOME=$CleanHome" `
                $Pwsh -NoProfile -NonInteractive -File $UserScript -Packages $Packages -Target $Target -Image $Image -Result $Result 2>&1
            $script:ExitCode = $LASTEXITCODE
            $script:Facts = if (Test-Path $Result) { Get-Content $Result -Raw | ConvertFrom-Json } else { $null }
        }
        AfterAll {
            Stop-Process -Id $Target -Force -ErrorAction SilentlyContinue
            Remove-Item -Recurse -Force $CleanHome -ErrorAction SilentlyContinue
        }

        It 'runs the whole script without an error' {
            $ExitCode | Should -Be 0 -Because ($Output | Out-String)
            $Facts | Should -Not -BeNullOrEmpty -Because ($Output | Out-String)
        }

        It 'starts from a module path without CkptPS' {
            $Facts.LoadedBefore | Should -BeNullOrEmpty
        }

        It 'finds the package with the metadata of the manifest' {
            $Facts.Found.Name | Should -Be 'CkptPS'
            $Facts.Found.Version | Should -Be $Version
            $Facts.Found.Type | Should -Be 'Module'
            $Facts.Found.Description | Should -Be $SourceManifest.Description
            foreach ($tag in $SourceManifest.PrivateData.PSData.Tags) { $Facts.Found.Tags | Should -Contain $tag }
            $Facts.Found.ProjectUri | Should -Be $SourceManifest.PrivateData.PSData.ProjectUri
            $Facts.Found.LicenseUri | Should -Be $SourceManifest.PrivateData.PSData.LicenseUri
        }

        It 'installs it into the CurrentUser module folder under the clean HOME' {
            $Facts.Installed.Version | Should -Be $Version
            $Facts.ModuleBase | Should -Be (Join-Path $CleanHome ".local/share/powershell/Modules/CkptPS/$Version")
            $Facts.ModuleVersion | Should -Be $Version
            $Facts.Commands | Should -Be @('Checkpoint-Process', 'Get-CkptImage', 'Restore-Process', 'Test-CkptImage')
        }

        It 'runs the engine it ships, installed with it' {
            $Facts.CheckpointVerbose | Should -BeLike "$(Join-Path $Facts.ModuleBase 'ckpt') checkpoint --pid $Target *"
        }

        It 'checkpoints a real process with -Kill into a valid image' {
            $Facts.Checkpoint.Pid | Should -Be $Target
            $Facts.Checkpoint.ImagePath | Should -Be $Image
            $Facts.Checkpoint.Killed | Should -BeTrue
            $Facts.ImageValid | Should -BeTrue
            $Facts.ImageExe | Should -Be '/usr/bin/sleep'
        }

        It 'restores it with its pid, running /usr/bin/sleep again' {
            $Facts.Restored | Should -Be $Target
            Get-Content "/proc/$Target/comm" | Should -Be 'sleep'
            (Get-Item "/proc/$Target/exe").Target | Should -Be '/usr/bin/sleep'
            $stat = Get-Content "/proc/$Target/stat" -Raw
            $stat.Substring($stat.LastIndexOf(')') + 2, 1) | Should -Not -BeIn 'Z', 'X', 'T', 't'
        }
    }
}
