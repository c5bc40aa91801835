using Ckpt.Image.Records;

namespace Ckpt.Image;

/// <summary>
/// One record type as RecordCatalog (generated from Records/*.cs) describes it: enough to validate
/// and skip a record without knowing its struct.
/// </summary>
/// <param name="Type">The record type number.</param>
/// <param name="Name">The RecordType member name (the struct name without "Record").</param>
/// <param name="FixedSize">Header plus fixed payload, a multiple of 8: the shortest valid record length.</param>
/// <param name="TrailingLengthOffset">
/// Byte offset, from the record's header, of its [TrailingBytes] u32 (the number of variable bytes
/// after the fixed part); null when the record has none.
/// </param>
public readonly record struct RecordDescriptor(RecordType Type, string Name, int FixedSize, int? TrailingLengthOffset)
{
    /// <summary>True when a [TrailingBytes] field gives variable bytes after the fixed part.</summary>
    public bool HasTrailingBytes => TrailingLengthOffset is not null;
}
