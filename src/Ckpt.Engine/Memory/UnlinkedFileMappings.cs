using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Files;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Memory;

/// <summary>
/// A memfd or deleted file that is mapped (the .NET runtime's W^X double mapping: one memfd mapped
/// twice, read-write and read-execute; a shared-memory buffer whose descriptor was closed; a deleted
/// file still mapped private). One file object for its descriptor and every mapping of it: the
/// mappings' FILE objref is the descriptor's, and its contents are written once, with its first use
/// (<see cref="UnlinkedFileKind"/>; the memory section comes before the descriptor table, so that is
/// the first mapping). A mapped-only file is inspected through /proc/PID/map_files. Private mappings
/// keep their dirty pages as anonymous pages, as for any private file mapping.
/// Restore, in the memory stage: the file is created once with its contents, every mapping of it is
/// mmapped from it (a shared mapping the process could not make writable, without VM_MAYWRITE, from
/// a read-only reopen of it), then the seals are added; a descriptor of it gets that very file in
/// the files stage (<see cref="FileCreation.TryTakeMapped"/>), so writes through one view or the
/// descriptor are seen through the others.
/// Refused: a deleted file that still has other links, and an unlinked file held by more than one
/// process of the tree or through two open files (either would come back as separate files); held by a
/// descriptor table that processes share (CLONE_FILES) it may be mapped by one of them.
/// </summary>
public sealed class UnlinkedFileMappings
{
    // ---- checkpoint ----

    /// <summary>The unlinked files of a checkpoint, tree-wide, by (device, inode): who holds each and its object.</summary>
    public sealed class Registry
    {
        // Pid: the process whose descriptor table (or mapping) holds the file; Mapper: the one process mapping it (0: none yet).
        private readonly Dictionary<(ulong Device, ulong Inode), (int Pid, string Holder, IInspectedFile File, int Mapper)> _files = [];

        /// <summary>The process that owns (inspects) each process's descriptor table: itself unless it shares one (CLONE_FILES; TreeSharing).</summary>
        public Func<int, int> FileTableOwner { get; set; } = pid => pid;

        /// <summary>A descriptor's first use of an unlinked file (FilesCheckpoint, before the mappings are inspected).</summary>
        public void AddDescriptor(DescriptorInfo fd, IInspectedFile file)
        {
            string holder = $"fd {fd.Fd} of process {fd.Pid}";
            if (_files.TryGetValue((fd.Stat.Device, fd.Stat.Inode), out var earlier))
                throw new CheckpointRefusedException($"{holder} and {earlier.Holder} are two open files of one {What(fd.Target)} ({fd.Target}): restored they would be two files, unsupported");
            _files[(fd.Stat.Device, fd.Stat.Inode)] = (fd.Pid, holder, file, 0);
        }

        /// <summary>The file object a mapping of an unlinked file uses: its descriptor's, an earlier mapping's, or a new one.</summary>
        public IInspectedFile ForMapping(int pid, MapsEntry map, in Native.Stat stat, ObjectTable objRefs)
        {
            string where = $"0x{map.Start:x}-0x{map.End:x}";
            if (stat.LinkCount != 0)
                throw new CheckpointRefusedException($"process {pid} maps at {where} a deleted name of a file that still has {stat.LinkCount} other links ({map.Name}): unsupported");
            if (_files.TryGetValue((stat.Device, stat.Inode), out var known))
            {
                // Held by a descriptor table this process shares (CLONE_FILES) it is one file: the mapper's memory
                // stage makes it and parks it in that table, whose owner's files stage takes it. Mapped by two
                // processes it would be two files (each memory stage makes its own).
                bool sameTable = known.Pid == pid || known.Pid == FileTableOwner(pid);
                if (!sameTable || (known.Mapper != 0 && known.Mapper != pid))
                {
                    string others = known.Mapper != 0 && known.Mapper != known.Pid ? $"{known.Holder} holds and process {known.Mapper} maps" : $"{known.Holder} holds";
                    throw new CheckpointRefusedException($"process {pid} maps at {where} the {What(map.Name)} {map.Name} that {others} too: unlinked files shared between processes are not checkpointed yet (only a shared descriptor table's file mapped by one of its sharers)");
                }
                _files[(stat.Device, stat.Inode)] = known with { Mapper = pid };
                return known.File;
            }
            IInspectedFile file = UnlinkedFileKind.InspectMapped(pid, map, stat, objRefs.Next());
            _files[(stat.Device, stat.Inode)] = (pid, $"the mapping at {where} of process {pid}", file, pid);
            return file;
        }

