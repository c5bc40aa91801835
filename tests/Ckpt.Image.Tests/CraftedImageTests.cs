using System.Buffers.Binary;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// Hand-damaged images, one lie each: the error must name the record, its offset and the lie,
/// and come before anything is sized by the lying field.
/// </summary>
public class CraftedImageTests
{
    [Fact]
    public void HugeRecordLengthIsRefusedFromTheHeader()
    {
        var (image, offset) = Damage(RecordType.Task, (bytes, at) => BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at + 4), 0xFFFF_FFF8));
        var error = Expect(image, RecordType.Task, offset);
        Assert.Contains("bad record length 4294967288", error.Message);
    }

    [Fact]
    public void UnknownRecordTypeIsNamedByNumber()
    {
        var (image, offset) = Damage(RecordType.Tree, (bytes, at) => BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at), 77));
        var error = Assert.Throws<ImageFormatException>(() => SampleImage.ReadAndCheck(image));
        Assert.Equal(offset, error.Offset);
        Assert.Contains("unknown record type 77", error.Message);
    }

    [Fact]
    public void StringLengthThatDisagreesWithTheRecordLengthIsRefused()
    {
        // A 2 GiB string claim: must fail on the length check, not on an allocation.
        var (image, offset) = Damage(RecordType.String, (bytes, at) => BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at + 8), 0x7FFF_FFF0));
        var error = Expect(image, RecordType.String, offset);
        Assert.Contains("does not match its contents", error.Message);
    }

    [Fact]
    public void PageCountOverTheChunkLimitIsRefused()
    {
        var (image, offset) = Damage(RecordType.PageArray, (bytes, at) => BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at + 8), 5000));
        var error = Expect(image, RecordType.PageArray, offset);
        Assert.Contains("page count 5000", error.Message);
    }

    [Fact]
    public void RecordLengthNotAMultipleOfEightIsRefused()
    {
        var (image, offset) = Damage(RecordType.Vma, (bytes, at) => BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at + 4), VmaRecord.Size + 4));
        Assert.Contains("bad record length", Expect(image, RecordType.Vma, offset).Message);
    }

    [Fact]
    public void WrongRecordInPlaceIsNamed()
    {
        // The FILE_DESCRIPTOR record's header claims to be a VMA of the same length.
        var (image, offset) = Damage(RecordType.FileDescriptor, (bytes, at) => BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at), (uint)RecordType.Vma));
        var error = Expect(image, RecordType.Vma, offset);
        Assert.Contains("expected a FileDescriptor (302) record", error.Message);
    }

    [Fact]
    public void BytesAfterTheTailAreRefused()
    {
        var image = SampleImage.Build().Concat(new byte[8]).ToArray();
        var error = Assert.Throws<ImageFormatException>(() => SampleImage.ReadAndCheck(image));
        Assert.Contains("bytes follow the tail", error.Message);
    }

    [Fact]
    public void HeaderMustComeFirst()
    {
        var image = SampleImage.Build();
        var treeOffset = Offsets(image).First(r => r.Type == RecordType.Tree).Offset;
        using var reader = new ImageReader(new MemoryStream(image[treeOffset..]));
        var error = Assert.Throws<ImageFormatException>(() => reader.ReadHeader());
        Assert.Equal(RecordType.Tree, error.Record);
        Assert.Equal(0, error.Offset);
    }

    private static ImageFormatException Expect(byte[] image, RecordType type, int offset)
    {
        var error = Assert.Throws<ImageFormatException>(() => SampleImage.ReadAndCheck(image));
        Assert.Equal(type, error.Record);
        Assert.Equal(offset, error.Offset);
        Assert.Contains($"at offset {offset}", error.Message);
        return error;
    }

    /// <summary>A fresh sample image with the first record of <paramref name="type"/> damaged.</summary>
    private static (byte[] Image, int Offset) Damage(RecordType type, Action<byte[], int> damage)
    {
        var image = SampleImage.Build();
        var offset = Offsets(image).First(r => r.Type == type).Offset;
        damage(image, offset);
        return (image, offset);
    }

    private static IEnumerable<(RecordType Type, int Offset)> Offsets(byte[] image)
    {
        for (var offset = 0; offset < image.Length; offset += (int)BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(offset + 4)))
            yield return ((RecordType)BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(offset)), offset);
    }
}
