using System.Buffers.Binary;
using System.Text;
using Ckpt.Image;

namespace Ckpt.Engine.Tests;

/// <summary>
/// Edits a real image as an attacker would, with the image library's own record structs: records
/// are found by walking their headers, changed with the generated ReadFrom/WriteTo (the length
/// stays), and the tail's checksum is recomputed so only the restore's own checks can object.
/// </summary>
internal static class ImageEdit
{
    private const int TailSize = 32, TailChecksumOffset = 16;

    /// <summary>Every record before the tail: type, offset, length.</summary>
    public static List<(RecordType Type, int Offset, int Length)> Records(byte[] image)
    {
        var records = new List<(RecordType, int, int)>();
        for (int offset = 0; offset + 8 <= image.Length - TailSize;)
        {
            int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(offset + 4));
            records.Add(((RecordType)BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(offset)), offset, length));
            offset += length;
        }
        return records;
    }

    /// <summary>The trailing UTF-8 text of a record (a FILE's path), given its trailing length.</summary>
    public static string Trailing<T>(byte[] image, int offset, uint length) where T : struct, IImageRecord<T> =>
        Encoding.UTF8.GetString(image, offset + T.FixedSize, (int)length).TrimEnd('\0');

    /// <summary>Changes every record of T that <paramref name="change"/> returns a new value for; returns how many.</summary>
    public static int Patch<T>(byte[] image, Func<T, int, T?> change) where T : struct, IImageRecord<T>
    {
        int changed = 0;
        foreach (var (type, offset, length) in Records(image))
        {
            if (type != T.RecordType) continue;
            if (change(T.ReadFrom(image.AsSpan(offset, T.FixedSize)), offset) is not { } value) continue;
            byte[] fixedPart = new byte[T.FixedSize];
            value.WriteTo(fixedPart, (uint)length);
            fixedPart.CopyTo(image, offset);
            changed++;
        }
        return changed;
    }

    /// <summary>Reads the image file, edits it, recomputes the tail checksum and writes it back.</summary>
    public static void Edit(string path, Action<byte[]> edit)
    {
        byte[] image = File.ReadAllBytes(path);
        edit(image);
        ulong checksum = ImageChecksum.Of(image.AsSpan(0, image.Length - TailSize));
        BinaryPrimitives.WriteUInt64LittleEndian(image.AsSpan(image.Length - TailSize + TailChecksumOffset), checksum);
        File.WriteAllBytes(path, image);
    }
}
