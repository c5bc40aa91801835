@{
    RootModule           = 'CkptPS.dll'
    ModuleVersion        = '0.1.0'
    GUID                 = '6f0c9a52-4d3e-4b8a-9a61-2f7d35c1e8b4'
    Author               = 'CkptPS contributors'
    CompanyName          = 'CkptPS'
    Copyright            = '(c) CkptPS contributors'
    Description          = 'Checkpoint running Linux processes to an image file, inspect images, and restore processes from them.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    # Loaded before the root module so the cmdlets find the image reader and its hashing library.
    RequiredAssemblies   = @('Ckpt.Image.dll', 'System.IO.Hashing.dll')
    FormatsToProcess     = @('CkptPS.format.ps1xml')
    TypesToProcess       = @('CkptPS.types.ps1xml')
    CmdletsToExport      = @('Checkpoint-Process', 'Restore-Process', 'Get-CkptImage', 'Test-CkptImage')
    FunctionsToExport    = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    PrivateData          = @{
        PSData = @{
            Tags       = @('checkpoint', 'restore', 'CRIU', 'Linux', 'ptrace')
            # Placeholders: the project has no public address and no licence chosen yet.
            ProjectUri = 'https://example.invalid/CkptPS'
            LicenseUri = 'https://example.invalid/CkptPS/LICENSE'
        }
    }
}
