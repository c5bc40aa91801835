namespace Ckpt.Image.Records;

/// <summary>
/// Marks a partial struct as an image record. The source generator lays its fields out as
/// gcc lays out the equivalent C struct with <c>__attribute__((aligned(8)))</c>, after an
/// 8-byte <c>{u32 type; u32 len}</c> header, and emits its serializer.
/// </summary>
[AttributeUsage(AttributeTargets.Struct, Inherited = false)]
public sealed class ImageRecordAttribute(RecordType type) : Attribute
{
    public RecordType Type { get; } = type;
}

/// <summary>
/// Marks the u32 field that holds the number of variable bytes following the fixed payload
/// (a path, a message, a buffer). The record length covers them, padded to 8.
/// </summary>
[AttributeUsage(AttributeTargets.Field, Inherited = false)]
public sealed class TrailingBytesAttribute : Attribute;
