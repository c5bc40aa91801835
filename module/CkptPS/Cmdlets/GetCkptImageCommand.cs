using System.Management.Automation;
using Ckpt.Image;
using Ckpt.Image.Model;
using CkptPS.Reading;

namespace CkptPS.Cmdlets;

/// <summary>
/// Get-CkptImage: reads an image (without its page contents) and emits its task(s), then
/// its VMAs, then its files, then its threads. Pure managed code: no engine, no privileges.
/// </summary>
[Cmdlet(VerbsCommon.Get, "CkptImage")]
[OutputType(typeof(CkptTask), typeof(CkptVma), typeof(CkptFile), typeof(CkptThread))]
public sealed class GetCkptImageCommand : PSCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "FullName", "ImagePath")]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = [];

    protected override void ProcessRecord()
    {
        foreach (string path in Path)
        {
            var images = PathResolution.ResolveExisting(this, path, out var error);
            if (error is not null) WriteError(error);
            foreach (string image in images) Emit(image);
        }
    }

    private void Emit(string image)
    {
        ImageModel model;
        try
        {
            model = ImageFile.Read(image);
        }
        catch (ImageFormatException exception)
        {
            WriteError(new ErrorRecord(exception, "InvalidImage", ErrorCategory.InvalidData, image));
            return;
        }
        catch (Exception exception) when (exception is FailedCheckpointException or InvalidDataException)
        {
            WriteError(new ErrorRecord(exception, "FailedCheckpointImage", ErrorCategory.InvalidData, image));
            return;
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            var category = exception is UnauthorizedAccessException ? ErrorCategory.PermissionDenied : ErrorCategory.ReadError;
            WriteError(new ErrorRecord(exception, "ImageUnreadable", category, image));
            return;
        }
        foreach (object item in ImageObjects.All(image, model)) WriteObject(item);
    }
}
