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

    /// <summary>
    /// Hashes the first <paramref name="length"/> bytes of an image file (everything before its tail)
    /// in 1 MiB reads and compares with the tail's checksum; for a reader that seeked over the page
    /// contents and checks them on another core meanwhile.
    /// </summary>
    public static bool Matches(Microsoft.Win32.SafeHandles.SafeFileHandle file, long length, ulong expected)
    {
        var hash = Create();
        byte[] buffer = new byte[1 << 20];
        for (long offset = 0; offset < length;)
        {
            int n = RandomAccess.Read(file, buffer.AsSpan(0, (int)Math.Min(buffer.Length, length - offset)), offset);
            if (n <= 0) return false;
            hash.Append(buffer.AsSpan(0, n));
            offset += n;
        }
        return hash.GetCurrentHashAsUInt64() == expected;
    }
}
