namespace Ckpt.Image.Records;

/// <summary>The memory descriptor: mm fields for PR_SET_MM_MAP, the auxv, how many VMAs follow.</summary>
[ImageRecord(RecordType.Mm)]
public unsafe partial struct MmRecord
{
    public const int AuxvCapacity = 64;

    public int ObjRef;
    public int VmaCount;
    public ulong StartCode, EndCode, StartData, EndData;
    public ulong StartBrk, Brk, StartStack;
    public ulong ArgStart, ArgEnd, EnvStart, EnvEnd;
    public uint AuxvWords;               // used words of SavedAuxv (pairs, AT_NULL included)
    public uint Reserved;
    public fixed ulong SavedAuxv[64];
}

public enum VmaType : uint
{
    Anon = 1,          // private anonymous (heap and stacks included)
    File = 2,          // private file mapping
    SharedAnon = 3,    // MAP_SHARED|MAP_ANONYMOUS or /dev/zero MAP_SHARED: a view of the SHARED_MEMORY object SharedMemoryObjRef
    SharedFile = 4,    // MAP_SHARED of a file: by reference, no contents
    Vdso = 5,
    Vvar = 6,
    VvarVclock = 7,
    Vsyscall = 8,
}

/// <summary>
/// A shared anonymous memory object (a shmem inode: MAP_SHARED|MAP_ANONYMOUS, or MAP_SHARED of
/// /dev/zero), which one or several processes of the tree map, at any offsets: written once, right
/// before the first VMA (in image order, whatever process it belongs to) that maps it, with a new
/// objref; every VMA mapping it names it by SharedMemoryObjRef. Its pages travel in the chunks of
/// the VMAs that map it, each page of the object once (with the first VMA whose range covers it), so
/// a page written by one process is stored once however many processes map it. A restore creates
/// the object once, in the first process that maps it, and maps that same object in the others.
/// </summary>
[ImageRecord(RecordType.SharedMemory)]
public partial struct SharedMemoryRecord
{
    public const ulong MaxSizePages = 1ul << 28;   // 1 TiB of 4 KiB pages: bounds what a restore creates

    public int ObjRef;
    public uint Reserved;
    public ulong SizePages;             // the object's size (its inode's i_size) in pages: every view lies below it
    public ulong Inode;                 // the shmem inode at checkpoint time (identifies the object; informational at restore)
}

/// <summary>
/// One VMA. For File/SharedFile a FileRecord with FileObjRef precedes it (first use only); for
/// SharedAnon a SharedMemoryRecord with SharedMemoryObjRef (first use in the image only).
/// Followed by PageArrayRecords, the last of which has PageCount = 0. The pages those chunks
/// hold are the pages saved; PagesPopulated is counted before the contents are read, so it is an
/// upper bound: an all-zero page of anonymous memory (Anon, SharedAnon) is left out, since a
/// fresh mapping reads as zeros anyway.
/// </summary>
[ImageRecord(RecordType.Vma)]
public partial struct VmaRecord
{
    public ulong VmStart;
    public ulong VmEnd;
    public ulong VmPgoff;               // file offset in pages
    public ulong VmFlags;               // kernel VM_* bits (from smaps VmFlags)
    public VmaType VmaType;
    public uint Protection;             // PROT_READ|PROT_WRITE|PROT_EXEC
    public int FileObjRef;              // 0: none
    public int SharedMemoryObjRef;      // SharedAnon: the SHARED_MEMORY object it shows from page VmPgoff; else 0
    public ulong PagesPopulated;        // pages with contents per the page map, >= the pages in the chunks
}

/// <summary>
/// A chunk of saved pages: trailing bytes are PageCount u64 addresses, then PageCount
/// pages of contents (HeaderRecord.PageSize each). PageCount = 0 ends the VMA.
/// </summary>
[ImageRecord(RecordType.PageArray)]
public partial struct PageArrayRecord
{
    public const int MaxPagesPerChunk = 1024;

    public uint PageCount;
    public uint Reserved;
}

/// <summary>membarrier(2) registrations, as MEMBARRIER_CMD_GET_REGISTRATIONS reports them: the REGISTER command bits.</summary>
[Flags]
public enum MembarrierRegistrations : uint
{
    None = 0,
    GlobalExpedited = 1 << 2,            // MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED
    PrivateExpedited = 1 << 4,           // MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED
    PrivateExpeditedSyncCore = 1 << 6,   // MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE
    PrivateExpeditedRseq = 1 << 8,       // MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ
}

/// <summary>
/// The membarrier(2) registrations of an mm (the .NET runtime registers PRIVATE_EXPEDITED for its
/// FlushProcessWriteBuffers), after the MM's last VMA; written only when there is one. Without it a
/// restored process's MEMBARRIER_CMD_PRIVATE_EXPEDITED fails with EPERM. The restore registers each
/// bit again in the new process.
/// </summary>
[ImageRecord(RecordType.Membarrier)]
public partial struct MembarrierRecord
{
    public const MembarrierRegistrations Known = MembarrierRegistrations.GlobalExpedited | MembarrierRegistrations.PrivateExpedited
        | MembarrierRegistrations.PrivateExpeditedSyncCore | MembarrierRegistrations.PrivateExpeditedRseq;

    public int MmObjRef;                               // the MM record's objref
    public MembarrierRegistrations Registrations;      // non-zero, only Known bits
}

/// <summary>
/// Pages of a private VMA (Anon or File) of a child process that it still shared copy-on-write with
/// its parent at checkpoint time (the same physical page at the same address: one PFN in both
/// /proc/PID/pagemap), stored once, with the parent: trailing bytes are PageCount u64 addresses,
/// increasing, inside the VMA, no contents. The page at each address is whatever the parent process
/// (the task table's ppid, an earlier process of the image) has at that address once its memory is
/// restored; its VMA there must be private too. Written right after the VMA record, before its
/// PAGE_ARRAY chunks (which hold none of these addresses); together at most PagesPopulated pages.
/// </summary>
[ImageRecord(RecordType.InheritedPages)]
public partial struct InheritedPagesRecord
{
    public const uint MaxPages = 16384;   // 128 KiB of addresses per record

    public uint PageCount;
    [TrailingBytes] public uint AddressBytes;   // PageCount * 8
}
