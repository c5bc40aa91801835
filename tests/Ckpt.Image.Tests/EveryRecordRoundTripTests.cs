using System.Reflection;
using System.Runtime.InteropServices;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>Every [ImageRecord] in Ckpt.Image, found by reflection so a new record is covered too.</summary>
public class EveryRecordRoundTripTests
{
    public static TheoryData<string> RecordNames()
    {
        var data = new TheoryData<string>();
        foreach (var type in RecordTypes()) data.Add(type.Name);
        return data;
    }

    // linux-cr record numbers that CkptPS keeps reserved but never writes.
    private static readonly RecordType[] NumbersWithoutRecords =
        [RecordType.Container, RecordType.TaskNamespaces, RecordType.FileName, RecordType.MmContext, RecordType.SignalTask];

    [Fact]
    public void EveryRecordTypeNumberHasARecordOrIsReserved()
    {
        var declared = RecordTypes().Select(t => t.GetCustomAttribute<ImageRecordAttribute>()!.Type).ToHashSet();
        var missing = Enum.GetValues<RecordType>().Where(t => !declared.Contains(t) && !NumbersWithoutRecords.Contains(t));
        Assert.Empty(missing);
    }

    [Theory]
    [MemberData(nameof(RecordNames))]
    public void FieldsSurviveWriteAndRead(string name)
    {
        var type = RecordTypes().Single(t => t.Name == name);
        typeof(EveryRecordRoundTripTests).GetMethod(nameof(RoundTrip), BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(type).Invoke(null, null);
    }

    private static void RoundTrip<T>() where T : unmanaged, IImageRecord<T>
    {
        // Fill the struct's memory with a pattern so that every field holds a distinct non-zero value.
        var record = default(T);
        var raw = MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref record, 1));
        for (var i = 0; i < raw.Length; i++) raw[i] = (byte)(i * 13 + 5);

        var zeroed = new byte[T.FixedSize + 8];
        var filled = Enumerable.Repeat((byte)0xFF, T.FixedSize + 8).ToArray();
        record.WriteTo(zeroed, (uint)T.FixedSize);
        record.WriteTo(filled, (uint)T.FixedSize);
        // Every byte of the record is determined (padding zeroed), and nothing past it is touched.
        Assert.Equal(zeroed.AsSpan(0, T.FixedSize).ToArray(), filled.AsSpan(0, T.FixedSize).ToArray());
        Assert.All(filled[T.FixedSize..], b => Assert.Equal(0xFF, b));
        Assert.Equal((uint)T.RecordType, BitConverter.ToUInt32(zeroed, 0));
        Assert.Equal((uint)T.FixedSize, BitConverter.ToUInt32(zeroed, 4));

        var back = T.ReadFrom(zeroed);
        foreach (var field in typeof(T).GetFields(BindingFlags.Public | BindingFlags.Instance))
            Assert.True(Equals(field.GetValue(record), field.GetValue(back)), $"{typeof(T).Name}.{field.Name} changed in the round trip");
    }

    private static IEnumerable<Type> RecordTypes() =>
        typeof(ImageReader).Assembly.GetTypes()
            .Where(t => t.GetCustomAttribute<ImageRecordAttribute>() is not null)
            .OrderBy(t => t.Name, StringComparer.Ordinal);
}
