using Ckpt.Image.Records;

namespace Ckpt.Image.Model;

/// <summary>
/// A whole image as objects: the task table, and per process its credentials, memory, files,
/// signals and threads, with shared objects resolved to the same instance. Page contents are
/// not held: each <see cref="PageChunk"/> keeps the image offset of its contents. Read with
/// <see cref="ImageModelReader"/>, the only code that knows the record order.
/// </summary>
public sealed class ImageModel
{
    public required HeaderRecord Header { get; init; }
    public required HeaderArchRecord Arch { get; init; }
    public required TreeRecord Tree { get; init; }

    /// <summary>Every task, leaders before their threads, in the order of their sections.</summary>
    public required IReadOnlyList<TaskIdsRecord> TaskTable { get; init; }

    /// <summary>The live processes, in tree order (the root first, every process after its parent).</summary>
    public required IReadOnlyList<ProcessImage> Processes { get; init; }

    /// <summary>The zombies: processes that had exited and were not reaped by their parent yet.</summary>
    public IReadOnlyList<ZombieImage> Zombies { get; init; } = [];

    /// <summary>The root of the tree: the process the checkpoint was asked for (the first of the task table).</summary>
    public int RootPid => TaskTable[0].Pid;

    /// <summary>
    /// The IMAGE_SIGNATURE record, when the checkpoint signed the image, and its offset: the MAC
    /// covers every byte before it. The reader only reads it; whether it is valid is for whoever
    /// holds the key to decide (the restore, see docs/SECURITY.md).
    /// </summary>
    public ImageSignatureRecord? Signature { get; init; }
    public long SignatureOffset { get; init; }

    /// <summary>The tail record and its offset: the checksum covers every byte before it.</summary>
    public TailRecord Tail { get; init; }
    public long TailOffset { get; init; }

    /// <summary>Records before the tail, and the image's length in bytes.</summary>
    public long RecordCount { get; init; }
    public long Bytes { get; init; }
}

/// <summary>One thread group: its process-wide state and its threads (the leader first).</summary>
public sealed class ProcessImage
{
    public required TaskRecord Task { get; init; }
    public required string Cwd { get; init; }
    public required string Root { get; init; }
    public required string ExePath { get; init; }
    public required CredentialsRecord Credentials { get; init; }
    public required uint[] Groups { get; init; }
    public required MemoryImage Memory { get; init; }
    /// <summary>Its descriptor table: the same instance for every process that shares it (CLONE_FILES; the FILE_TABLE is in the first sharer's section, OBJREFs in the others').</summary>
    public required FileTableImage FileTable { get; init; }
    public required SignalHandlersImage SignalHandlers { get; init; }
    public required SignalImage Signal { get; init; }
    public required IReadOnlyList<ThreadImage> Threads { get; init; }

    /// <summary>The job-control stop the process was in at checkpoint time; null when it ran.</summary>
    public JobControlStopRecord? JobControlStop { get; init; }

    /// <summary>The process was a child subreaper (PR_SET_CHILD_SUBREAPER).</summary>
    public bool ChildSubreaper { get; init; }

    /// <summary>The fs information (cwd, root, umask) it shares with other processes of the tree (CLONE_FS); null: its own.</summary>
    public FsImage? SharedFs { get; init; }

    public int Pid => Task.Pid;
}

/// <summary>A zombie: its TASK record (ids, name) and wait status (exit code &lt;&lt; 8, or the terminating signal).</summary>
public sealed record ZombieImage(TaskRecord Task, int ExitStatus)
{
    public int Pid => Task.Pid;
}

/// <summary>An mm: its fields and VMAs.</summary>
public sealed record MemoryImage(MmRecord Mm, IReadOnlyList<VmaImage> Vmas)
{
    /// <summary>Its membarrier(2) registrations (MEMBARRIER), none when the image has no such record.</summary>
    public MembarrierRegistrations Membarrier { get; init; }
}

/// <summary>
/// An open file object (FILE), shared by every descriptor and mapping that uses it, with the record
/// of its kind's state when the kind has one (EVENTFD for <see cref="FileKind.Eventfd"/>).
/// </summary>
public sealed record FileImage(FileRecord Record, string Path, EventfdRecord? Eventfd = null)
{
    /// <summary>A pipe end's pipe: the same instance for every end of one pipe.</summary>
    public PipeImage? Pipe { get; init; }

    /// <summary>For <see cref="FileKind.Fifo"/>: the named pipe's size and buffered bytes, the same instance for every end.</summary>
    public PipeImage? Fifo { get; init; }
    public EpollImage? Epoll { get; init; }
    public SignalfdRecord? Signalfd { get; init; }
    public TimerfdRecord? Timerfd { get; init; }
    /// <summary>For <see cref="FileKind.Inotify"/>: the instance and its watches, in watch descriptor order.</summary>
    public InotifyImage? Inotify { get; init; }

    /// <summary>For <see cref="FileKind.Memfd"/> and <see cref="FileKind.DeletedFile"/>: size, seals, owner and where the contents are.</summary>
    public UnlinkedFileImage? Unlinked { get; init; }

    /// <summary>The SOCKET record and queue of a <see cref="FileKind.UnixSocket"/> or <see cref="FileKind.InetSocket"/>.</summary>
    public SocketImage? Socket { get; init; }

