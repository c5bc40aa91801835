using System.Globalization;
using Ckpt.Engine.Linux;

namespace Ckpt.Engine.Checkpoint.Audit;

/// <summary>
/// Memory shared by two processes of the tree is kept (Checkpoint/TreeSharing), but not a vfork: the parent
/// thread waits in the kernel (TASK_KILLABLE, in kernel_clone) until the child execs or exits, a wait that a
/// ptrace interrupt does not end (the freeze would hang) and that a restore cannot make. Found before the
/// freeze from /proc/PID/task/TID/syscall of every thread of both sharers: vfork(2), clone(2) with
/// CLONE_VFORK, or clone3(2) whose clone_args.flags (read from the task's memory) hold CLONE_VFORK.
/// </summary>
public static class VforkAudit
{
    private const int SYS_clone = 56, SYS_vfork = 58, SYS_clone3 = 435;
    private const ulong CLONE_VFORK = 0x4000;

    /// <summary>Refuses, naming both, when a thread of either process waits in a vfork.</summary>
    public static void Refuse(int pid, int sharer)
    {
        foreach (var (parent, child) in new[] { (pid, sharer), (sharer, pid) })
        {
            if (InVfork(parent) is int thread)
                throw new CheckpointRefusedException($"thread {thread} of process {parent} waits in a vfork for process {child}, which shares its memory until it execs or exits (/proc/{parent}/task/{thread}/syscall): a vfork is not checkpointed");
        }
    }

    private static int? InVfork(int pid)
    {
        IEnumerable<string> threads;
        try { threads = Directory.EnumerateDirectories($"/proc/{pid}/task").ToList(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; } // gone
        foreach (string thread in threads)
        {
            string[] fields;
            try { fields = File.ReadAllText($"{thread}/syscall").Split(' ', StringSplitOptions.RemoveEmptyEntries); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            if (fields.Length < 2 || !int.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out int number)) continue; // running
            ulong first = ulong.Parse(fields[1].AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            bool vfork = number switch
            {
                SYS_vfork => true,
                SYS_clone => (first & CLONE_VFORK) != 0,
                SYS_clone3 => (CloneArgsFlags(pid, first) & CLONE_VFORK) != 0,
                _ => false,
            };
            if (vfork) return int.Parse(Path.GetFileName(thread), CultureInfo.InvariantCulture);
        }
        return null;
    }

    private static ulong CloneArgsFlags(int pid, ulong address)
    {
        try { return BitConverter.ToUInt64(ProcessMemory.ReadExact(pid, address, sizeof(ulong))); }
        catch (SyscallException) { return CLONE_VFORK; } // unreadable: count it as a vfork, refused by name rather than a hung freeze
    }
}
