using System.Text;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Checkpoint.Audit;
using Ckpt.Engine.Files;
using Ckpt.Engine.Linux;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Memory;

/// <summary>
/// The address space: MM (fields from /proc/PID/stat, brk by injection, auxv), then per VMA from
/// smaps its FILE (first use), VMA and page chunks. Pages with contents come from PAGEMAP_SCAN:
/// for private mappings only the pages the process itself wrote (anonymous, not the zero page),
/// for shared anonymous memory each page of the object once in the tree (<see cref="SharedMemoryObjects"/>),
/// for shared file mappings none (the file holds them; a memfd's or deleted file's contents go with its
/// file object, UnlinkedFileMappings), for [vdso]/[vvar]/[vsyscall] none. Contents stream in chunks of at most
/// PageArrayRecord.MaxPagesPerChunk pages through one reused buffer, so engine memory stays bounded.
/// </summary>
public sealed class MemoryCheckpoint
{
    private readonly int _pid;
    private readonly List<VmaPlanned> _vmas;

    private MemoryCheckpoint(int pid, List<VmaPlanned> vmas) => (_pid, _vmas) = (pid, vmas);

    /// <param name="Inherited">pages still shared copy-on-write with the parent at the same addresses (InheritedPages)</param>
    /// <param name="Unlinked">a memfd or deleted file (UnlinkedFileMappings), written with its first use</param>
    private sealed record VmaPlanned(MapsEntry Map, VmaRecord Record, FileRecord? NewFile, string? FilePath, List<(ulong Start, ulong End)> Pages, List<ulong> Inherited)
    {
        public IInspectedFile? Unlinked { get; init; }
    }

    public long TotalPages => _vmas.Sum(v => (long)v.Record.PagesPopulated);

    /// <summary>Reads smaps and selects pages; refuses mappings it cannot describe, before any write.</summary>
    /// <param name="parentInTree">its parent, when the image holds the parent's memory before its own: pages still shared with it are inherited</param>
    public static MemoryCheckpoint Inspect(int pid, ObjectTable objRefs, int? parentInTree = null) => Inspect(Read(pid, parentInTree), objRefs);

    /// <summary>
    /// The /proc part of <see cref="Inspect(int, ObjectTable, int?)"/>: smaps with the mapping audit, the mapped files'
    /// identities, the pages PAGEMAP_SCAN finds and those inherited from the parent. It takes no object reference,
    /// so it may run on another thread ahead of the inspection in tree order (<see cref="MemoryPrefetch"/>).
    /// </summary>
    public static MemoryReading Read(int pid, int? parentInTree)
    {
        using InheritedPages.PagemapPair? pagemaps = parentInTree is int parent ? new InheritedPages.PagemapPair(pid, parent) : null;
        using PageScan scan = PageScan.Open(pid);
        var vmas = new List<MemoryReading.Vma>();
        // A program or library is mapped in four or five pieces: its file is looked at once (same device, inode and name).
        var files = new Dictionary<(string Device, ulong Inode, string Name), Native.Stat>();
        foreach (MapsEntry map in ProcMaps.ReadSmaps(pid))
        {
            MappingAudit.Check(pid, map);
            VmaType type = TypeOf(map);
            Native.Stat? stat = null;
            if (type is VmaType.File or VmaType.SharedFile)
            {
                if (!files.TryGetValue((map.Device, map.Inode, map.Name), out Native.Stat identity))
                    files[(map.Device, map.Inode, map.Name)] = identity = Native.StatOrThrow($"/proc/{pid}/map_files/{map.Start:x}-{map.End:x}", pid);
                stat = identity;
            }
            // Shared anonymous pages are each object's, found with its object reference (SharedMemoryObjects).
            List<(ulong Start, ulong End)> pages = type is VmaType.Anon or VmaType.File ? scan.Populated(map.Start, map.End, anonymousOnly: true) : [];
            List<ulong> inherited = [];
            if (pagemaps is not null && pages.Count > 0) (inherited, pages) = InheritedPages.Split(pagemaps, pages);
            vmas.Add(new MemoryReading.Vma(map, type, stat, pages, inherited));
        }
        return new MemoryReading(pid, vmas);
    }