    /// <summary>The pseudo-terminal pair of a <see cref="FileKind.PtyMaster"/> or <see cref="FileKind.PtySlave"/> end: the same instance for every end of one pair.</summary>
    public TerminalImage? Terminal { get; init; }
}

/// <summary>A pipe (PIPE_BUF), shared by its ends: its size and the bytes it held; Offset is the record's.</summary>
public sealed record PipeImage(PipeBufferRecord Record, byte[] Data, long Offset);

/// <summary>An epoll instance's interest list (EPOLL); Offset is the record's.</summary>
public sealed record EpollImage(EpollRecord Record, IReadOnlyList<EpollItem> Items, long Offset);

/// <summary>A memfd or deleted file: its record and its saved contents (chunks of file offsets).</summary>
public sealed record UnlinkedFileImage(UnlinkedFileRecord Record, IReadOnlyList<PageChunk> Chunks);

/// <summary>An inotify instance: its flags and each watch with the watched path.</summary>
public sealed record InotifyImage(InotifyRecord Record, IReadOnlyList<(InotifyWatchRecord Watch, string Path)> Watches);

/// <summary>One VMA, its backing file if any, and where its saved pages are in the image.</summary>
public sealed record VmaImage(VmaRecord Record, FileImage? File, IReadOnlyList<PageChunk> Chunks)
{
    public ulong Length => Record.VmEnd - Record.VmStart;

    /// <summary>Pages stored in the chunks (all-zero anonymous pages are left out at checkpoint).</summary>
    public ulong PagesSaved => (ulong)Chunks.Sum(c => (long)c.Addresses.Length) + (ulong)DeferredChunks.Sum(c => (long)c.PageCount);

    /// <summary>
    /// With <see cref="ImageReader.DeferAnonymousPageAddresses"/>, the chunks of a private anonymous VMA
    /// (then <see cref="Chunks"/> is empty): page counts and offsets only, the addresses not read yet.
    /// </summary>
    public IReadOnlyList<DeferredPageChunk> DeferredChunks { get; init; } = [];

    /// <summary>The image stores pages of this VMA (in chunks read or deferred).</summary>
    public bool HasSavedPages => Chunks.Count > 0 || DeferredChunks.Count > 0;

    /// <summary>Addresses of pages that are the parent process's pages at the same addresses (INHERITED_PAGES), increasing.</summary>
    public IReadOnlyList<ulong> InheritedPages { get; init; } = [];

    /// <summary>A SharedAnon VMA's object (the same instance for every VMA, in any process, that maps it).</summary>
    public SharedMemoryImage? SharedMemory { get; init; }
}

/// <summary>A shared anonymous memory object (SHARED_MEMORY record) and the object pages the image stores (each once).</summary>
public sealed class SharedMemoryImage(SharedMemoryRecord record)
{
    public SharedMemoryRecord Record { get; } = record;

    public int ObjRef => Record.ObjRef;

    internal HashSet<ulong> StoredPages { get; } = [];
}

/// <summary>A PAGE_ARRAY chunk: the page addresses, and the image offset of their contents.</summary>
public sealed record PageChunk(ulong[] Addresses, long ContentsOffset);

/// <summary>A descriptor table; Files holds every file object its descriptors use, by objref.</summary>
public sealed record FileTableImage(int ObjRef, IReadOnlyList<FileDescriptorRecord> Descriptors, IReadOnlyDictionary<int, FileImage> Files)
{
    /// <summary>The file locks held through the table's files (flock, POSIX and OFD record locks).</summary>
    public IReadOnlyList<FileLockRecord> Locks { get; init; } = [];
}

public sealed record SignalHandlersImage(int ObjRef, IReadOnlyList<SignalActionRecord> Actions);

/// <summary>signal_struct: limits, itimers and the process-wide pending queue.</summary>
public sealed record SignalImage(SignalRecord Record, IReadOnlyList<SignalPendingRecord> SharedPending)
{
    /// <summary>The POSIX timers (timer_create) of the process, in increasing id order.</summary>
    public IReadOnlyList<PosixTimerRecord> PosixTimers { get; init; } = [];

    /// <summary>The process's controlling terminal and its foreground group; null when it has none.</summary>
    public ControllingTerminalImage? ControllingTerminal { get; init; }
}

/// <summary>One thread: its task record, how it stopped, its stack, rseq, CPU state and own queue.</summary>
public sealed record ThreadImage(
    TaskRecord Task,
    ThreadRecord Thread,
    RestartBlockRecord? RestartBlock,
    SignalStackRecord SignalStack,
    RseqRecord Rseq,
    CpuRecord Cpu,
    CpuXstateRecord XstateRecord,
    byte[] Xstate,
    IReadOnlyList<SignalPendingRecord> Pending)
{
    public int Tid => Thread.Tid;

    /// <summary>The thread's parent-death signal (PR_SET_PDEATHSIG), 0 for none.</summary>
    public int ParentDeathSignal { get; init; }

    public unsafe string Name
    {
        get
        {
            ThreadRecord thread = Thread;
            return RecordText.CString(thread.Comm, 16);
        }
    }
}
