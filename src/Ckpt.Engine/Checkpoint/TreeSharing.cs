using Ckpt.Engine.Linux;
using Ckpt.Engine.Tasks;

namespace Ckpt.Engine.Checkpoint;

/// <summary>
/// What processes of one tree share, found once every process is frozen and before anything is written.
/// Descriptor tables (CLONE_FILES) and fs information (CLONE_FS) shared by processes of the tree are kept
/// (<see cref="SharedTables"/>: the first sharer in tree order writes the object, the others refer to it),
/// unless the restore could not fork the sharers that way (refused by name). Refused: memory shared by
/// processes (CLONE_VM, vfork), and with it signal handlers (CLONE_SIGHAND requires CLONE_VM), which would
/// come back as separate copies. (Open file descriptions shared by processes are supported:
/// <see cref="Files.FileDescriptions"/>; shared anonymous memory too: <see cref="Memory.SharedMemoryObjects"/>.)
/// Sharing with a process outside the tree is refused before the freeze (Audit/OutsideRelationsAudit).
/// </summary>
public static class TreeSharing
{
    public static TreeObjectsSharing Find(IReadOnlyList<FrozenProcess> processes)
    {
        var live = processes.Where(p => !p.IsZombie).ToList();
        foreach (FrozenProcess child in live)
        {
            if (!live.Any(p => p.Pid == child.ParentPid)) continue;
            RefuseShared(child.ParentPid, child.Pid, Native.KCMP_VM, "memory (CLONE_VM or vfork)");
            // Never reached without the memory refusal above (clone refuses CLONE_SIGHAND without CLONE_VM),
            // kept so that a kernel that allowed it would still not lose the sharing silently.
            RefuseShared(child.ParentPid, child.Pid, Native.KCMP_SIGHAND, "signal handlers (CLONE_SIGHAND)");
        }
        RefuseMemorySharedOutside(live);
        var (fileTables, fs) = SharedTables.Owners(live.Select(p => p.Pid).ToList());
        var members = live.Select(p => new TreeMember(p.Pid, p.ParentPid, (int)ProcStat.Read(p.Pid).Field(6), fileTables[p.Pid], fs[p.Pid])).ToList();
        try { SharedTables.Plan(members); }
        catch (SharingNotCreatableException e) { throw new CheckpointRefusedException(e.Message); }
        return new TreeObjectsSharing(fileTables, fs);
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
            foreach (MapsEntry map in ProcMaps.Read(process.Pid).Where(IsSharedAnonymous))
                ours.TryAdd(map.Inode, (process.Pid, map.Start));
        if (ours.Count == 0) return;
        var inTree = live.Select(p => p.Pid).ToHashSet();
        foreach (string entry in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(entry), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int other) || inTree.Contains(other)) continue;
            IReadOnlyList<MapsEntry> maps;
            try { maps = ProcMaps.Read(other); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; } // gone, or not ours to read
            foreach (MapsEntry map in maps.Where(IsSharedAnonymous))
            {
                if (ours.TryGetValue(map.Inode, out var mapper))
                    throw new CheckpointRefusedException($"process {mapper.Pid} maps shared anonymous memory at 0x{mapper.Start:x} (inode {map.Inode}) that process {other}, outside the checkpointed tree, maps too (at 0x{map.Start:x}): it would no longer be shared after a restore");
            }
        }
    }

    private static bool IsSharedAnonymous(MapsEntry map) =>
        map.Shared && map.Inode != 0 && map.Name.StartsWith("/dev/zero", StringComparison.Ordinal);

    private static void RefuseShared(int parent, int child, int kcmpType, string what)
    {
        int order = Native.kcmp(parent, child, kcmpType, 0, 0);
        if (order < 0) throw new SyscallException("kcmp", Native.LastErrno, child, $"comparing the {what} of processes {parent} and {child}");
        if (order == 0)
            throw new CheckpointRefusedException($"process {child} shares its {what} with its parent {parent}: not checkpointed yet");
    }
}

/// <summary>Which process of the tree owns (writes) each process's descriptor table and fs information: the first sharer in tree order.</summary>
public sealed class TreeObjectsSharing(IReadOnlyDictionary<int, int> fileTableOwners, IReadOnlyDictionary<int, int> fsOwners)
{
    public static readonly TreeObjectsSharing None = new(new Dictionary<int, int>(), new Dictionary<int, int>());

    public int FileTableOwner(int pid) => fileTableOwners.GetValueOrDefault(pid, pid);

    public int FsOwner(int pid) => fsOwners.GetValueOrDefault(pid, pid);

    /// <summary>Its fs information is another process's too (an FS record or OBJREF in its section).</summary>
    public bool SharesFs(int pid) => fsOwners.Count(o => o.Value == FsOwner(pid)) > 1;
}
