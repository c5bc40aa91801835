using Ckpt.Image.Records;

namespace CkptPS;

/// <summary>One open descriptor of a checkpointed task, as `ls -l /proc/PID/fd` and fdinfo show it.</summary>
public sealed class CkptFile
{
    public required string ImagePath { get; init; }
    public required int Pid { get; init; }
    public required int Fd { get; init; }
    public required FileKind Kind { get; init; }
    public required string Path { get; init; }
    public required OpenFlags Flags { get; init; }
    public FileAccess Access => ((uint)Flags & 3) switch
    {
        1 => FileAccess.Write,
        2 => FileAccess.ReadWrite,
        _ => FileAccess.Read,
    };
    /// <summary>The descriptor link's mode as `ls -l /proc/PID/fd` shows it: lr-x------, l-wx------, lrwx------.</summary>
    public string LinkMode => Access switch
    {
        FileAccess.Write => "l-wx------",
        FileAccess.ReadWrite => "lrwx------",
        _ => "lr-x------",
    };
    public required long Position { get; init; }
    public required bool CloseOnExec { get; init; }
    /// <summary>st_mode of the file.</summary>
    public required uint Mode { get; init; }
    public required ulong Device { get; init; }
    public required ulong Inode { get; init; }
    public required long Size { get; init; }
    public required DateTime LastWriteTimeUtc { get; init; }
    /// <summary>What the kind keeps besides the file (an eventfd's counter, a pipe's buffered bytes, an epoll's watches, a timer's time left); empty for plain files.</summary>
    public string State { get; init; } = "";

    public override string ToString() => $"{Fd} -> {Path}";
}
