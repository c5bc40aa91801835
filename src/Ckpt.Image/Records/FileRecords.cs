namespace Ckpt.Image.Records;

public enum FileKind : uint
{
    Regular = 1,
    Directory = 2,
    CharacterDevice = 3,
    BlockDevice = 4,
    Pipe = 5,
    Socket = 6,
    Symlink = 7,
    Other = 8,          // eventfd, epoll, signalfd, ... (anon inodes)
}

/// <summary>The descriptor table: how many FileDescriptorRecords follow.</summary>
[ImageRecord(RecordType.FileTable)]
public partial struct FileTableRecord
{
    public int ObjRef;
    public int DescriptorCount;
}

/// <summary>One open descriptor; its FileRecord precedes it on first use of FileObjRef.</summary>
[ImageRecord(RecordType.FileDescriptor)]
public partial struct FileDescriptorRecord
{
    public int Fd;
    public int FileObjRef;
    public int CloseOnExec;
    public int Reserved;
}

/// <summary>
/// An open file object (shared by every descriptor and mapping that uses it), with the
/// identity a restore checks. The path follows as trailing UTF-8 bytes.
/// </summary>
[ImageRecord(RecordType.File)]
public partial struct FileRecord
{
    public int ObjRef;
    public FileKind Kind;
    public uint OpenFlags;              // O_* from fdinfo "flags" (octal there)
    public uint Mode;                   // st_mode
    public long Position;               // fdinfo "pos"
    public ulong Device;                // st_dev
    public ulong Inode;
    public ulong RawDevice;             // st_rdev for devices
    public long FileSize;
    public long MtimeNanoseconds;
    [TrailingBytes] public uint PathLength;
    public uint Reserved;
}
