using System.IO.Pipes;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>Writer and reader over a real, non-seekable OS pipe, as `ckpt checkpoint --output -` uses them.</summary>
public class PipeStreamingTests
{
    [Fact]
    public async Task ImageStreamsThroughAPipeAndPagesAreSkippedWithTheChecksumChecked()
    {
        const int vmaCount = 200;
        var page = new byte[SampleImage.PageSize * 4];
        for (var i = 0; i < page.Length; i++) page[i] = (byte)(i ^ (i >> 8));
        ulong[] addresses = [0x1000, 0x2000, 0x3000, 0x4000];

        using var server = new AnonymousPipeServerStream(PipeDirection.Out);
        using var client = new AnonymousPipeClientStream(PipeDirection.In, server.ClientSafePipeHandle);
        Assert.False(server.CanSeek);
        var writing = Task.Run(() =>
        {
            using var writer = new ImageWriter(server);
            writer.Write(new HeaderRecord
            {
                Magic = HeaderRecord.ExpectedMagic,
                FormatVersion = HeaderRecord.CurrentFormatVersion,
                PageSize = SampleImage.PageSize,
            });
            for (var i = 0; i < vmaCount; i++)
            {
                writer.Write(new VmaRecord { VmStart = (ulong)i << 20, VmEnd = ((ulong)i << 20) + 0x4000, PagesPopulated = 4 });
                writer.WritePageArray(addresses, page);
                writer.WritePageArrayEnd();
            }
            writer.WriteTail();
            return writer.BytesWritten;
        });

        using var reader = new ImageReader(client);
        reader.ReadHeader();
        var vmas = 0;
        while (reader.PeekType() == RecordType.Vma)
        {
            Assert.Equal((ulong)vmas << 20, reader.Read<VmaRecord>().VmStart);
            Assert.Equal(4u, reader.Read<PageArrayRecord>().PageCount);
            reader.SkipPageContents(); // a pipe cannot seek: read past and hashed
            Assert.Equal(0u, reader.Read<PageArrayRecord>().PageCount);
            vmas++;
        }
        reader.ReadTail();
        Assert.True(reader.ChecksumVerified);
        Assert.Equal(vmaCount, vmas);
        Assert.Equal(await writing, reader.Position);
    }
}
