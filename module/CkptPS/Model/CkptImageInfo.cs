namespace CkptPS;

/// <summary>What Checkpoint-Process -PassThru emits: a summary of the image it wrote.</summary>
public sealed class CkptImageInfo
{
    public required string ImagePath { get; init; }
    public required int Pid { get; init; }
    public required string Comm { get; init; }
    public required long Length { get; init; }
    public required int VmaCount { get; init; }
    public required int FileCount { get; init; }
    public required ulong PagesSaved { get; init; }
    public required ulong SavedBytes { get; init; }
    public required string KernelRelease { get; init; }
    public required DateTime CheckpointTimeUtc { get; init; }
    /// <summary>True when the process was killed once its image was complete (-Kill).</summary>
    public required bool Killed { get; init; }

    public override string ToString() => ImagePath;
}

/// <summary>What Test-CkptImage -Detailed emits: whether the image is valid, and if not what is wrong and where.</summary>
public sealed class CkptImageValidation
{
    public required string ImagePath { get; init; }
    public required bool IsValid { get; init; }
    /// <summary>The checkpointed pid, when the image got far enough to say.</summary>
    public int? Pid { get; init; }
    public long RecordCount { get; init; }
    public long Length { get; init; }
    /// <summary>The record where the problem was found, when it was a record.</summary>
    public Ckpt.Image.Records.RecordType? RecordType { get; init; }
    /// <summary>The byte offset of the problem.</summary>
    public long? Offset { get; init; }
    public string? Problem { get; init; }

    public override string ToString() => IsValid ? $"{ImagePath}: valid" : $"{ImagePath}: {Problem}";
}

/// <summary>Byte counts in the units people read: 4.0K, 132K, 1.5M, 2.0G.</summary>
public static class HumanSize
{
    public static string Format(ulong bytes)
    {
        string[] units = ["B", "K", "M", "G", "T", "P"];
        double value = bytes;
        int unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        if (unit == 0) return $"{bytes}B";
        return value < 10
            ? value.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) + units[unit]
            : Math.Round(value).ToString(System.Globalization.CultureInfo.InvariantCulture) + units[unit];
    }

    public static string Format(long bytes) => bytes < 0 ? "-" : Format((ulong)bytes);
}
