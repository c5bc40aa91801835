using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Memory;

/// <summary>
/// Shared anonymous memory objects (SHARED_MEMORY) at restore, for the whole tree. Before the
/// credentials stage (the tasks still have the engine's privilege), each process gets a "view" of
/// every object it maps: a mapping of the whole object at a spot neither the task nor its image uses.
/// The first process in tree order that maps an object creates it (mmap MAP_SHARED|MAP_ANONYMOUS of
/// the object's size, a shmem object as the original was); every later one opens the creator's view
/// through /proc/CREATOR/map_files/START-END (which needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN in
/// the task, hence this early stage) and maps that same object. In the memory stage each SharedAnon
/// VMA is made from the process's view by mremap(view + offset, 0, length, MREMAP_FIXED) (a new
/// mapping of the same object at the recorded address and page offset), the pages are written
/// through whichever VMA the image stored them with, and the views are unmapped.
/// </summary>
public sealed class SharedMemoryRestore
{
    private const ulong PROT_READ = 1, PROT_WRITE = 2;
    private const ulong MAP_SHARED = 0x01, MAP_ANONYMOUS = 0x20, MAP_NORESERVE = 0x4000, MAP_FIXED_NOREPLACE = 0x100000;
    private const ulong VM_NORESERVE = 0x200000;
    private const ulong MREMAP_MAYMOVE = 1, MREMAP_FIXED = 2;
    private const ulong O_RDWR = 2, O_CLOEXEC = 0x80000;
    private const ulong AT_FDCWD = unchecked((ulong)-100);

    /// <summary>Objref -> the creator and its view, for the processes that map the object after it.</summary>
    private readonly Dictionary<int, (int Pid, ulong Address)> _created = [];

    /// <summary>Pid -> objref -> the address of that process's view.</summary>
    private readonly Dictionary<int, Dictionary<int, ulong>> _views = [];

    /// <summary>
    /// Before any process exists: an object mapped by several processes needs the map_files step,
    /// which an unprivileged engine's tasks may not take (no CAP_CHECKPOINT_RESTORE of their own).
    /// </summary>
    public static void Validate(RestorePlan plan, bool callerIsRoot)
    {
        if (callerIsRoot) return;
        // A process sharing another's address space (CLONE_VM) maps nothing of its own: one view for both.
        var mappers = plan.Processes.Where(p => Tasks.SharedTables.RestoresMemory(plan.Image, p))
            .SelectMany(p => p.Memory.Vmas.Where(v => v.SharedMemory is not null).Select(v => (v.SharedMemory!.ObjRef, p.Pid)))
            .Distinct().GroupBy(x => x.ObjRef).FirstOrDefault(g => g.Count() > 1);
        if (mappers is not null)
            throw new RestoreRefusedException($"shared memory objref {mappers.Key} is mapped by processes {string.Join(", ", mappers.Select(m => m.Pid))}: "
                + "restoring memory shared between processes opens /proc/PID/map_files, which needs a restore by root");
    }

    /// <summary>The process's view of every object it maps, created by the first process that maps it.</summary>
    public void MakeViews(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch)
    {
        var views = _views[plan.Pid] = [];
        ulong pageSize = plan.Header.PageSize;
        foreach (IGrouping<int, VmaImage> vmas in plan.Vmas.Where(v => v.SharedMemory is not null).GroupBy(v => v.SharedMemory!.ObjRef))
        {
            SharedMemoryRecord record = vmas.First().SharedMemory!.Record;
            ulong length = record.SizePages * pageSize;
            ulong address = ScratchArea.FreeAddress(syscalls.Pid, plan.Vmas.Select(v => (v.Record.VmStart, v.Record.VmEnd)), length);
            // Charged against the commit limit at creation, as the original was unless it was MAP_NORESERVE.
            ulong noReserve = vmas.Any(v => (v.Record.VmFlags & VM_NORESERVE) != 0) ? MAP_NORESERVE : 0;
            if (!_created.TryGetValue(record.ObjRef, out var creator))
            {
                syscalls.Call($"mmap creating shared memory objref {record.ObjRef} ({record.SizePages} pages)", SYS_mmap,
                    address, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | noReserve, ulong.MaxValue, 0);
                _created[record.ObjRef] = (plan.Pid, address);
            }
            else
            {
                string path = $"/proc/{creator.Pid}/map_files/{creator.Address:x}-{creator.Address + length:x}";
                scratch.Reset();
                long fd = syscalls.Call($"openat of {path} (shared memory objref {record.ObjRef}, created by process {creator.Pid})", SYS_openat, AT_FDCWD, scratch.PutString(path), O_RDWR | O_CLOEXEC, 0);
                try
                {
                    syscalls.Call($"mmap of shared memory objref {record.ObjRef} from process {creator.Pid}", SYS_mmap,
                        address, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE | noReserve, (ulong)fd, 0);
                }
                finally
                {
                    syscalls.CallRaw(SYS_close, (ulong)fd);
                }
            }
            views[record.ObjRef] = address;
        }
    }

    /// <summary>A SharedAnon VMA: a new mapping of its object, from the process's view, at the recorded address and offset.</summary>
    public void Map(SyscallInjector syscalls, int pid, VmaImage vma, ulong protection)
    {
        VmaRecord record = vma.Record;
        if (!_views.TryGetValue(pid, out var views) || !views.TryGetValue(record.SharedMemoryObjRef, out ulong view))
            throw new InvalidOperationException($"process {pid} has no view of shared memory objref {record.SharedMemoryObjRef}");
        ulong source = view + record.VmPgoff * (ulong)Environment.SystemPageSize;
        syscalls.Call($"mremap mapping shared memory objref {record.SharedMemoryObjRef} at 0x{record.VmStart:x}", SYS_mremap, source, 0, vma.Length, MREMAP_MAYMOVE | MREMAP_FIXED, record.VmStart);
        syscalls.Call($"mprotect of {MemoryRestore.Describe(vma)}", SYS_mprotect, record.VmStart, vma.Length, protection);
    }

    /// <summary>After the process's memory: its views go (the VMAs keep the objects).</summary>
    public void RemoveViews(SyscallInjector syscalls, RestorePlan plan)
    {
        if (!_views.Remove(plan.Pid, out var views)) return;
        foreach (var (objRef, address) in views)
        {
            ulong length = plan.Vmas.First(v => v.SharedMemory?.ObjRef == objRef).SharedMemory!.Record.SizePages * plan.Header.PageSize;
            syscalls.Call($"munmap of the view of shared memory objref {objRef}", SYS_munmap, address, length);
        }
    }
}
