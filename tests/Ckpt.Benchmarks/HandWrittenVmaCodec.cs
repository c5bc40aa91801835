using System.Buffers.Binary;
using Ckpt.Image.Records;

namespace Ckpt.Benchmarks;

/// <summary>
/// The baseline: the same image written and read with hand-written BinaryPrimitives calls at
/// hand-computed offsets, the way one would write it without a generator.
/// </summary>
public static class HandWrittenVmaCodec
{
    private const uint VmaType = 402, PageArrayType = 403;
    private const int VmaSize = 64, ChunkSize = 16;

    public static int Write(VmaImageShape shape, Span<byte> destination)
    {
        var chunkLength = (uint)(ChunkSize + shape.ChunkTrailingBytes);
        var page = shape.Page.AsSpan();
        var position = 0;
        foreach (ref readonly var vma in shape.Vmas.AsSpan())
        {
            var record = destination.Slice(position, VmaSize);
            BinaryPrimitives.WriteUInt32LittleEndian(record, VmaType);
            BinaryPrimitives.WriteUInt32LittleEndian(record[4..], VmaSize);
            BinaryPrimitives.WriteUInt64LittleEndian(record[8..], vma.VmStart);
            BinaryPrimitives.WriteUInt64LittleEndian(record[16..], vma.VmEnd);
            BinaryPrimitives.WriteUInt64LittleEndian(record[24..], vma.VmPgoff);
            BinaryPrimitives.WriteUInt64LittleEndian(record[32..], vma.VmFlags);
            BinaryPrimitives.WriteUInt32LittleEndian(record[40..], (uint)vma.VmaType);
            BinaryPrimitives.WriteUInt32LittleEndian(record[44..], vma.Protection);
            BinaryPrimitives.WriteInt32LittleEndian(record[48..], vma.FileObjRef);
            BinaryPrimitives.WriteInt32LittleEndian(record[52..], vma.SharedMemoryObjRef);
            BinaryPrimitives.WriteUInt64LittleEndian(record[56..], vma.PagesPopulated);
            position += VmaSize;

            WriteChunkHeader(destination.Slice(position, ChunkSize), chunkLength, VmaImageShape.PagesPerChunk);
            position += ChunkSize;
            BinaryPrimitives.WriteUInt64LittleEndian(destination[position..], vma.VmStart);
            position += 8;
            if (shape.ContentsIncluded)
            {
                page.CopyTo(destination[position..]);
                position += page.Length;
            }
            WriteChunkHeader(destination.Slice(position, ChunkSize), ChunkSize, 0);
            position += ChunkSize;
        }
        return position;
    }

    public static ulong Read(ReadOnlySpan<byte> image, bool contentsIncluded, Span<byte> pageBuffer)
    {
        ulong fingerprint = 0;
        var position = 0;
        while (position < image.Length)
        {
            var record = image.Slice(position, VmaSize);
            ExpectHeader(record, VmaType, VmaSize);
            var vmStart = BinaryPrimitives.ReadUInt64LittleEndian(record[8..]);
            fingerprint += vmStart ^ BinaryPrimitives.ReadUInt64LittleEndian(record[16..])
                ^ BinaryPrimitives.ReadUInt64LittleEndian(record[24..]) ^ BinaryPrimitives.ReadUInt64LittleEndian(record[32..])
                ^ BinaryPrimitives.ReadUInt64LittleEndian(record[56..]);
            fingerprint += BinaryPrimitives.ReadUInt32LittleEndian(record[40..]) + (ulong)BinaryPrimitives.ReadUInt32LittleEndian(record[44..])
                + (ulong)(BinaryPrimitives.ReadInt32LittleEndian(record[48..]) + BinaryPrimitives.ReadInt32LittleEndian(record[52..]));
            position += VmaSize;

            var pageCount = BinaryPrimitives.ReadUInt32LittleEndian(image[(position + 8)..]);
            var trailing = (int)pageCount * (8 + (contentsIncluded ? (int)VmaImageShape.PageSize : 0));
            ExpectHeader(image[position..], PageArrayType, ChunkSize + trailing);
            position += ChunkSize;
            for (var i = 0; i < pageCount; i++)
            {
                fingerprint += BinaryPrimitives.ReadUInt64LittleEndian(image[position..]);
                position += 8;
            }
            if (contentsIncluded)
            {
                for (var i = 0; i < pageCount; i++)
                {
                    image.Slice(position, pageBuffer.Length).CopyTo(pageBuffer);
                    position += pageBuffer.Length;
                }
            }

            ExpectHeader(image[position..], PageArrayType, ChunkSize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(image[(position + 8)..]) != 0)
                throw new InvalidDataException($"VMA at {vmStart:x} lacks its end chunk");
            position += ChunkSize;
        }
        return fingerprint;
    }

    private static void WriteChunkHeader(Span<byte> record, uint length, uint pageCount)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(record, PageArrayType);
        BinaryPrimitives.WriteUInt32LittleEndian(record[4..], length);
        BinaryPrimitives.WriteUInt32LittleEndian(record[8..], pageCount);
        BinaryPrimitives.WriteUInt32LittleEndian(record[12..], 0);
    }

    private static void ExpectHeader(ReadOnlySpan<byte> record, uint type, int length)
    {
        if (BinaryPrimitives.ReadUInt32LittleEndian(record) != type)
            throw new InvalidDataException($"record type {BinaryPrimitives.ReadUInt32LittleEndian(record)}, expected {type}");
        if (BinaryPrimitives.ReadUInt32LittleEndian(record[4..]) != length)
            throw new InvalidDataException($"record length {BinaryPrimitives.ReadUInt32LittleEndian(record[4..])}, expected {length}");
    }
}