    /// <summary>The object references of a <see cref="Read"/>'s mappings, taken in tree order.</summary>
    public static MemoryCheckpoint Inspect(MemoryReading reading, ObjectTable objRefs)
    {
        int pid = reading.Pid;
        var files = new Dictionary<(ulong, ulong), int>();
        var vmas = new List<VmaPlanned>();
        foreach (var (map, type, stat, scanned, inherited) in reading.Vmas)
        {
            var record = new VmaRecord
            {
                VmStart = map.Start, VmEnd = map.End, VmPgoff = map.Offset / (ulong)Environment.SystemPageSize,
                VmFlags = map.VmFlags, VmaType = type, Protection = map.Protection,
            };
            FileRecord? newFile = null;
            IInspectedFile? unlinked = null;
            string? path = null;
            if (stat is Native.Stat identity)
            {
                path = map.Name;
                if (map.Name.EndsWith(" (deleted)", StringComparison.Ordinal))
                {
                    unlinked = objRefs.UnlinkedFiles.ForMapping(pid, map, identity, objRefs);
                    record.FileObjRef = unlinked.File.ObjRef;
                }
                else if (!files.TryGetValue((identity.Device, identity.Inode), out int objRef))
                {
                    objRef = objRefs.Next();
                    files[(identity.Device, identity.Inode)] = objRef;
                    newFile = OpenFileRecords.Record(objRef, FileKind.Regular, identity, path, 0, 0);
                    record.FileObjRef = objRef;
                }
                else record.FileObjRef = objRef;
            }
            List<(ulong Start, ulong End)> pages = scanned;
            if (type == VmaType.SharedAnon)
                (record.SharedMemoryObjRef, pages) = objRefs.SharedMemory.Inspect(pid, map, objRefs.Next);
            record.PagesPopulated = (ulong)(inherited.Count + pages.Sum(r => (long)((r.End - r.Start) / (ulong)Environment.SystemPageSize)));
            vmas.Add(new VmaPlanned(map, record, newFile, path, pages, inherited) { Unlinked = unlinked });
        }
        return new MemoryCheckpoint(pid, vmas);
    }

    /// <summary>
    /// About how many bytes the image of a process will take: its anonymous and shared memory
    /// from /proc/PID/smaps_rollup plus room for the records. Read before the freeze, so it only
    /// sizes memory; the checkpoint itself is driven by what PAGEMAP_SCAN finds.
    /// </summary>
    public static long EstimateImageBytes(int pid)
    {
        const long RecordsAllowance = 1 << 20;
        long kibibytes = 0;
        foreach (string line in File.ReadLines($"/proc/{pid}/smaps_rollup"))
        {
            if (!line.StartsWith("Anonymous:", StringComparison.Ordinal) && !line.StartsWith("Pss_Shmem:", StringComparison.Ordinal)) continue;
            string[] parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length >= 2 && long.TryParse(parts[1], out long value)) kibibytes += value;
        }
        return kibibytes * 1024 + RecordsAllowance;
    }

    private static VmaType TypeOf(MapsEntry map) => map.Name switch
    {
        "[vdso]" => VmaType.Vdso,
        "[vvar]" => VmaType.Vvar,
        "[vvar_vclock]" => VmaType.VvarVclock,
        "[vsyscall]" => VmaType.Vsyscall,
        _ when map.Inode == 0 => map.Shared ? VmaType.SharedAnon : VmaType.Anon,
        // MAP_SHARED|MAP_ANONYMOUS shows as "/dev/zero (deleted)", SysV segments as "/SYSV...".
        _ when map.Shared && (map.Name.StartsWith("/dev/zero", StringComparison.Ordinal) || map.Name.StartsWith("/SYSV", StringComparison.Ordinal)) => VmaType.SharedAnon,
        _ when map.Shared => VmaType.SharedFile,
        _ => VmaType.File,
    };

    /// <summary>MM, then every VMA with its pages. <paramref name="progress"/> gets pages done so far.</summary>
    public unsafe void Write(ImageWriter writer, int mmObjRef, ProcStat stat, ulong brk, SharedMemoryObjects sharedMemory, Action<long> progress)
    {
        var mm = new MmRecord
        {
            ObjRef = mmObjRef, VmaCount = _vmas.Count,
            StartCode = stat.UnsignedField(26), EndCode = stat.UnsignedField(27), StartStack = stat.UnsignedField(28),
            StartData = stat.UnsignedField(45), EndData = stat.UnsignedField(46), StartBrk = stat.UnsignedField(47), Brk = brk,
            ArgStart = stat.UnsignedField(48), ArgEnd = stat.UnsignedField(49), EnvStart = stat.UnsignedField(50), EnvEnd = stat.UnsignedField(51),
        };
        ulong[] auxv = ProcAuxv.Read(_pid);
        if (auxv.Length > MmRecord.AuxvCapacity)
            throw new CheckpointRefusedException($"process {_pid} has {auxv.Length} auxv words, the image holds {MmRecord.AuxvCapacity}");
        mm.AuxvWords = (uint)auxv.Length;
        for (int i = 0; i < auxv.Length; i++) mm.SavedAuxv[i] = auxv[i];
        writer.Write(mm);

        using var pages = new PageStreamer(_pid, writer);
        long done = 0;
        foreach (VmaPlanned vma in _vmas)
        {
            if (vma.NewFile is { } file) writer.Write(file, Encoding.UTF8.GetBytes(vma.FilePath!));
            vma.Unlinked?.Write(writer); // only the first use writes it
            if (vma.Record.SharedMemoryObjRef != 0) sharedMemory.WriteIfFirstUse(writer, vma.Record.SharedMemoryObjRef);
            writer.Write(vma.Record);
            InheritedPages.Write(writer, vma.Inherited);
            progress(done += vma.Inherited.Count);
            // A missing page of a fresh anonymous mapping reads as zeros: an all-zero one need not be stored.
            bool dropZeroPages = vma.Record.VmaType is VmaType.Anon or VmaType.SharedAnon;
            pages.Write(vma.Pages, dropZeroPages, chunk => progress(done += chunk));
            writer.WritePageArrayEnd();
        }
    }
}
