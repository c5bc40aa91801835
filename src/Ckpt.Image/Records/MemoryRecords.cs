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
    SharedAnon = 3,    // MAP_SHARED|MAP_ANONYMOUS, stored once per SharedMemoryObjRef
    SharedFile = 4,    // MAP_SHARED of a file: by reference, no contents
    Vdso = 5,
    Vvar = 6,
    VvarVclock = 7,
    Vsyscall = 8,
}

/// <summary>
/// One VMA. For File/SharedFile a FileRecord with FileObjRef precedes it (first use only).
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
    public int SharedMemoryObjRef;      // 0: none
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
