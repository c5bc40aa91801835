using Ckpt.Image.Records;

namespace CkptPS.Reading;

/// <summary>What Get-CkptImage shows of an image: its tasks, VMAs and files, in that order.</summary>
internal sealed class ImageModel
{
    public required HeaderRecord Header { get; init; }
    public List<CkptTask> Tasks { get; } = [];
    public List<CkptVma> Vmas { get; } = [];
    public List<CkptFile> Files { get; } = [];
}

