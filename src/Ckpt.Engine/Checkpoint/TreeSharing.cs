using Ckpt.Engine.Linux;

namespace Ckpt.Engine.Checkpoint;

/// <summary>
/// What processes of one tree may share and the image cannot describe yet, refused before anything
/// is written: memory (CLONE_VM, vfork), a descriptor table (CLONE_FILES), fs information
/// (CLONE_FS) or signal handlers (CLONE_SIGHAND) shared between processes. Each would come back as
/// separate copies, silently unshared. (Open file descriptions shared by processes are supported:
/// <see cref="Files.FileDescriptions"/>; shared anonymous memory too: <see cref="Memory.SharedMemoryObjects"/>.)
/// </summary>
public static class TreeSharing
{
    public static void Refuse(IReadOnlyList<FrozenProcess> processes)
    {
        var live = processes.Where(p => !p.IsZombie).ToList();
        foreach (FrozenProcess child in live)
        {
            if (!live.Any(p => p.Pid == child.ParentPid)) continue;
            RefuseShared(child.ParentPid, child.Pid, Native.KCMP_VM, "memory (CLONE_VM or vfork)");
            RefuseShared(child.ParentPid, child.Pid, Native.KCMP_FILES, "descriptor table (CLONE_FILES)");
            RefuseShared(child.ParentPid, child.Pid, Native.KCMP_FS, "fs information (CLONE_FS: cwd, root, umask)");
            RefuseShared(child.ParentPid, child.Pid, Native.KCMP_SIGHAND, "signal handlers (CLONE_SIGHAND)");
        }
        RefuseMemorySharedOutside(live);
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
