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
    }

    private static void RefuseShared(int parent, int child, int kcmpType, string what)
    {
        int order = Native.kcmp(parent, child, kcmpType, 0, 0);
        if (order < 0) throw new SyscallException("kcmp", Native.LastErrno, child, $"comparing the {what} of processes {parent} and {child}");
        if (order == 0)
            throw new CheckpointRefusedException($"process {child} shares its {what} with its parent {parent}: not checkpointed yet");
    }
}
