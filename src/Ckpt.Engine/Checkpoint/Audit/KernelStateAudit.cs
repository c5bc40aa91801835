using Ckpt.Engine.Files;
using Ckpt.Engine.Linux;

namespace Ckpt.Engine.Checkpoint.Audit;

/// <summary>
/// "Nothing lost silently" (docs/KERNEL-STATE.md): everything /proc
/// and the kernel expose about a process, its threads and its descriptors is either saved by the engine
/// or refused here with a <see cref="CheckpointRefusedException"/> naming the pid, the item and where it
/// was seen. <see cref="BeforeFreeze"/> runs before the target is seized, so a refused target never
/// stops; <see cref="WhileFrozen"/> repeats the per-process and per-thread checks on the frozen state
/// (what changed in between is caught there: nothing can change once every thread is stopped).
/// Descriptors and mappings are checked where they are inspected (<see cref="DescriptorAudit"/> from
/// FilesCheckpoint, <see cref="MappingAudit"/> from MemoryCheckpoint), which also runs before the
/// freeze as a dry run. State with no /proc source is probed by read-only injected calls
/// (<see cref="InjectedProbes"/>) while frozen; a refusal there leaves registers, mask and memory as they were.
/// </summary>
public static class KernelStateAudit
{
    /// <summary>Every check that needs no stop, on the running tree (the root and every live
    /// descendant); nothing of it changes. A descendant's refusal names it. The processes are audited on
    /// two threads (each on its own: nothing of one process's audit is shared with another's), and
    /// judged in tree order afterwards, so the refusal reported is the first in tree order, as one by one.</summary>
    public static void BeforeFreeze(int root)
    {
        List<int> tree;
        using (CheckpointProfile.Measure("audit/tree listed")) tree = TreeFreeze.LiveProcessesNow(root);
        // The scan of outside relations needs each process's threads only: in a tree it runs on the helper
        // thread beside the per-process audits, with threads it lists itself, and is judged after them.
        OutsideScan? outside = tree.Count > 1 ? new OutsideScan(tree) : null;
        var outcomes = AuditEach(tree, pid => BeforeFreezeOneSettled(pid, tree, root), outside is null ? null : outside.Run);
        var threadsByProcess = new Dictionary<int, List<int>>();
        for (int i = 0; i < tree.Count; i++)
        {
            int pid = tree[i];
            try
            {
                if (outcomes[i].Failure is { } failure) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
                threadsByProcess[pid] = outcomes[i].Threads!;
            }
            // A descendant that exits meanwhile (a shell's short-lived command) is simply not in the tree.
            catch (Exception e) when (e is IOException or SyscallException && pid != root && HasExited(pid)) { }
            catch (CheckpointRefusedException) when (pid != root && HasExited(pid)) { }
            catch (CheckpointRefusedException e) when (pid != root)
            {
                throw new CheckpointRefusedException($"descendant {pid} ('{ProcessNames.CommOf(pid)}') of process {root}: {e.Message}");
            }
        }
        // Threads that came or went meanwhile, or a descendant that exited: the scan again on what the audits saw.
        if (outside is null || !outside.Saw(threadsByProcess))
            using (CheckpointProfile.Measure("audit/outside relations")) OutsideRelationsAudit.Check(threadsByProcess);
        else if (outside.Failure is { } failure) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
    }

    /// <summary><see cref="OutsideRelationsAudit.Check"/> on the threads of the tree as listed when it starts.</summary>
    private sealed class OutsideScan(List<int> tree)
    {
        private readonly Dictionary<int, List<int>> _threads = [];

        public Exception? Failure { get; private set; }

        public void Run()
        {
            foreach (int pid in tree)
            {
                try { _threads[pid] = ThreadStateAudit.Threads(pid); }
                catch (Exception) { } // exited (or unreadable): the per-process audit tells, and the scan is made again
            }
            try
            {
                using (CheckpointProfile.Measure("audit/outside relations")) OutsideRelationsAudit.Check(_threads);
            }
            catch (Exception e) { Failure = e; }
        }

        /// <summary>Whether it scanned exactly these processes and threads.</summary>
        public bool Saw(Dictionary<int, List<int>> threadsByProcess) =>
            threadsByProcess.Count == _threads.Count
            && threadsByProcess.All(p => _threads.TryGetValue(p.Key, out List<int>? tids) && tids.Order().SequenceEqual(p.Value.Order()));
    }

