using Ckpt.Image.Records;

namespace Ckpt.Image;

/// <summary>Implemented by the source generator for every [ImageRecord] struct.</summary>
public interface IImageRecord<TSelf> where TSelf : struct, IImageRecord<TSelf>
{
    static abstract RecordType RecordType { get; }

    /// <summary>Header plus fixed payload, a multiple of 8.</summary>
    static abstract int FixedSize { get; }

    /// <summary>Reads the record from a span that starts at its header.</summary>
    static abstract TSelf ReadFrom(ReadOnlySpan<byte> record);

    /// <summary>Writes header (type, <paramref name="recordLength"/>) and payload, zeroing padding.</summary>
    void WriteTo(Span<byte> destination, uint recordLength);

    /// <summary>The value of the [TrailingBytes] field, 0 for records without one.</summary>
    uint TrailingLength { get; }
}
