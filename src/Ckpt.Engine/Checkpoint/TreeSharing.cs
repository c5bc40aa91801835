using Ckpt.Engine.Linux;

namespace Ckpt.Engine.Checkpoint;

/// <summary>
/// What processes of one tree may share and the image cannot describe yet, refused before anything
/// is written: memory (CLONE_VM, vfork), a descriptor table (CLONE_FILES), fs information
/// (CLONE_FS) or signal handlers (CLONE_SIGHAND) shared between processes, and one shared anonymous
/// memory object mapped by several processes. Each would come back as separate copies, silently
/// unshared. (Open file descriptions shared by processes are supported: <see cref="Files.FileDescriptions"/>.)
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
        var sharedMemory = new Dictionary<ulong, int>();
        foreach (FrozenProcess process in live)
        {
            foreach (MapsEntry map in ProcMaps.Read(process.Pid).Where(IsSharedAnonymous))
            {
                if (sharedMemory.TryGetValue(map.Inode, out int other) && other != process.Pid)
                    throw new CheckpointRefusedException($"process {process.Pid} maps shared anonymous memory at 0x{map.Start:x} that process {other} maps too (inode {map.Inode}): shared memory between processes is not checkpointed yet");
                sharedMemory[map.Inode] = process.Pid;
            }
        }
    }

    private static bool IsSharedAnonymous(MapsEntry map) =>
        map.Shared && map.Inode != 0 && (map.Name.StartsWith("/dev/zero", StringComparison.Ordinal) || map.Name.StartsWith("/SYSV", StringComparison.Ordinal));

    private static void RefuseShared(int parent, int child, int kcmpType, string what)
    {
        int order = Native.kcmp(parent, child, kcmpType, 0, 0);
        if (order < 0) throw new SyscallException("kcmp", Native.LastErrno, child, $"comparing the {what} of processes {parent} and {child}");
        if (order == 0)
            throw new CheckpointRefusedException($"process {child} shares its {what} with its parent {parent}: not checkpointed yet");
    }
}
