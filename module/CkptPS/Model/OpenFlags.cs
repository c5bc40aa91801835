namespace CkptPS;

/// <summary>
/// The O_* flags of an open file (x86-64 values) as /proc/PID/fdinfo reports them.
/// The access mode occupies the two low bits: ReadOnly is 0, so test it with <see cref="CkptFile.Access"/>.
/// </summary>
[Flags]
public enum OpenFlags : uint
{
    ReadOnly = 0,
    WriteOnly = 0x1,
    ReadWrite = 0x2,
    Create = 0x40,
    Exclusive = 0x80,
    NoControllingTerminal = 0x100,
    Truncate = 0x200,
    Append = 0x400,
    NonBlocking = 0x800,
    DataSync = 0x1000,
    Async = 0x2000,
    Direct = 0x4000,
    LargeFile = 0x8000,
    Directory = 0x10000,
    NoFollow = 0x20000,
    NoAccessTime = 0x40000,
    CloseOnExec = 0x80000,
    Sync = 0x100000,
    PathOnly = 0x200000,
    TemporaryFile = 0x400000,
}
