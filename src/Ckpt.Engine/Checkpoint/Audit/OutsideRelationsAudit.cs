using System.Globalization;
using Ckpt.Engine.Linux;

namespace Ckpt.Engine.Checkpoint.Audit;

/// <summary>
/// Relations with processes outside the checkpoint, found in one pass over /proc before the freeze:
/// a process sharing the target's memory (clone with CLONE_VM but without CLONE_THREAD, or a vfork
/// child not yet exec'ed) could change the code the engine injects and the memory being saved, and
/// would lose its sharer on restore (kcmp KCMP_VM); a thread the target
/// traces (PTRACE_ATTACH/SEIZE) would lose its tracer (TracerPid of every thread outside the tree); a
/// descriptor table or fs information shared with a process outside (kcmp KCMP_FILES, KCMP_FS) would
/// come back unshared.
/// Processes the engine may not inspect (kcmp or status refused) cannot be judged and are skipped.
/// Once the target is frozen neither relation can be created by it, except a new CLONE_VM child, which
/// is a child of the frozen tree and saved with it (Checkpoint/TreeSharing). Memory shared by two
/// processes of the tree is kept, but not a vfork in progress (<see cref="VforkAudit"/>).
/// </summary>
public static class OutsideRelationsAudit
{
    /// <summary>
    /// One pass over /proc for the whole tree (the processes and their threads): each other process is
    /// looked up among the tree's address spaces, descriptor tables and fs information (<see cref="KcmpIndex"/>:
    /// a few kcmp calls each, not one per process of the tree), and its threads' tracers are read once, so a
    /// tree of N processes costs one scan, not N.
    /// </summary>
    public static void Check(IReadOnlyDictionary<int, List<int>> threadsByProcess)
    {
        var processOfThread = new Dictionary<int, int>();
        foreach ((int pid, List<int> tids) in threadsByProcess)
            foreach (int tid in tids) processOfThread[tid] = pid;
        // A failed kcmp (a process the engine may not inspect, or gone) is "not shared", as it always was.
        KcmpIndex Index(int type)
        {
            var index = new KcmpIndex(type, (a, b) => Native.kcmp(a, b, type, 0, 0) == 0);
            foreach (int pid in threadsByProcess.Keys) index.Add(pid);
            return index;
        }
        KcmpIndex vm = Index(Native.KCMP_VM), files = Index(Native.KCMP_FILES), fs = Index(Native.KCMP_FS);
        // Memory shared within the tree is kept (Checkpoint/TreeSharing), but not a vfork in progress.
        foreach (IReadOnlyList<int> sharers in vm.Groups.Where(g => g.Count > 1))
            foreach (int pid in sharers)
                foreach (int other in sharers)
                    if (other != pid && !IsKernelThread(other)) VforkAudit.Refuse(pid, other);
        foreach (int other in ProcText.ListNumbers("/proc"))
        {
            if (!threadsByProcess.ContainsKey(other))
            {
                // A kernel thread has no memory, and neither has a process that is exiting: equal, but not shared.
                foreach (int pid in vm.Find(other) ?? [])
                {
                    if (!IsKernelThread(other) && ProcStat.IsZombie(pid) == false && HasMemory(pid))
                        throw new CheckpointRefusedException($"process {other} shares the memory of process {pid} (clone with CLONE_VM but not CLONE_THREAD, or vfork; kcmp KCMP_VM): a process outside the checkpoint could change it, refused");
                }
                RefuseSharedOutside(files.Find(other), other, "descriptor table (CLONE_FILES");
                RefuseSharedOutside(fs.Find(other), other, "fs information (CLONE_FS: cwd, root, umask");
                CheckTraced(other, processOfThread);
            }
            // A thread of the tree traced by anyone, a thread of the tree included, is refused by its process's own
            // audit (ThreadStateAudit.RefuseTracer), judged before this scan: its status is not read again here.
        }
    }

    // A descriptor table or fs information shared with a process outside the tree (clone with CLONE_FILES or
    // CLONE_FS) would come back unshared: that process would no longer see the tree's opens, closes, chdirs.
    private static void RefuseSharedOutside(IReadOnlyList<int>? sharers, int other, string what)
    {
        foreach (int pid in sharers ?? [])
        {
            if (!IsKernelThread(other) && ProcStat.IsZombie(pid) == false)
                throw new CheckpointRefusedException($"process {pid} shares its {what}; kcmp) with process {other}, outside the checkpointed tree: the sharing would be lost by a restore, refused");
        }
    }

    private const long PF_KTHREAD = 0x00200000;

    private static bool IsKernelThread(int pid)
    {
        try { return (ProcStat.Read(pid).Field(9) & PF_KTHREAD) != 0; }
        catch (IOException) { return true; } // gone: nothing shared
    }

    // An exiting process has dropped its mm already (its maps read empty).
    private static bool HasMemory(int pid)
    {
        try { return new FileInfo($"/proc/{pid}/exe").LinkTarget is not null; }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return true; }
    }

    private static void CheckTraced(int other, Dictionary<int, int> processOfThread)
    {
        List<int> tids;
        try { tids = ProcText.ListNumbers($"/proc/{other}/task"); }
        catch (IOException) { return; } // gone
        catch (UnauthorizedAccessException) { return; }
        foreach (int tid in tids)
        {
            string thread = $"/proc/{other}/task/{tid}";
            int tracer = TracerOf(thread);
            if (tracer != 0 && processOfThread.TryGetValue(tracer, out int pid))
                throw new CheckpointRefusedException($"thread {tracer} of process {pid} traces thread {Path.GetFileName(thread)} of process {other} (TracerPid in {thread}/status): ptrace relationships are not checkpointed");
        }
    }

    // The TracerPid line alone, without parsing the whole status file.
    private static int TracerOf(string threadDirectory)
    {
        try
        {
            string status = ProcText.ReadAllText($"{threadDirectory}/status");
            foreach (Range range in ProcText.LineRanges(status))
            {
                ReadOnlySpan<char> line = status.AsSpan()[range];
                if (line.StartsWith("TracerPid:", StringComparison.Ordinal))
                    return int.Parse(line[10..].Trim(), CultureInfo.InvariantCulture);
            }
        }
        catch (IOException) { } // exited meanwhile
        catch (UnauthorizedAccessException) { }
        return 0;
    }
}
