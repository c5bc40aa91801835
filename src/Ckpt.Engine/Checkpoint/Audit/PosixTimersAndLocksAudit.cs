using Ckpt.Engine.Files;

namespace Ckpt.Engine.Checkpoint.Audit;

/// <summary>
/// POSIX timers (timer_create) and file locks (flock, POSIX record locks, open-file-description locks)
/// are not saved yet: a process holding any is refused, naming it. When the descriptor-state work of
/// issue 11 saves them, this file and its calls (KernelStateAudit, DescriptorAudit) go.
/// </summary>
public static class PosixTimersAndLocksAudit
{
    public static void CheckTimers(int pid)
    {
        string file = $"/proc/{pid}/timers";
        string? id = File.ReadLines(file).FirstOrDefault(l => l.StartsWith("ID:", StringComparison.Ordinal));
        if (id is not null)
            throw new CheckpointRefusedException($"process {pid} has POSIX timers (timer_create; {id.Trim()} in {file}): not checkpointed yet");
    }

    /// <summary>fdinfo lists the locks held through the descriptor's open file (by this process, for POSIX locks).</summary>
    public static void CheckLocks(DescriptorInfo fd)
    {
        if (fd.FdInfo.Fields.TryGetValue("lock", out string? lockLine))
            throw new CheckpointRefusedException($"fd {fd.Fd} of process {fd.Pid} ({fd.Target}) holds a file lock ({lockLine} in /proc/{fd.Pid}/fdinfo/{fd.Fd}): file locks are not checkpointed yet");
    }
}
