using System.Buffers.Binary;
using System.Text;
using Ckpt.Engine.Checkpoint;

namespace Ckpt.Engine.Tests;

/// <summary>
/// Images for the restore tests, written by the real checkpoint engine. The process is left
/// running; the caller kills it. Refusal tests can rewrite header fields (the tail's checksum
/// is recomputed, so only the restore's own checks can object).
/// </summary>
internal static class RestoreTestCheckpoint
{
    // HeaderRecord layout (see the generated HeaderRecord.g.cs): Arch at 20, KernelRelease[65] at 72.
    private const int ArchOffset = 20, KernelReleaseOffset = 72, KernelReleaseLength = 65, TailSize = 32, TailChecksumOffset = 16;

    /// <param name="kill">let the checkpoint engine kill the process once the image is complete</param>
    public static void Checkpoint(int pid, string imagePath, string? kernelRelease = null, uint? architecture = null, bool kill = false)
    {
        using (var output = File.Create(imagePath))
            Checkpointer.Run(new CheckpointOptions(pid, output, Kill: kill));
        if (kernelRelease is null && architecture is null) return;

        byte[] image = File.ReadAllBytes(imagePath);
        if (architecture is { } arch)
            BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(ArchOffset), arch);
        if (kernelRelease is not null)
        {
            var field = image.AsSpan(KernelReleaseOffset, KernelReleaseLength);
            field.Clear();
            Encoding.ASCII.GetBytes(kernelRelease).CopyTo(field);
        }
        ulong checksum = Ckpt.Image.ImageChecksum.Of(image.AsSpan(0, image.Length - TailSize));
        BinaryPrimitives.WriteUInt64LittleEndian(image.AsSpan(image.Length - TailSize + TailChecksumOffset), checksum);
        File.WriteAllBytes(imagePath, image);
    }
}
