using Ckpt.Image.Records;

namespace Ckpt.Image.Model;

/// <summary>
/// One process of an image's tree, as `ckpt show` and Get-CkptImage list them. State: "zombie" (exited,
/// not reaped), "stopped" (by job control: SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU), "sleeping" (every thread
/// was inside a system call at the checkpoint) or "running".
/// Depth is 0 for the root, 1 for its children, and so on.
/// </summary>
public sealed record TreeEntry(int Pid, int Ppid, int Pgid, int Sid, string State, string Name, int Threads, int Depth, int? ExitStatus);

public static class ProcessTree
{
    /// <summary>Every process of the image, live and zombie, in tree order (the task table's).</summary>
    public static IReadOnlyList<TreeEntry> Of(ImageModel image)
    {
        var live = image.Processes.ToDictionary(p => p.Pid);
        var zombies = image.Zombies.ToDictionary(z => z.Pid);
        var depth = new Dictionary<int, int>();
        var entries = new List<TreeEntry>();
        foreach (TaskIdsRecord ids in image.TaskTable.Where(t => t.Pid == t.Tgid))
        {
            int level = depth.TryGetValue(ids.Ppid, out int parentDepth) && entries.Count > 0 ? parentDepth + 1 : 0;
            depth[ids.Pid] = level;
            if (zombies.TryGetValue(ids.Pid, out ZombieImage? zombie))
            {
                entries.Add(new TreeEntry(ids.Pid, ids.Ppid, ids.Pgid, ids.Sid, "zombie", Name(zombie.Task), 0, level, zombie.ExitStatus));
                continue;
            }
            ProcessImage process = live[ids.Pid];
            bool sleeping = process.Threads.All(t => t.Thread.SyscallState != SyscallState.NotInSyscall);
            string state = process.JobControlStop is not null ? "stopped" : sleeping ? "sleeping" : "running";
            entries.Add(new TreeEntry(ids.Pid, ids.Ppid, ids.Pgid, ids.Sid, state, Name(process.Task), process.Threads.Count, level, null));
        }
        return entries;
    }

    /// <summary>A wait status in words: "exit 7", "killed by signal 9", "killed by signal 11 (core dumped)".</summary>
    public static string DescribeExit(int status) => (status & 0x7f) == 0
        ? $"exit {(status >> 8) & 0xff}"
        : $"killed by signal {status & 0x7f}{((status & 0x80) != 0 ? " (core dumped)" : "")}";

    private static unsafe string Name(TaskRecord task) => RecordText.CString(task.Comm, 16);
}
