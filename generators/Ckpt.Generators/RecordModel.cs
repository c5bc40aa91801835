using System;

namespace Ckpt.Generators
{
    /// <summary>A record's fields laid out as gcc lays out the C struct. No Roslyn symbols: equatable.</summary>
    internal sealed record RecordModel(
        string Namespace,
        string Name,
        string TypeMember,
        uint TypeNumber,
        bool IsUnsafe,
        EquatableArray<FieldModel> Fields,
        int Size,
        string? TrailingField);

    /// <summary>
    /// One field. Primitive is the C# keyword read and written (the enum's underlying type for
    /// enums); Count is the element count of a fixed buffer, 1 otherwise.
    /// </summary>
    internal sealed record FieldModel(
        string Name,
        string Primitive,
        string? EnumType,
        int ElementSize,
        int Count,
        int Offset)
    {
        public int Size => ElementSize * Count;
        public bool IsFixedBuffer => Count > 1;

        public string CType => (Primitive switch
        {
            "byte" => "__u8",
            "sbyte" => "__s8",
            "ushort" => "__u16",
            "short" => "__s16",
            "uint" => "__u32",
            "int" => "__s32",
            "ulong" => "__u64",
            "long" => "__s64",
            _ => throw new InvalidOperationException(Primitive),
        });
    }

    /// <summary>Where a diagnostic goes, without holding a Location (which would defeat caching).</summary>
    internal sealed record DiagnosticInfo(string Id, string FilePath, int Start, int Length, EquatableArray<string> Arguments);

    internal sealed record ParseResult(RecordModel? Record, EquatableArray<DiagnosticInfo> Diagnostics);
}
