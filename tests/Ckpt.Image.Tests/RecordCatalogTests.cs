using System.Buffers.Binary;
using System.Reflection;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// The generated RecordCatalog agrees with the record structs, and ImageReader.SkipRecord uses it
/// to validate the records it passes over (crafted images, one lie each).
/// </summary>
public class RecordCatalogTests
{
    [Fact]
    public void CatalogAgreesWithEveryRecordStruct()
    {
        var structs = typeof(ImageReader).Assembly.GetTypes()
            .Where(t => t.GetCustomAttribute<ImageRecordAttribute>() is not null)
            .ToDictionary(t => t.GetCustomAttribute<ImageRecordAttribute>()!.Type);
        Assert.Equal(structs.Count, RecordCatalog.All.Count);
        Assert.Equal(RecordCatalog.All.OrderBy(d => (uint)d.Type).Select(d => d.Type), RecordCatalog.All.Select(d => d.Type));

        foreach (var type in Enum.GetValues<RecordType>())
        {
            var found = RecordCatalog.TryGet(type, out var descriptor);
            Assert.True(found == structs.ContainsKey(type), $"{type}: catalog {(found ? "has" : "lacks")} it");
            if (!found) continue;
            var record = structs[type];
            Assert.Equal(type, descriptor.Type);
            Assert.Equal(type.ToString(), descriptor.Name);
            Assert.Equal(record.Name, descriptor.Name + "Record");
            typeof(RecordCatalogTests).GetMethod(nameof(AgreesWith), BindingFlags.NonPublic | BindingFlags.Static)!
                .MakeGenericMethod(record).Invoke(null, [descriptor]);
        }
        Assert.False(RecordCatalog.TryGet((RecordType)77, out _));
    }

    // FixedSize as IImageRecord says; the trailing length field where the serializer writes it.
    private static void AgreesWith<T>(RecordDescriptor descriptor) where T : struct, IImageRecord<T>
    {
        Assert.Equal(T.FixedSize, descriptor.FixedSize);
        Assert.Equal(0, descriptor.FixedSize % 8);
        var trailingField = typeof(T).GetFields().SingleOrDefault(f => f.GetCustomAttribute<TrailingBytesAttribute>() is not null);
        Assert.Equal(trailingField is not null, descriptor.HasTrailingBytes);
        if (trailingField is null) return;
        object record = default(T);
        trailingField.SetValue(record, 0x5EEDu);
        var bytes = new byte[T.FixedSize];
        ((T)record).WriteTo(bytes, (uint)T.FixedSize);
        Assert.Equal(0x5EEDu, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(descriptor.TrailingLengthOffset!.Value)));
    }

    [Fact]
    public void SkippingEveryRecordOfAValidImageKeepsTheChecksum()
    {
        var image = SampleImage.Build();
        using var reader = new ImageReader(new MemoryStream(image));
        reader.ReadHeader();
        while (reader.PeekType() != RecordType.Tail) reader.SkipRecord();
        reader.ReadTail();
        Assert.True(reader.ChecksumVerified);
    }

    [Fact]
    public void SkippingATruncatedImageIsAClearErrorAtEveryLength()
    {
        var image = SampleImage.Build();
        for (var length = SampleImage.Build().Length - 1; length >= 0; length--)
            Assert.InRange(SkipAll(image[..length]).Offset, 0, length);
    }

    [Fact]
    public void SkipRecordRefusesATypeWithoutARecordStruct()
    {
        // A TREE header turned into CONTAINER (3): a linux-cr number CkptPS never writes.
        var (image, offset) = Damage(RecordType.Tree, (bytes, at) => BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at), (uint)RecordType.Container));
        var error = SkipAll(image);
        Assert.Equal(RecordType.Container, error.Record);
        Assert.Equal(offset, error.Offset);
        Assert.Contains($"record Container (3) at offset {offset}", error.Message);
        Assert.Contains("record type 3", error.Message);
    }

    [Fact]
    public void SkipRecordRefusesALengthOtherThanTheFixedSize()
    {
        // TREE has no trailing bytes: 24 bytes instead of 16 is a lie even though it is a multiple of 8.
        var (image, offset) = Damage(RecordType.Tree, (bytes, at) => BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at + 4), TreeRecord.Size + 8));
        var error = SkipAll(image);
        Assert.Equal(RecordType.Tree, error.Record);
        Assert.Equal(offset, error.Offset);
        Assert.Contains($"at offset {offset}", error.Message);
        Assert.Contains($"record length 24 is not the fixed size {TreeRecord.Size} of a Tree record", error.Message);
    }

    [Fact]
    public void SkipRecordRefusesALengthBelowTheFixedSize()
    {
        var (image, offset) = Damage(RecordType.Vma, (bytes, at) => BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at + 4), 16));
        var error = SkipAll(image);
        Assert.Equal(RecordType.Vma, error.Record);
        Assert.Equal(offset, error.Offset);
        Assert.Contains($"record length 16 is shorter than the fixed size {VmaRecord.Size} of a Vma record", error.Message);
    }

    [Fact]
    public void SkipRecordRefusesATrailingLengthThatDisagreesWithTheRecordLength()
    {
        // The STRING's [TrailingBytes] field claims 2 GiB; its record length says 16 bytes of text.
        var (image, offset) = Damage(RecordType.String, (bytes, at) => BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at + 8), 0x7FFF_FFF0));
        var error = SkipAll(image);
        Assert.Equal(RecordType.String, error.Record);
        Assert.Equal(offset, error.Offset);
        Assert.Contains("does not match the String record's trailing length 2147483632", error.Message);
    }

    private static ImageFormatException SkipAll(byte[] image) => Assert.Throws<ImageFormatException>(() =>
    {
        using var reader = new ImageReader(new MemoryStream(image));
        reader.ReadHeader();
        while (reader.PeekType() != RecordType.Tail) reader.SkipRecord();
        reader.ReadTail();
    });

    /// <summary>A fresh sample image with the first record of <paramref name="type"/> damaged.</summary>
    private static (byte[] Image, int Offset) Damage(RecordType type, Action<byte[], int> damage)
    {
        var image = SampleImage.Build();
        var offset = 0;
        while ((RecordType)BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(offset)) != type)
            offset += (int)BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(offset + 4));
        damage(image, offset);
        return (image, offset);
    }
}
