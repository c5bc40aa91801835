using System.Buffers.Binary;
using Ckpt.Image.Records;

namespace Ckpt.Benchmarks;

/// <summary>Writes and reads the benchmark image with the source-generated serializers.</summary>
public static class GeneratedVmaCodec
{
    public static int Write(VmaImageShape shape, Span<byte> destination)
    {
        var chunk = new PageArrayRecord { PageCount = VmaImageShape.PagesPerChunk };
        var end = new PageArrayRecord { PageCount = 0 };
        var chunkLength = (uint)(PageArrayRecord.Size + shape.ChunkTrailingBytes);
        var page = shape.Page.AsSpan();
        var position = 0;
        foreach (ref readonly var vma in shape.Vmas.AsSpan())
        {
            vma.WriteTo(destination[position..], VmaRecord.Size);
            position += VmaRecord.Size;
            chunk.WriteTo(destination[position..], chunkLength);
            position += PageArrayRecord.Size;
            BinaryPrimitives.WriteUInt64LittleEndian(destination[position..], vma.VmStart);
            position += 8;
            if (shape.ContentsIncluded)
            {
                page.CopyTo(destination[position..]);
                position += page.Length;
            }
            end.WriteTo(destination[position..], PageArrayRecord.Size);
            position += PageArrayRecord.Size;
        }
        return position;
    }

    /// <summary>Parses the image, checking every header; page contents are copied into <paramref name="pageBuffer"/>.</summary>
    public static ulong Read(ReadOnlySpan<byte> image, bool contentsIncluded, Span<byte> pageBuffer)
    {
        ulong fingerprint = 0;
        var position = 0;
        while (position < image.Length)
        {
            var vma = VmaRecord.ReadFrom(image[position..]);
            ExpectLength(image[position..], VmaRecord.Size);
            position += VmaRecord.Size;
            fingerprint += vma.VmStart ^ vma.VmEnd ^ vma.VmPgoff ^ vma.VmFlags ^ vma.PagesPopulated;
            fingerprint += (ulong)vma.VmaType + vma.Protection + (ulong)(vma.FileObjRef + vma.SharedMemoryObjRef);

            var chunk = PageArrayRecord.ReadFrom(image[position..]);
            var trailing = (int)chunk.PageCount * (8 + (contentsIncluded ? (int)VmaImageShape.PageSize : 0));
            ExpectLength(image[position..], PageArrayRecord.Size + trailing);
            position += PageArrayRecord.Size;
            for (var i = 0; i < chunk.PageCount; i++)
            {
                fingerprint += BinaryPrimitives.ReadUInt64LittleEndian(image[position..]);
                position += 8;
            }
            if (contentsIncluded)
            {
                for (var i = 0; i < chunk.PageCount; i++)
                {
                    image.Slice(position, pageBuffer.Length).CopyTo(pageBuffer);
                    position += pageBuffer.Length;
                }
            }

            var end = PageArrayRecord.ReadFrom(image[position..]);
            ExpectLength(image[position..], PageArrayRecord.Size);
            if (end.PageCount != 0) throw new InvalidDataException($"VMA at {vma.VmStart:x} lacks its end chunk");
            position += PageArrayRecord.Size;
        }
        return fingerprint;
    }

    private static void ExpectLength(ReadOnlySpan<byte> record, int length)
    {
        if (BinaryPrimitives.ReadUInt32LittleEndian(record[4..]) != length)
            throw new InvalidDataException($"record length {BinaryPrimitives.ReadUInt32LittleEndian(record[4..])}, expected {length}");
    }
}
