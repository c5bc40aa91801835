namespace Ckpt.Image.Records;

public enum FileKind : uint
{
    Regular = 1,
    Directory = 2,
    CharacterDevice = 3,
    BlockDevice = 4,
    Pipe = 5,           // one end of a pipe; a PIPE_BUF record (the pipe's first end) or an OBJREF to the pipe follows
    Socket = 6,
    Symlink = 7,
    Other = 8,          // epoll, signalfd, timerfd, ... (anon inodes not supported yet)
    Eventfd = 9,        // CkptPS: anon_inode:[eventfd]; an EVENTFD record follows its FILE record
    Epoll = 10,         // CkptPS: anon_inode:[eventpoll]; an EPOLL record follows its FILE record
    Signalfd = 11,      // CkptPS: anon_inode:[signalfd]; a SIGNALFD record follows its FILE record
    Timerfd = 12,       // CkptPS: anon_inode:[timerfd]; a TIMERFD record follows its FILE record
    Inotify = 13,       // CkptPS: anon_inode:inotify; an INOTIFY record and its INOTIFY_WATCH records follow its FILE record
    Memfd = 14,         // CkptPS: memfd_create(2) file ("/memfd:NAME (deleted)"); an UNLINKED_FILE record and its contents follow
    DeletedFile = 15,   // CkptPS: a regular file unlinked while open ("PATH (deleted)"); an UNLINKED_FILE record and its contents follow
    UnixSocket = 20,    // CkptPS: an AF_UNIX socket; a SOCKET record (and its queue) follows its FILE record
    InetSocket = 21,    // CkptPS: an AF_INET/AF_INET6 TCP or UDP socket; a SOCKET record follows its FILE record
    PtyMaster = 24,     // CkptPS: a pseudo-terminal master (/dev/ptmx); a TERMINAL record (first end of the pair) or an OBJREF to it follows
    PtySlave = 25,      // CkptPS: a pseudo-terminal slave (/dev/pts/N) whose master is in the image; a TERMINAL record or an OBJREF follows
    OutsideTerminal = 26, // CkptPS: a terminal slave whose master is outside the image (the user's terminal); nothing follows
    DeletedFifo = 27,   // CkptPS: one open end of a named pipe whose name was unlinked ("PATH (deleted)"); a PIPE_BUF of its FIFO object or an OBJREF {Fifo} follows, as for Fifo
    Fifo = 30,          // CkptPS: one open end of a named pipe (the FILE's path is the FIFO's); a PIPE_BUF record of its FIFO object (its first end) or an OBJREF {Fifo} follows
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

/// <summary>FileLockRecord.Kind: which lock family, as /proc/locks names it.</summary>
public enum FileLockKind : uint
{
    Flock = 1,          // "FLOCK": flock(2), owned by the open file description
    Posix = 2,          // "POSIX": fcntl F_SETLK record lock, owned by the process
    Ofd = 3,            // "OFDLCK": fcntl F_OFD_SETLK record lock, owned by the open file description
}

/// <summary>
/// CkptPS: a lock the process held at checkpoint time on one of its file objects, after the
/// FILE_TABLE's descriptors (so every file it names is defined), from the "lock:" lines of
/// /proc/PID/fdinfo/N. A restore takes it again through a descriptor of that file object
/// (flock, fcntl F_SETLK or F_OFD_SETLK, never waiting): a lock someone else holds meanwhile fails
/// the restore, naming the file and the holder.
/// </summary>
[ImageRecord(RecordType.FileLock)]
public partial struct FileLockRecord
{
    public int FileObjRef;              // the FILE the lock was taken through
    public FileLockKind Kind;
    public uint Exclusive;              // 1: WRITE (F_WRLCK, LOCK_EX), 0: READ (F_RDLCK, LOCK_SH)
    public uint Reserved;
    public long Start;                  // first byte (0 for flock)
    public long Length;                 // bytes; 0: to the end of the file, however long (EOF in /proc/locks)
}

/// <summary>
/// CkptPS: an inotify instance, right after its FILE record (Kind = Inotify, same objref), followed by
/// WatchCount INOTIFY_WATCH records in watch descriptor order. Flags: IN_NONBLOCK only (IN_CLOEXEC is
/// the descriptor's). The queue was empty at checkpoint time (FIONREAD on a copy of the descriptor):
/// an instance with queued events is refused, so no event is lost silently.
/// </summary>
[ImageRecord(RecordType.Inotify)]
public partial struct InotifyRecord
{
    public int ObjRef;
    public uint Flags;                  // IN_NONBLOCK (0x800) or 0
    public int WatchCount;
    public uint Reserved;
}

/// <summary>
/// CkptPS: one watch of an inotify instance (/proc/PID/fdinfo "inotify wd:.. ino:.. sdev:.. mask:.."),
/// with the path of the watched inode, found at checkpoint time from the fdinfo file handle
/// (open_by_handle_at, then the descriptor's link) as trailing UTF-8 bytes. Watch descriptors are
/// 1, 2, ... WatchCount: the kernel hands them out in increasing order from 1 and a fresh instance
/// gets them back in that order (a gap, left by a removed watch, is refused at checkpoint time).
/// </summary>
[ImageRecord(RecordType.InotifyWatch)]
public partial struct InotifyWatchRecord
{
    public int WatchDescriptor;
    public uint Mask;                   // IN_* events plus IN_ONESHOT / IN_EXCL_UNLINK, as fdinfo shows it
    public ulong Device;                // st_dev of the watched inode (user-space encoding)
    public ulong Inode;
    [TrailingBytes] public uint PathLength;
    public uint Reserved;
}

/// <summary>UnlinkedFileRecord.Seals: fcntl F_GET_SEALS bits of a memfd.</summary>
[Flags]
public enum FileSeals : uint
{
    None = 0,
    Seal = 0x1,             // F_SEAL_SEAL (also what a memfd made without MFD_ALLOW_SEALING has)
    Shrink = 0x2,
    Grow = 0x4,
    Write = 0x8,
    FutureWrite = 0x10,
    Exec = 0x20,
}

/// <summary>
/// CkptPS: a file with no name to reopen, right after its FILE record (Kind = Memfd or DeletedFile,
/// same objref; the FILE's path is the descriptor's link, "/memfd:NAME (deleted)" or "PATH (deleted)",
/// its Mode the file's mode). Followed by the contents as PAGE_ARRAY chunks whose "addresses" are file
/// offsets (page aligned, increasing, below Size), then PAGE_ARRAY{0}: only the data ranges
/// (SEEK_DATA/SEEK_HOLE), all-zero pages left out; what no chunk holds reads as zeros. A restore makes
/// a new unlinked file (memfd_create with the name; a deleted file with O_TMPFILE in its directory),
/// owned by Uid/Gid (which must be among the image's credentials), writes the contents, sets the size
/// and then the seals.
/// </summary>
[ImageRecord(RecordType.UnlinkedFile)]
public partial struct UnlinkedFileRecord
{
    // 128 TiB, the x86-64 user address space: no mapping shows more (the .NET runtime sizes the
    // memfd of its W^X double mapping at 2 TiB and fills a few pages); a file is sparse, so a size costs nothing.
    public const long MaxSize = 1L << 47;

    public int ObjRef;
    public FileSeals Seals;             // memfd: F_GET_SEALS; a deleted file: none
    public uint Uid;                    // st_uid
    public uint Gid;                    // st_gid
    public long FileSize;               // st_size, at most MaxSize
}
