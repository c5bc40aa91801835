using Ckpt.Image.Records;

namespace Ckpt.Benchmarks;

/// <summary>
/// What one benchmark image holds: per VMA a VMA record, one PAGE_ARRAY chunk with
/// PagesPerChunk page addresses (and their contents when ContentsIncluded), and the empty
/// PAGE_ARRAY that ends the VMA. The layout is the one ImageWriter produces.
/// </summary>
public sealed class VmaImageShape
{
    public const uint PageSize = 4096;
    public const int PagesPerChunk = 1;

    public VmaImageShape(int vmaCount, bool contentsIncluded)
    {
        ContentsIncluded = contentsIncluded;
        Vmas = new VmaRecord[vmaCount];
        for (var i = 0; i < vmaCount; i++)
        {
            var start = 0x5555_0000_0000ul + (ulong)i * 0x10_000;
            Vmas[i] = new VmaRecord
            {
                VmStart = start,
                VmEnd = start + 0x4000,
                VmPgoff = (ulong)i,
                VmFlags = 0x0010_0073,
                VmaType = (VmaType)(1 + i % 8),
                Protection = (uint)(i % 8),
                FileObjRef = i % 3,
                SharedMemoryObjRef = i % 5,
                PagesPopulated = PagesPerChunk,
            };
        }
        Page = new byte[PageSize];
        for (var i = 0; i < Page.Length; i++) Page[i] = (byte)(i * 31 + 7);
    }

    public bool ContentsIncluded { get; }

    public VmaRecord[] Vmas { get; }

    /// <summary>The contents every saved page gets (one source buffer, so sources stay in cache alike for both codecs).</summary>
    public byte[] Page { get; }

    /// <summary>Bytes of the page chunk's trailing data as the record length counts it.</summary>
    public int ChunkTrailingBytes => PagesPerChunk * 8 + (ContentsIncluded ? PagesPerChunk * (int)PageSize : 0);

    /// <summary>Bytes that follow the chunk header in the buffer: addresses, plus contents when included.</summary>
    public int BytesPerVma => VmaRecord.Size + PageArrayRecord.Size + ChunkTrailingBytes + PageArrayRecord.Size;

    public long ImageBytes => (long)BytesPerVma * Vmas.Length;
}