    // Each process's audit on one of two threads (this one and a helper), taking the next process in tree
    // order as they go: each process's threads or its failure, by index. A tree of one process stays on this thread.
    // The helper first runs alongside, if any.
    private static (List<int>? Threads, Exception? Failure)[] AuditEach(List<int> tree, Func<int, List<int>> audit, Action? alongside = null)
    {
        var outcomes = new (List<int>?, Exception?)[tree.Count];
        int next = -1;
        void HelperWork()
        {
            alongside?.Invoke();
            Work();
        }
        void Work()
        {
            for (int i; (i = Interlocked.Increment(ref next)) < tree.Count;)
            {
                try { outcomes[i] = (audit(tree[i]), null); }
                catch (Exception e) { outcomes[i] = (null, e); }
            }
        }
        Thread? helper = tree.Count > 1 ? new Thread(HelperWork, 1 << 20) { Name = "ckpt-audit" } : null;
        helper?.Start();
        Work();
        helper?.Join();
        return outcomes;
    }

    /// <summary>
    /// A running descendant can change under the dry run: a shell's child between fork and exec closes
    /// and duplicates descriptors, so one listed in /proc/PID/fd can be gone when it is opened (ENOENT);
    /// a process in exit (PF_EXITING, not a zombie yet) may have released its memory and descriptors
    /// already (an empty coredump_filter). Such a process is inspected again a moment later; the root is
    /// not retried, and a process that keeps changing is reported as it is the last time.
    /// </summary>
    private static List<int> BeforeFreezeOneSettled(int pid, List<int> tree, int root)
    {
        const int Attempts = 8;
        for (int attempt = 1; ; attempt++)
        {
            try { return BeforeFreezeOne(pid, tree); }
            catch (Exception e) when (pid != root && attempt < Attempts && !HasExited(pid) && IsChanging(e, pid))
            {
                Thread.Sleep(attempt);
            }
        }
    }

    // A refusal is looked at again too: a child between fork and exec can show a descriptor whose link and
    // stat were read across its dup2 (a path that does not match the file). A real refusal repeats.
    private static bool IsChanging(Exception e, int pid) =>
        e is SyscallException { Errno: Errno.ENOENT } or CheckpointRefusedException
        || (e is IOException or SyscallException && ProcStat.IsExiting(pid));

    // Gone, or a zombie whose parent has not reaped it yet (its /proc/PID/fd is gone already).
    private static bool HasExited(int pid) => ProcStat.IsZombie(pid) != false;

    // Returns the process's threads, for the tree-wide scan of outside relations.
    private static List<int> BeforeFreezeOne(int pid, List<int> tree)
    {
        List<int> tids;
        // Each thread's status is read once for the checks below (this pass is a dry run: the frozen one reads again).
        Dictionary<int, ProcStatus?> statuses;
        using (CheckpointProfile.Measure("audit/threads and tracers"))
        {
            tids = ThreadStateAudit.Threads(pid);
            statuses = tids.ToDictionary(tid => tid, tid => ThreadStateAudit.StatusIfThere(pid, tid));
            foreach (int tid in tids) ThreadStateAudit.RefuseTracer(pid, tid, statuses[tid]);
        }
        using (CheckpointProfile.Measure("audit/process state")) ProcessStateAudit.Check(pid, statuses.GetValueOrDefault(pid));
        using (CheckpointProfile.Measure("audit/memory policies")) ProcessStateAudit.CheckMemoryPolicies(pid);
        using (CheckpointProfile.Measure("audit/thread state"))
            foreach (int tid in tids) ThreadStateAudit.CheckIfStillThere(pid, tid, statuses[tid]);
        using (CheckpointProfile.Measure("audit/smaps"))
            foreach (MapsEntry map in ProcMaps.ReadSmaps(pid)) MappingAudit.Check(pid, map);
        // The descriptor inspection itself, as a dry run: every kind's refusal, before the freeze.
        using (CheckpointProfile.Measure("audit/descriptors dry run"))
        {
            using var descriptions = new FileDescriptions(tree);
            FilesCheckpoint.Inspect(pid, new ObjectTable(), descriptions, dryRun: true);
        }
        return tids;
    }

    /// <summary>The same per-process and per-thread checks on the frozen threads (tracer and /proc-wide scans excepted).</summary>
    /// <param name="statuses">/proc/TID/status of each thread, read once frozen (the leader's is the process's)</param>
    public static void WhileFrozen(int pid, IReadOnlyDictionary<int, ProcStatus> statuses)
    {
        ProcessStateAudit.Check(pid, statuses[pid]);
        foreach ((int tid, ProcStatus status) in statuses) ThreadStateAudit.Check(pid, tid, status);
    }
}
