namespace Ckpt.Image.Records;

/// <summary>
/// Record type numbers. They follow linux-cr's include/linux/checkpoint_hdr.h as of
/// ckpt-v21 (Oren Laadan's series) wherever linux-cr had the record; records CkptPS adds
/// extend the same ranges (marked "CkptPS" below).
/// </summary>
public enum RecordType : uint
{
    // header and objects
    Header = 1,
    HeaderArch = 2,
    Container = 3,          // linux-cr only; never written by CkptPS
    Buffer = 4,
    String = 5,
    Objref = 6,

    // tasks
    Tree = 101,
    Task = 102,
    TaskNamespaces = 103,   // linux-cr only
    TaskObjects = 104,
    RestartBlock = 105,
    Thread = 106,
    Cpu = 107,
    TaskIds = 108,          // CkptPS: one entry of the task table (linux-cr kept pids in TREE)
    Zombie = 109,           // CkptPS: the exit status of a process that exited and is not reaped yet
    JobControlStop = 110,   // CkptPS: a process stopped by job control (SIGSTOP, SIGTSTP, ...) at checkpoint time
    ChildSubreaper = 111,   // CkptPS: a process that is a child subreaper (PR_SET_CHILD_SUBREAPER)
    ParentDeathSignal = 112, // CkptPS: a task's parent-death signal (PR_SET_PDEATHSIG)
    Credentials = 113,
    Fs = 114,               // CkptPS: fs information (cwd, root, umask) shared by processes (CLONE_FS), as linux-cr's CKPT_HDR_FS (451 there)
    GroupInfo = 115,
    Rseq = 120,             // CkptPS: per-thread rseq registration
    SignalStack = 121,      // CkptPS: sigaltstack

    // 201-299: architecture dependent (x86-64)
    CpuXstate = 201,

    // files
    FileTable = 301,
    FileDescriptor = 302,
    FileName = 303,
    File = 304,
    PipeBuffer = 305,
    Eventfd = 306,          // CkptPS: an eventfd's counter and flags, after its FILE record
    Epoll = 307,            // CkptPS: an epoll instance's interest list, after its FILE record
    Signalfd = 308,         // CkptPS: a signalfd's signal mask, after its FILE record
    Timerfd = 309,          // CkptPS: a timerfd's clock, settings, time left and ticks, after its FILE record
    FileLock = 310,         // CkptPS: a lock held through a file object, after the FILE_TABLE's descriptors
    Inotify = 311,          // CkptPS: an inotify instance, after its FILE record
    InotifyWatch = 312,     // CkptPS: one watch of the inotify instance before it
    UnlinkedFile = 313,     // CkptPS: a memfd's or deleted file's size, seals and owner, after its FILE record; its contents follow
    Socket = 330,           // CkptPS: a socket's family, type, state, addresses and options, after its FILE record
    SocketQueue = 331,      // CkptPS: one message (or stream chunk) of a socket's receive queue, after its SOCKET record
    TcpConnection = 332,    // CkptPS: an established TCP connection's sequence numbers, options and window (TCP_REPAIR), after its SOCKET record
    TcpQueueData = 333,     // CkptPS: bytes of the receive or send queue of the TCP connection before it
    UnixPendingConnection = 334, // CkptPS: a unix client's connection waiting in a listener's accept queue, after the client's SOCKET record
    UdpDatagram = 335,      // CkptPS: one datagram of a UDP socket's receive queue with its source address, after its SOCKET record
    SocketRights = 336,     // CkptPS: the descriptors in flight (SCM_RIGHTS) the unix SOCKET_QUEUE message before it carries; IN_FLIGHT_FILE records follow
    InFlightFile = 337,     // CkptPS: one descriptor of the SOCKET_RIGHTS before it: a file object (its FILE written right before on first use)
    Terminal = 340,         // CkptPS: a pseudo-terminal pair (termios, window size, modes), after the FILE record of its first end
    ControllingTerminal = 341, // CkptPS: a process's controlling terminal and its foreground group, after the SIGNAL record's timers
    TerminalOutput = 342,   // CkptPS: a pseudo-terminal pair's unread output (bytes the slave wrote, the master has not read), after its TERMINAL record

    // memory
    Mm = 401,
    Vma = 402,
    PageArray = 403,
    MmContext = 404,
    SharedMemory = 405,     // CkptPS: a shared anonymous memory object (size, inode), before the first VMA that maps it
    InheritedPages = 406,   // CkptPS: pages of a private VMA that are the parent's pages at the same addresses (copy-on-write after fork)
    Membarrier = 410,       // CkptPS: the process's membarrier(2) registrations, after its MM's VMAs (absent: none)

    // signals
    SignalHandlers = 601,
    Signal = 602,
    SignalTask = 603,
    SignalPending = 604,
    SignalAction = 610,     // CkptPS: one handler of the SignalHandlers table
    PosixTimer = 620,       // CkptPS: one timer_create timer, after the SIGNAL record's queue

    Tail = 9001,
    ImageSignature = 9002,  // CkptPS: HMAC-SHA256 of the image with the host's image key, right before the tail
    Error = 9999,
}
