namespace Ckpt.Image.Records;

public enum Architecture : uint
{
    X86_64 = 62, // ELF e_machine EM_X86_64
}

/// <summary>First record of every image: what wrote it, where, and the kernel constants it assumed.</summary>
[ImageRecord(RecordType.Header)]
public unsafe partial struct HeaderRecord
{
    public const ulong ExpectedMagic = 0x3130_5350_5450_4B43; // "CKPTPS01" little endian
    public const ushort CurrentFormatVersion = 3;   // 3: task table, per-task sections, objrefs (2: one task, XXH3 tail)
    public const ushort LinuxCrVersion = 21;

    public ulong Magic;
    public ushort FormatVersion;
    public ushort LinuxCrNumbering;      // linux-cr series whose record numbers we follow (ckpt-v21)
    public Architecture Arch;
    public long CreatedUnixNanoseconds;
    public ulong ImageId;                // random, never 0: names this image
    public ulong ParentImageId;          // the image this one is a delta of; 0: a full image
    public uint PageSize;
    public uint TaskCommLength;          // 16
    public uint SignalCount;             // _NSIG = 64
    public uint RlimitCount;             // RLIM_NLIMITS = 16
    public uint AuxvWords;               // ulongs in MmRecord.SavedAuxv
    public uint UserRegsSize;            // sizeof(struct user_regs_struct) = 216
    public fixed byte KernelRelease[65]; // uname -r
    public fixed byte KernelVersion[65]; // uname -v
    public fixed byte Machine[65];       // uname -m
}

/// <summary>x86-64 facts a restore must match: the xsave features and area size of the CPU.</summary>
[ImageRecord(RecordType.HeaderArch)]
public partial struct HeaderArchRecord
{
    public ulong XFeatures;              // XCR0 of the checkpointing CPU
    public uint XstateSize;              // size of the xsave area the kernel reports
    public uint Reserved;
}

/// <summary>Variable-length bytes (xstate area, supplementary groups, ...).</summary>
[ImageRecord(RecordType.Buffer)]
public partial struct BufferRecord
{
    [TrailingBytes] public uint Length;
    public uint Reserved;
}

/// <summary>A UTF-8 string without terminator (paths, names).</summary>
[ImageRecord(RecordType.String)]
public partial struct StringRecord
{
    [TrailingBytes] public uint Length;
    public uint Reserved;
}

public enum ObjectType : uint
{
    File = 1,
    Mm = 2,
    SharedMemory = 3,
    Pipe = 4,
    FileTable = 5,       // the descriptor table (files_struct)
    SignalHandlers = 6,  // the handler table (sighand_struct)
    Signal = 7,          // process-wide signal state: limits, itimers, shared queue (signal_struct)
    Fifo = 8,            // CkptPS: a named pipe's buffer, shared by its open ends (a PIPE_BUF record)
    Fs = 9,              // CkptPS: fs information (fs_struct: cwd, root, umask) shared by processes (an FS record)
    Terminal = 20,       // CkptPS: a pseudo-terminal pair, shared by its master and slave ends
}

/// <summary>A reference to a shared object already written earlier in the image.</summary>
[ImageRecord(RecordType.Objref)]
public partial struct ObjrefRecord
{
    public ObjectType ObjectType;
    public int ObjRef;
}

/// <summary>Ends a successful or failed image; the checksum covers every byte before this record.</summary>
[ImageRecord(RecordType.Tail)]
public partial struct TailRecord
{
    public ulong Magic;                  // HeaderRecord.ExpectedMagic again
    public ulong Checksum;               // XXH3-64 of all bytes before the tail record (ImageChecksum)
    public ulong RecordCount;            // records before the tail
}

/// <summary>Written instead of the rest of the image when a checkpoint fails.</summary>
[ImageRecord(RecordType.Error)]
public partial struct ErrorRecord
{
    public int Errno;                    // 0 when the failure was not a syscall
    [TrailingBytes] public uint MessageLength;
}
