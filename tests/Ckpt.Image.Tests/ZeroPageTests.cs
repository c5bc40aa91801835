using Ckpt.Image;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// EndPageArray(dropZeroPages: true): the chunk keeps exactly its pages with a non-zero byte, in
/// order, with their addresses; a chunk of zero pages disappears; the image stays readable.
/// </summary>
public class ZeroPageTests
{
    private const int PageSize = 4096;

    [Fact]
    public void Zero_pages_are_taken_out_of_a_chunk_and_the_rest_keep_their_order_and_contents()
    {
        ulong[] addresses = [0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0x6000];
        bool[] zero = [true, false, true, true, false, false];
        using var output = new MemoryStream();
        using (var writer = new ImageWriter(output, leaveOpen: true))
        {
            SampleImage.WriteHeader(writer);
            Span<byte> contents = writer.BeginPageArray(addresses, PageSize);
            for (int i = 0; i < addresses.Length; i++)
            {
                Span<byte> page = contents.Slice(i * PageSize, PageSize);
                page.Clear();
                if (!zero[i]) page[PageSize - 1 - i] = (byte)(i + 1); // a single non-zero byte, late in the page
            }
            Assert.Equal(3, writer.EndPageArray(dropZeroPages: true));
            writer.BeginPageArray([0x9000, 0xa000], PageSize).Clear();
            Assert.Equal(0, writer.EndPageArray(dropZeroPages: true)); // nothing left: no record at all
            writer.WritePageArrayEnd();
            writer.WriteTail();
        }

        using var reader = new ImageReader(new MemoryStream(output.ToArray()));
        reader.ReadHeader();
        var chunk = reader.Read<PageArrayRecord>();
        Assert.Equal(3u, chunk.PageCount);
        var kept = new ulong[3];
        reader.ReadPageAddresses(kept);
        Assert.Equal([0x2000ul, 0x5000, 0x6000], kept);
        var pages = new byte[3 * PageSize];
        reader.ReadPageContents(pages);
        int[] original = [1, 4, 5];
        for (int k = 0; k < 3; k++)
        {
            int i = original[k];
            Assert.Equal((byte)(i + 1), pages[k * PageSize + PageSize - 1 - i]);
            Assert.Equal(1, pages.AsSpan(k * PageSize, PageSize).ToArray().Count(b => b != 0));
        }
        Assert.Equal(0u, reader.Read<PageArrayRecord>().PageCount);
        reader.ReadTail();
        Assert.True(reader.ChecksumVerified);
    }

    [Fact]
    public void Without_dropping_a_zero_page_is_kept()
    {
        using var output = new MemoryStream();
        using (var writer = new ImageWriter(output, leaveOpen: true))
        {
            SampleImage.WriteHeader(writer);
            writer.BeginPageArray([0x1000], PageSize).Clear();
            Assert.Equal(1, writer.EndPageArray());
            writer.WriteTail();
        }
        using var reader = new ImageReader(new MemoryStream(output.ToArray()));
        reader.ReadHeader();
        Assert.Equal(1u, reader.Read<PageArrayRecord>().PageCount);
    }

    [Fact]
    public void SkipRecord_passes_over_records_and_keeps_the_checksum()
    {
        var image = SampleImage.Build();
        using var reader = new ImageReader(new MemoryStream(image));
        reader.ReadHeader();
        int skipped = 0;
        while (reader.PeekType() is { } type && type != RecordType.Tail)
        {
            reader.SkipRecord();
            skipped++;
        }
        reader.ReadTail();
        Assert.True(reader.ChecksumVerified);
        Assert.True(skipped > 5);
    }
}
