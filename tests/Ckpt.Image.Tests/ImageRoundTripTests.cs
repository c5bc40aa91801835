using Ckpt.Image;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

public class ImageRoundTripTests
{
    [Fact]
    public void SampleImageReadsBackWithItsChecksum()
    {
        var image = SampleImage.Build();
        Assert.Equal(0, image.Length % 8);
        SampleImage.ReadAndCheck(image);
    }

    [Fact]
    public void RecordsAreEightByteAlignedWithLengthInHeader()
    {
        var image = SampleImage.Build();
        var offset = 0;
        var types = new List<uint>();
        while (offset < image.Length)
        {
            types.Add(BitConverter.ToUInt32(image, offset));
            var length = BitConverter.ToUInt32(image, offset + 4);
            Assert.Equal(0u, length % 8);
            offset += (int)length;
        }
        Assert.Equal(image.Length, offset);
        Assert.Equal((uint)RecordType.Header, types[0]);
        Assert.Equal((uint)RecordType.Tail, types[^1]);
    }

    [Fact]
    public void PageContentsCanBeSkippedWithoutReadingThem()
    {
        var image = SampleImage.Build();
        using var reader = new ImageReader(new MemoryStream(image), verifyChecksum: false);
        reader.ReadHeader();
        while (reader.PeekType() is { } type && type != RecordType.PageArray)
            SkipRecord(reader, type);
        Assert.Equal(2u, reader.Read<PageArrayRecord>().PageCount);
        reader.SkipPageContents();
        Assert.Equal(0u, reader.Read<PageArrayRecord>().PageCount);
        Assert.Equal(RecordType.File, reader.PeekType());
    }

    [Fact]
    public void FlippedChecksumIsReported()
    {
        var image = SampleImage.Build();
        image[image.Length - 16] ^= 1; // inside the tail's checksum field
        var error = Assert.Throws<ImageFormatException>(() => SampleImage.ReadAndCheck(image));
        Assert.Equal(RecordType.Tail, error.Record);
        Assert.Contains("checksum", error.Message);
    }

    private static void SkipRecord(ImageReader reader, RecordType type)
    {
        switch (type)
        {
            case RecordType.Tree: reader.Read<TreeRecord>(); break;
            case RecordType.Task: reader.Read<TaskRecord>(); break;
            case RecordType.String: reader.Read<StringRecord>(); break;
            case RecordType.Mm: reader.Read<MmRecord>(); break;
            case RecordType.Vma: reader.Read<VmaRecord>(); break;
            default: throw new InvalidOperationException(type.ToString());
        }
    }
}

public class TailChecksumTests
{
    [Fact]
    public void UnreadTrailingBytesOfTheLastRecordCountInTheChecksum()
    {
        using var image = new MemoryStream();
        using (var writer = new ImageWriter(image, leaveOpen: true))
        {
            writer.Write(new HeaderRecord { Magic = HeaderRecord.ExpectedMagic, FormatVersion = HeaderRecord.CurrentFormatVersion, PageSize = 4096 });
            writer.WriteString("trailing bytes nobody reads");
            writer.WriteTail();
        }
        image.Position = 0;
        using var reader = new ImageReader(image);
        reader.ReadHeader();
        reader.Read<StringRecord>(); // its text stays unread
        reader.ReadTail();
        Assert.True(reader.ChecksumVerified);
    }
}
