namespace Ckpt.Image.Records;

/// <summary>TerminalRecord.Flags: the pair's master-side modes.</summary>
[Flags]
public enum TerminalFlags : uint
{
    None = 0,
    Locked = 1,         // TIOCGPTLCK: the slave may not be opened (TIOCSPTLCK 1)
    PacketMode = 2,     // TIOCGPKT: the master reads a control byte before each packet (TIOCPKT 1)
}

/// <summary>
/// CkptPS: one pseudo-terminal pair (ObjectType.Terminal) whose master (/dev/ptmx) and slave
/// (/dev/pts/N) are both held by processes of the image. Written once, after the FILE record of the
/// pair's first end in the image (Kind = PtyMaster or PtySlave); every later end's FILE record is
/// followed by an OBJREF {Terminal, TerminalObjRef} instead. The state is the slave tty's (a master
/// has no termios or window size of its own: the kernel's ioctls on it act on the slave). Output the
/// master had not read follows as a TERMINAL_OUTPUT record; unread input is refused at checkpoint.
/// A restore makes a new pair by opening /dev/ptmx: the kernel picks its index, so /dev/pts/Index
/// (ttyname, /proc/PID/stat tty_nr) is not kept.
/// </summary>
[ImageRecord(RecordType.Terminal)]
public unsafe partial struct TerminalRecord
{
    public const int ControlCharacterCount = 19;   // NCCS of struct termios2

    public int TerminalObjRef;          // the pair (ObjectType.Terminal), shared by its ends
    public int Index;                   // N of /dev/pts/N at checkpoint time (for messages only)
    public TerminalFlags Flags;
    // struct termios2 (TCGETS2), field by field
    public uint InputFlags;             // c_iflag
    public uint OutputFlags;            // c_oflag
    public uint ControlFlags;           // c_cflag
    public uint LocalFlags;             // c_lflag
    public uint InputSpeed;             // c_ispeed (baud)
    public uint OutputSpeed;            // c_ospeed (baud)
    public byte LineDiscipline;         // c_line: 0 (N_TTY) is the only one restored
    public fixed byte ControlCharacters[19]; // c_cc
    // struct winsize (TIOCGWINSZ)
    public ushort Rows;
    public ushort Columns;
    public ushort XPixels;
    public ushort YPixels;
    // the slave's device node in devpts (chown/chmod after the restore made the pair)
    public uint SlaveUid;
    public uint SlaveGid;
    public uint SlaveMode;              // permission bits only (at most 0777)
    public uint Reserved;
}

/// <summary>
/// CkptPS: a pair's unread output, right after its TERMINAL record (absent: none): the bytes its slave
/// side wrote that the master had not read, as the master reads them (after the slave's output
/// processing; the master's own line discipline is raw). The checkpoint takes them from the master and
/// puts them back with the slave's OPOST cleared, with the tree frozen (a tty has no MSG_PEEK); the
/// restore writes them the same way into the new pair, before anything reads it. At most the master's
/// line discipline buffer plus the pty's (the checkpoint refuses a full line discipline buffer).
/// </summary>
[ImageRecord(RecordType.TerminalOutput)]
public partial struct TerminalOutputRecord
{
    public const uint MaximumLength = 16384;     // N_TTY's 4095 + the pty's 8 KiB of flip buffers, rounded up

    public int TerminalObjRef;          // the pair (ObjectType.Terminal) of the TERMINAL record before
    [TrailingBytes] public uint DataLength;  // 1 to MaximumLength bytes, in the order the master reads them
}

/// <summary>
/// CkptPS: a process's controlling terminal (signal_struct's tty, /proc/PID/stat tty_nr) and that
/// terminal's foreground process group (tpgid), after the process's SIGNAL record's POSIX timers
/// (absent: no controlling terminal). Either a pair of the image (TerminalObjRef, which the session
/// leader acquires at restore with TIOCSCTTY before it makes the session's other processes, which
/// inherit it) or a terminal outside the image (TerminalObjRef 0: the user's terminal; restored only
/// when asked for, as the terminal `ckpt restore` runs on). Every process of a session records the
/// same terminal. The name the terminal had follows as trailing bytes (for messages).
/// </summary>
[ImageRecord(RecordType.ControllingTerminal)]
public partial struct ControllingTerminalRecord
{
    public int TerminalObjRef;          // 0: a terminal outside the image
    public int Session;                 // the process's session (the terminal's session)
    public int ForegroundGroup;         // tpgid: the terminal's foreground process group, 0 when it has none
    public uint Reserved;
    public ulong Device;                // tty_nr at checkpoint time (for messages)
    [TrailingBytes] public uint NameLength;
    public uint Reserved2;
}
