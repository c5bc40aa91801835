<#
.SYNOPSIS
    Reports what a folder of checkpoint images holds: processes, threads, memory of each kind, age.

.DESCRIPTION
    Get-CkptImageReport reads every image under -Path with Get-CkptImage (headers, tasks and
    VMAs; page contents are not read, so a large folder is quick) and writes one object per
    checkpointed process:

      Name, ImagePath   the image file
      Pid, Comm, Exe    the process
      Threads           its number of threads
      AnonPages         pages saved of private anonymous memory (heap, stacks, private mmap)
      FilePages         pages saved of private file mappings (written-to data of libraries, ...)
      SharedPages       pages saved of shared memory (MAP_SHARED anonymous; shared file
                        mappings are kept by reference and have none)
      SavedBytes        all page contents saved for the process
      Length            the size of the image file
      CheckpointTime    when the checkpoint was taken (UTC), from the image header
      Age               how long ago that was
      Valid             with -Verify: whether Test-CkptImage passes (the whole file is read)

    The objects are shown as a table; -CsvPath exports them to a CSV file instead (add -PassThru
    to get them as well). An image that cannot be read is reported as an error and the report
    goes on with the next.

.PARAMETER Path
    Folders and image files to report on; wildcards are allowed. For example: -Path /var/lib/ckpt,
    or -Path ./images/*.ckpt. The default is the current folder.

.PARAMETER Filter
    Which files of a folder are images. For example: -Filter 'myjob-*.ckpt'. The default is *.ckpt.

.PARAMETER Recurse
    Look into the subfolders of the folders too. For example: -Recurse on /var/lib/ckpt with one folder per service.

.PARAMETER Verify
    Check each image with Test-CkptImage and add the result as Valid. For example: -Verify
    before a clean-up of invalid images.

.PARAMETER CsvPath
    Export the report to this CSV file instead of writing it to the pipeline. For example:
    -CsvPath ./images.csv.

.PARAMETER PassThru
    With -CsvPath: write the objects to the pipeline too. For example: -CsvPath r.csv -PassThru | Sort-Object Age.

.EXAMPLE
    PS> ./Get-CkptImageReport.ps1 /var/lib/ckpt -Recurse

    A table of every image below /var/lib/ckpt: process, threads, memory by kind, age.

.EXAMPLE
    PS> ./Get-CkptImageReport.ps1 ./images -Verify -CsvPath ./images.csv

    Verifies every image in ./images and exports the report to images.csv.

.EXAMPLE
    PS> ./Get-CkptImageReport.ps1 ./images | Where-Object Age -gt (New-TimeSpan -Days 7) | Remove-Item -Path { $_.ImagePath } -WhatIf

    Lists the images older than a week that a clean-up would delete.

.INPUTS
    System.String paths, or FileInfo/DirectoryInfo objects from Get-ChildItem.

.OUTPUTS
    CkptPS.ImageReport objects (nothing with -CsvPath unless -PassThru).
#>

#Requires -Version 7.4

[CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'Low')]
[OutputType('CkptPS.ImageReport')]
param(
    [Parameter(Position = 0, ValueFromPipeline, ValueFromPipelineByPropertyName)]
    [Alias('FullName', 'PSPath')]
    [ValidateNotNullOrEmpty()]
    [string[]] $Path = @('.'),

    [ValidateNotNullOrEmpty()]
    [string] $Filter = '*.ckpt',

    [switch] $Recurse,

    [switch] $Verify,

    [ValidateNotNullOrEmpty()]
    [string] $CsvPath,

    [switch] $PassThru
)

begin {
    if (-not (Get-Command Get-CkptImage -ErrorAction Ignore)) { Import-Module CkptPS -ErrorAction Stop }

    # A table by default: a script cannot ship a format file, so it writes one view for its type
    # into the user's own data folder (not a shared temp folder: a format file holds script code)
    # and loads it once per session. It stays there: the session rereads it on later format updates.
    if (-not (Get-FormatData -TypeName CkptPS.ImageReport -ErrorAction Ignore)) {
        $columns = @(
            @('Name', 'Name', 40), @('Pid', 'Pid', 8), @('Comm', 'Comm', 16), @('Threads', 'Threads', 7),
            @('Anon', '[CkptPS.HumanSize]::Format([uint64]$_.AnonPages * 4096)', 7),
            @('File', '[CkptPS.HumanSize]::Format([uint64]$_.FilePages * 4096)', 7),
            @('Shared', '[CkptPS.HumanSize]::Format([uint64]$_.SharedPages * 4096)', 7),
            @('Length', '[CkptPS.HumanSize]::Format([long]$_.Length)', 7),
            @('Age', '$a = $_.Age; if ($a.TotalDays -ge 1) { ''{0:N1}d'' -f $a.TotalDays } elseif ($a.TotalHours -ge 1) { ''{0:N1}h'' -f $a.TotalHours } elseif ($a.TotalMinutes -ge 1) { ''{0:N0}m'' -f $a.TotalMinutes } else { ''{0:N0}s'' -f $a.TotalSeconds }', 6),
            @('Valid', 'Valid', 5))
        $headers = $columns | ForEach-Object { "<TableColumnHeader><Label>$($_[0])</Label><Width>$($_[2])</Width></TableColumnHeader>" }
        $items = $columns | ForEach-Object {
            $kind = if ($_[1] -match '^\w+$') { 'PropertyName' } else { 'ScriptBlock' }
            "<TableColumnItem><$kind>$([System.Security.SecurityElement]::Escape($_[1]))</$kind></TableColumnItem>"
        }
        $xml = @"
<?xml version="1.0" encoding="utf-8"?>
<Configuration><ViewDefinitions><View><Name>CkptPS.ImageReport</Name>
<ViewSelectedBy><TypeName>CkptPS.ImageReport</TypeName></ViewSelectedBy>
<TableControl><TableHeaders>$($headers -join '')</TableHeaders>
<TableRowEntries><TableRowEntry><TableColumnItems>$($items -join '')</TableColumnItems></TableRowEntry></TableRowEntries>
</TableControl></View></ViewDefinitions></Configuration>
"@
        $viewFolder = Join-Path ([Environment]::GetFolderPath('LocalApplicationData')) 'CkptPS'
        $view = Join-Path $viewFolder 'CkptPS.ImageReport.format.ps1xml'
        if ((Get-Content -LiteralPath $view -Raw -ErrorAction Ignore) -ne $xml) {
            $null = New-Item -ItemType Directory -Path $viewFolder -Force -WhatIf:$false -Confirm:$false
            Set-Content -LiteralPath $view -Value $xml -NoNewline -WhatIf:$false -Confirm:$false
        }
        Update-FormatData -PrependPath $view
    }

    $rows = [System.Collections.Generic.List[object]]::new()
    $now = [datetime]::UtcNow
}

process {
    foreach ($item in $Path) {
        $found = $null
        $files = @(Get-Item -Path $item -Force -ErrorAction SilentlyContinue -ErrorVariable found | ForEach-Object {
                if ($_.PSIsContainer) { Get-ChildItem -LiteralPath $_.FullName -File -Filter $Filter -Recurse:$Recurse -Force }
                else { $_ }
            })
        foreach ($failure in $found) {
            $PSCmdlet.WriteError([System.Management.Automation.ErrorRecord]::new(
                    [System.IO.FileNotFoundException]::new("Cannot find '$item'."), 'PathNotFound', 'ObjectNotFound', $item))
        }
        foreach ($file in $files | Sort-Object FullName) {
            $failures = $null
            $objects = Get-CkptImage -Path $file.FullName -ErrorAction SilentlyContinue -ErrorVariable failures
            foreach ($failure in $failures) { $PSCmdlet.WriteError($failure) }
            if ($failures) { continue }
            $valid = if ($Verify) { Test-CkptImage -Path $file.FullName } else { $null }
            foreach ($task in $objects | Where-Object { $_ -is [CkptPS.CkptTask] }) {
                $vmas = @($objects | Where-Object { $_ -is [CkptPS.CkptVma] -and $_.Pid -eq $task.Pid })
                $pages = @{ Anon = [uint64]0; File = [uint64]0; Shared = [uint64]0 }
                foreach ($vma in $vmas) {
                    switch ($vma.VmaType) {
                        'Anon' { $pages.Anon += $vma.PagesSaved }
                        'File' { $pages.File += $vma.PagesSaved }
                        { $_ -in 'SharedAnon', 'SharedFile' } { $pages.Shared += $vma.PagesSaved }
                    }
                }
                $row = [pscustomobject]@{
                    PSTypeName     = 'CkptPS.ImageReport'
                    Name           = $file.Name
                    ImagePath      = $file.FullName
                    Pid            = $task.Pid
                    Comm           = $task.Comm
                    Exe            = $task.Exe
                    Threads        = $task.ThreadCount
                    AnonPages      = $pages.Anon
                    FilePages      = $pages.File
                    SharedPages    = $pages.Shared
                    SavedBytes     = $task.SavedBytes
                    Length         = $file.Length
                    CheckpointTime = $task.CheckpointTimeUtc
                    Age            = $now - $task.CheckpointTimeUtc
                    Valid          = $valid
                }
                if ($CsvPath) { $rows.Add($row) }
                if (-not $CsvPath -or $PassThru) { $row }
            }
        }
    }
}

end {
    if (-not $CsvPath) { return }
    $csv = $PSCmdlet.GetUnresolvedProviderPathFromPSPath($CsvPath)
    if ($PSCmdlet.ShouldProcess($csv, "Export the report of $($rows.Count) image(s) to CSV")) {
        # Fixed formats for the columns a spreadsheet or another script reads back.
        $rows | Select-Object Name, ImagePath, Pid, Comm, Exe, Threads, AnonPages, FilePages, SharedPages, SavedBytes, Length,
            @{ Name = 'CheckpointTime'; Expression = { $_.CheckpointTime.ToString('o') } },
            @{ Name = 'AgeSeconds'; Expression = { [math]::Round($_.Age.TotalSeconds, 1) } }, Valid |
            Export-Csv -LiteralPath $csv -NoTypeInformation -Encoding utf8 -WhatIf:$false -Confirm:$false
    }
}
