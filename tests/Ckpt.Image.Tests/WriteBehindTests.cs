using Ckpt.Image;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// The writer's three ways to reach the stream must produce the same bytes; Deferred must not
/// touch the stream before it is told to; a failing stream must surface as an exception (not a
/// hang) whichever thread wrote to it.
/// </summary>
public class WriteBehindTests
{
    private const int PageSize = 4096;

    [Theory]
    [InlineData(WriteBehind.Pipelined)]
    [InlineData(WriteBehind.Deferred)]
    public void Every_mode_writes_the_bytes_of_the_synchronous_writer(WriteBehind mode)
    {
        Assert.Equal(SampleImage.Build(WriteBehind.None), SampleImage.Build(mode));
        byte[] expected = ManyBlocks(WriteBehind.None);
        byte[] actual = ManyBlocks(mode);
        Assert.True(expected.Length > 3 * BlockBytes, "the image must span several blocks");
        Assert.Equal(expected, actual);
        ReadAll(actual);
    }

    [Fact]
    public void Deferred_writes_nothing_until_the_write_out_starts()
    {
        using var output = new MemoryStream();
        using var writer = new ImageWriter(output, leaveOpen: true, WriteBehind.Deferred);
        writer.Preallocate(8L << 20);
        WritePages(writer, pages: 2500);
        Assert.Equal(0, output.Length);
        writer.StartWriteOut();
        writer.WriteTail();
        Assert.Equal(writer.BytesWritten, output.Length);
        ReadAll(output.ToArray());
    }

    [Theory]
    [InlineData(WriteBehind.None)]
    [InlineData(WriteBehind.Pipelined)]
    [InlineData(WriteBehind.Deferred)]
    public void A_stream_that_fails_is_reported_to_the_writer(WriteBehind mode)
    {
        using var output = new FailingStream(failAfterBytes: 6 << 20);
        var writer = new ImageWriter(output, leaveOpen: true, mode);
        var thrown = Record.Exception(() =>
        {
            WritePages(writer, pages: 5000);
            writer.WriteTail();
        });
        Assert.IsType<IOException>(thrown);
        Assert.Contains("device full", thrown.Message);
        Record.Exception(writer.Dispose); // may repeat the failure; must return
    }

    [Fact]
    public void A_page_array_abandoned_for_an_error_record_leaves_a_readable_image()
    {
        using var output = new MemoryStream();
        using (var writer = new ImageWriter(output, leaveOpen: true))
        {
            SampleImage.WriteHeader(writer);
            writer.BeginPageArray([0x1000, 0x2000], PageSize).Fill(0xAA);
            writer.WriteError(14, "process_vm_readv failed");
            writer.WriteTail();
        }
        using var reader = new ImageReader(new MemoryStream(output.ToArray()));
        reader.ReadHeader();
        Assert.Equal("process_vm_readv failed", Message(reader));
        reader.ReadTail();
    }

    private static string Message(ImageReader reader)
    {
        reader.Read<ErrorRecord>();
        return reader.ReadTrailingString();
    }

    private const int BlockBytes = 4 << 20;

    private static byte[] ManyBlocks(WriteBehind mode)
    {
        using var output = new MemoryStream();
        using (var writer = new ImageWriter(output, leaveOpen: true, mode))
        {
            WritePages(writer, pages: 4100);
            writer.WriteTail();
        }
        return output.ToArray();
    }

    // Chunks of varied sizes, each page numbered, with small records between them.
    private static void WritePages(ImageWriter writer, int pages)
    {
        SampleImage.WriteHeader(writer);
        int written = 0;
        for (int chunk = 1; written < pages; chunk++)
        {
            int count = Math.Min(pages - written, chunk % 3 == 0 ? PageArrayRecord.MaxPagesPerChunk : 77 * chunk % 700 + 1);
            writer.Write(new VmaRecord { VmStart = (ulong)written * PageSize, PagesPopulated = (ulong)count });
            var addresses = new ulong[count];
            for (int i = 0; i < count; i++) addresses[i] = (ulong)(written + i) * PageSize;
            Span<byte> contents = writer.BeginPageArray(addresses, PageSize);
            for (int i = 0; i < count; i++) contents.Slice(i * PageSize, PageSize).Fill((byte)(written + i));
            writer.EndPageArray();
            writer.WritePageArrayEnd();
            written += count;
        }
    }

    // Reads every record back, checks each page's number and the checksum.
    private static void ReadAll(byte[] image)
    {
        using var reader = new ImageReader(new MemoryStream(image));
        reader.ReadHeader();
        var contents = new byte[PageArrayRecord.MaxPagesPerChunk * PageSize];
        var addresses = new ulong[PageArrayRecord.MaxPagesPerChunk];
        while (reader.PeekType() == RecordType.Vma)
        {
            reader.Read<VmaRecord>();
            for (var chunk = reader.Read<PageArrayRecord>(); chunk.PageCount > 0; chunk = reader.Read<PageArrayRecord>())
            {
                int count = (int)chunk.PageCount;
                reader.ReadPageAddresses(addresses.AsSpan(0, count));
                reader.ReadPageContents(contents.AsSpan(0, count * PageSize));
                for (int i = 0; i < count; i++)
                    Assert.Equal((byte)(addresses[i] / PageSize), contents[i * PageSize + PageSize - 1]);
            }
        }
        reader.ReadTail();
        Assert.True(reader.ChecksumVerified);
    }

    private sealed class FailingStream(long failAfterBytes) : Stream
    {
        private long written;
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => written;
        public override long Position { get => written; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (written + buffer.Length > failAfterBytes) throw new IOException("No space left on device (device full)");
            written += buffer.Length;
        }
    }
}
