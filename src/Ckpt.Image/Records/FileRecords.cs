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
    Other = 8,          // epoll, signalfd, timerfd, ... (anon inodes not supported yet)
    Eventfd = 9,        // CkptPS: anon_inode:[eventfd]; an EVENTFD record follows its FILE record
    UnixSocket = 20,    // CkptPS: an AF_UNIX socket; a SOCKET record (and its queue) follows its FILE record
    InetSocket = 21,    // CkptPS: an AF_INET/AF_INET6 TCP or UDP socket; a SOCKET record follows its FILE record
}

/// <summary>EventfdRecord.Flags: the eventfd2(2) flags that belong to the object (EFD_CLOEXEC is the descriptor's).</summary>
[Flags]
public enum EventfdFlags : uint
{
    None = 0,
    Semaphore = 1,          // EFD_SEMAPHORE
    NonBlock = 0x800,       // EFD_NONBLOCK = O_NONBLOCK (04000)
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

/// <summary>
/// CkptPS: the state of an eventfd file object, right after its FILE record (Kind = Eventfd, same
/// objref): the counter (/proc/PID/fdinfo "eventfd-count", hex there; at most 0xfffffffffffffffe)
/// and the flags (EFD_SEMAPHORE from "eventfd-semaphore", EFD_NONBLOCK from the file's flags).
/// Descriptors dup'ed from one eventfd share the object, as they share the counter.
/// </summary>
[ImageRecord(RecordType.Eventfd)]
public partial struct EventfdRecord
{
    public const ulong MaxCount = 0xffff_ffff_ffff_fffe;

    public int ObjRef;
    public EventfdFlags Flags;
    public ulong Count;
}
