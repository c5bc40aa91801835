using Ckpt.Image.Records;

namespace Ckpt.Image;

/// <summary>The one error a bad image produces: which record, at which byte offset, and what is wrong.</summary>
public sealed class ImageFormatException : Exception
{
    public ImageFormatException(RecordType? record, long offset, string problem)
        : base(Describe(record, offset, problem))
    {
        Record = record;
        Offset = offset;
        Problem = problem;
    }

    /// <summary>The record being read, when its header was readable.</summary>
    public RecordType? Record { get; }

    /// <summary>Byte offset of that record (or of the bad bytes) in the image.</summary>
    public long Offset { get; }

    public string Problem { get; }

    private static string Describe(RecordType? record, long offset, string problem) =>
        record is { } type
            ? $"invalid image: record {RecordName(type)} at offset {offset}: {problem}"
            : $"invalid image at offset {offset}: {problem}";

    public static string RecordName(RecordType type) =>
        Enum.IsDefined(type) ? $"{type} ({(uint)type})" : $"type {(uint)type}";
}
