using System.Management.Automation;
using CkptPS.Reading;

namespace CkptPS.Cmdlets;

/// <summary>
/// Test-CkptImage: validates every record of an image, page contents and checksum
/// included. $true/$false, or with -Detailed what is wrong and where.
/// </summary>
[Cmdlet(VerbsDiagnostic.Test, "CkptImage")]
[OutputType(typeof(bool), typeof(CkptImageValidation))]
public sealed class TestCkptImageCommand : PSCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "FullName", "ImagePath")]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = [];

    [Parameter]
    public SwitchParameter Detailed { get; set; }

    protected override void ProcessRecord()
    {
        foreach (string path in Path)
        {
            var images = PathResolution.ResolveExisting(this, path, out var error);
            if (error is not null)
            {
                // Like Test-Path: a missing image is an answer (false), not an error.
                string literal = PathResolution.ResolveForOutput(this, path);
                Emit(new CkptImageValidation { ImagePath = literal, IsValid = false, Problem = error.Exception.Message });
                continue;
            }
            foreach (string image in images) Emit(ImageValidator.Validate(image));
        }
    }

    private void Emit(CkptImageValidation validation)
    {
        if (Detailed) WriteObject(validation);
        else WriteObject(validation.IsValid);
        if (!validation.IsValid) WriteVerbose(validation.ToString());
    }
}
