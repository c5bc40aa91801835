using Ckpt.Engine.Linux;
using Ckpt.Engine.Tasks;

namespace Ckpt.Engine.Checkpoint;

/// <summary>
/// What processes of one tree share, found once every process is frozen and before anything is written.
/// Descriptor tables (CLONE_FILES), fs information (CLONE_FS), address spaces (CLONE_VM without
/// CLONE_THREAD) and signal handlers (CLONE_SIGHAND, only ever with CLONE_VM) shared by processes of the
/// tree are kept (<see cref="SharedTables"/>: the first sharer in tree order writes the object, the others
/// refer to it by OBJREF), unless the restore could not fork the sharers that way (refused by name).
/// (Open file descriptions shared by processes are supported:
/// <see cref="Files.FileDescriptions"/>; shared anonymous memory too: <see cref="Memory.SharedMemoryObjects"/>.)
/// Sharing with a process outside the tree is refused before the freeze (Audit/OutsideRelationsAudit).
/// </summary>
public static class TreeSharing
{
    /// <summary>The address spaces and signal handlers processes share (kcmp), which <see cref="Find"/> takes.</summary>
    public static MemorySharing MemoryOwners(IReadOnlyList<FrozenProcess> processes)
    {
        var (vm, sighand) = SharedTables.MemoryOwners(processes.Where(p => !p.IsZombie).Select(p => p.Pid).ToList());
        return new MemorySharing(vm, sighand);
    }

    /// <param name="memory">the processes' <see cref="MemoryOwners"/>, found first so that their memory can be read ahead meanwhile</param>
    public static TreeObjectsSharing Find(IReadOnlyList<FrozenProcess> processes, MemorySharing memory)
    {
        var live = processes.Where(p => !p.IsZombie).ToList();
        RefuseMemorySharedOutside(live);
        var pids = live.Select(p => p.Pid).ToList();
        var (fileTables, fs) = SharedTables.Owners(pids);
        var (vm, sighand) = (memory.Vm, memory.Sighand);
        var members = live.Select(p => new TreeMember(p.Pid, p.ParentPid, (int)ProcStat.Read(p.Pid).Field(6), fileTables[p.Pid], fs[p.Pid], vm[p.Pid], sighand[p.Pid])).ToList();
        try { SharedTables.Plan(members); }
        catch (SharingNotCreatableException e) { throw new CheckpointRefusedException(e.Message); }
        return new TreeObjectsSharing(fileTables, fs, vm, sighand);
    }

    /// <summary>
    /// Shared anonymous memory the tree maps and a process outside it maps too: the restored tree would
    /// get its own copy, no longer shared with that process. Found by the shmem inode in /proc/PID/maps of
    /// every other process (only when the tree maps any); processes the engine may not read are skipped.
    /// </summary>
    private static void RefuseMemorySharedOutside(List<FrozenProcess> live)
    {
        var ours = new Dictionary<ulong, (int Pid, ulong Start)>();
        foreach (FrozenProcess process in live)
            foreach (MapsEntry map in SharedAnonymousMappings(process.Pid))
                ours.TryAdd(map.Inode, (process.Pid, map.Start));
        if (ours.Count == 0) return;
        var inTree = live.Select(p => p.Pid).ToHashSet();
        foreach (int other in ProcText.ListNumbers("/proc"))
        {
            if (inTree.Contains(other)) continue;
            IReadOnlyList<MapsEntry> maps;
            try { maps = SharedAnonymousMappings(other); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; } // gone, or not ours to read
            foreach (MapsEntry map in maps)
            {
                if (ours.TryGetValue(map.Inode, out var mapper))
                    throw new CheckpointRefusedException($"process {mapper.Pid} maps shared anonymous memory at 0x{mapper.Start:x} (inode {map.Inode}) that process {other}, outside the checkpointed tree, maps too (at 0x{map.Start:x}): it would no longer be shared after a restore");
            }
        }
    }

    // Only the lines naming /dev/zero are parsed (every process of the machine is read).
    private static List<MapsEntry> SharedAnonymousMappings(int pid)
    {
        string text = ProcText.ReadAllText($"/proc/{pid}/maps");
        var found = new List<MapsEntry>();
        foreach (Range range in ProcText.LineRanges(text))
        {
            if (!text.AsSpan()[range].Contains("/dev/zero", StringComparison.Ordinal)) continue;
            MapsEntry map = ProcMaps.ParseHeader(text[range]);
            if (IsSharedAnonymous(map)) found.Add(map);
        }
        return found;
    }

    private static bool IsSharedAnonymous(MapsEntry map) =>
        map.Shared && map.Inode != 0 && map.Name.StartsWith("/dev/zero", StringComparison.Ordinal);
}

/// <summary>Which process of the tree owns (writes) each process's descriptor table, fs information, memory and signal handlers: the first sharer in tree order.</summary>
/// <summary>Address spaces and signal handlers shared in the tree: process -> the first sharer in tree order.</summary>
public sealed record MemorySharing(IReadOnlyDictionary<int, int> Vm, IReadOnlyDictionary<int, int> Sighand)
{
    public int VmOwner(int pid) => Vm.GetValueOrDefault(pid, pid);
}

public sealed class TreeObjectsSharing(IReadOnlyDictionary<int, int> fileTableOwners, IReadOnlyDictionary<int, int> fsOwners,
    IReadOnlyDictionary<int, int> vmOwners, IReadOnlyDictionary<int, int> sighandOwners)
{
    public static readonly TreeObjectsSharing None = new(new Dictionary<int, int>(), new Dictionary<int, int>(), new Dictionary<int, int>(), new Dictionary<int, int>());

    public int VmOwner(int pid) => vmOwners.GetValueOrDefault(pid, pid);

    public int SighandOwner(int pid) => sighandOwners.GetValueOrDefault(pid, pid);

    public int FileTableOwner(int pid) => fileTableOwners.GetValueOrDefault(pid, pid);

    public int FsOwner(int pid) => fsOwners.GetValueOrDefault(pid, pid);

    /// <summary>Its fs information is another process's too (an FS record or OBJREF in its section).</summary>
    public bool SharesFs(int pid) => fsOwners.Count(o => o.Value == FsOwner(pid)) > 1;
}
