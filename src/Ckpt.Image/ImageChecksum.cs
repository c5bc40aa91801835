using System.IO.Hashing;

namespace Ckpt.Image;

/// <summary>
/// The tail's checksum: XXH3 (64-bit) of every byte before the tail record. XXH3 rather than
/// XXH64 (format version 1) because it hashes twice as fast, and every page of an image is
/// hashed on the checkpoint's critical path.
/// </summary>
public static class ImageChecksum
{
    public static ulong Of(ReadOnlySpan<byte> bytes) => XxHash3.HashToUInt64(bytes);

    internal static XxHash3 Create() => new();
}