        private static string What(string name) => name.StartsWith("/memfd:", StringComparison.Ordinal) ? "memfd" : "deleted file";
    }

    // ---- restore ----

    private const ulong MAP_SHARED = 0x01, MAP_PRIVATE = 0x02, MAP_FIXED_NOREPLACE = 0x100000;
    private const ulong VM_MAYWRITE = 0x20, F_DUPFD_CLOEXEC = 1030;
    private const uint O_RDONLY = 0;

    private readonly SyscallInjector _syscalls;
    private readonly RestorePlan _plan;
    private readonly ScratchArea _scratch;
    private readonly Dictionary<int, long> _made = []; // file objref -> the file, open O_RDWR in the task

    public UnlinkedFileMappings(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch) => (_syscalls, _plan, _scratch) = (syscalls, plan, scratch);

    /// <summary>Is this VMA a mapping of a memfd or deleted file (whose contents the image holds).</summary>
    public static bool Maps(VmaImage vma) => vma.File?.Unlinked is not null;

    /// <summary>Before any process exists: the file's kind accepts it (owner among the image's credentials, a deleted file's directory still there).</summary>
    public static void Validate(VmaImage vma, RestorePlan plan) =>
        KindOf(vma.File!).Validate(vma.File!, $"the mapping at 0x{vma.Record.VmStart:x}", plan);

    private static UnlinkedFileKind KindOf(FileImage file) => DescriptorKinds.All.OfType<UnlinkedFileKind>().First(k => k.Restores(file));

    /// <summary>mmap of the VMA from its file, made on the first mapping of it.</summary>
    public void Map(VmaImage vma, ulong protection, string what)
    {
        FileImage file = vma.File!;
        string user = $"the mapping at 0x{vma.Record.VmStart:x}";
        if (!_made.TryGetValue(file.Record.ObjRef, out long made))
            _made[file.Record.ObjRef] = made = KindOf(file).CreateWithContents(_syscalls, _scratch, _plan, file, user);
        bool shared = vma.Record.VmaType == VmaType.SharedFile;
        // Mapped from a read-only open file, a shared mapping cannot be made writable: as it was.
        long source = shared && (vma.Record.VmFlags & VM_MAYWRITE) == 0 ? UnlinkedFileKind.Reopen(_syscalls, _scratch, file, made, O_RDONLY, user) : made;
        try
        {
            _syscalls.Call(what, SYS_mmap, vma.Record.VmStart, vma.Length, protection,
                (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED_NOREPLACE, (ulong)source, vma.Record.VmPgoff * (ulong)_plan.Header.PageSize);
        }
        finally
        {
            if (source != made) _syscalls.CallRaw(SYS_close, (ulong)source);
        }
    }

    /// <summary>
    /// Once every mapping exists: each file gets its seals, then is parked above the recorded descriptor
    /// numbers for the descriptor that uses it, or closed when none does. Returns file objref -> parked descriptor.
    /// </summary>
    public IReadOnlyDictionary<int, long> Finish()
    {
        var used = _plan.Descriptors.Select(d => d.FileObjRef).ToHashSet();
        var parked = new Dictionary<int, long>();
        foreach (var (objRef, made) in _made)
        {
            FileImage file = _plan.Vmas.First(v => v.File?.Record.ObjRef == objRef).File!;
            UnlinkedFileKind.AddSeals(_syscalls, file, made, "its mappings");
            if (used.Contains(objRef))
                parked[objRef] = _syscalls.Call($"fcntl(F_DUPFD_CLOEXEC) parking {file.Path} for its descriptor", SYS_fcntl, (ulong)made, F_DUPFD_CLOEXEC, (ulong)FilesRestore.ParkingFloor(_plan));
            _syscalls.Call($"close of {file.Path} made for its mappings", SYS_close, (ulong)made);
        }
        _made.Clear();
        return parked;
    }
}
