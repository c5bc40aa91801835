using Ckpt.Engine.Linux;

namespace Ckpt.Engine.Checkpoint;

/// <summary>One process of a frozen tree: its stopped threads, or, for a zombie, nothing to stop.</summary>
/// <param name="Threads">null for a zombie (an exited process its parent has not reaped: it has no threads to seize)</param>
public sealed record FrozenProcess(int Pid, int ParentPid, ThreadGroupFreeze? Threads)
{
    public bool IsZombie => Threads is null;
}

/// <summary>
/// Freezes a process and every descendant: the root's threads first (<see cref="ThreadGroupFreeze"/>),
/// then, parent by parent, the children listed in /proc/PID/task/TID/children of each stopped
/// thread. A parent is stopped before its children are listed, so it cannot fork one we miss; a
/// child it forked a moment before the stop is on the list (the kernel links it to its parent
/// inside fork). Zombies are recorded, not seized (ptrace refuses them); a child that exits while
/// it is being seized becomes one (its frozen parent cannot reap it). The order is the tree
/// order the image and the restore use: depth first, a parent before its children, children by pid.
/// Nothing is read from any process before <see cref="StopAll"/> returns.
/// </summary>
public sealed class TreeFreeze
{
    private readonly List<FrozenProcess> _processes = [];

    private TreeFreeze(ThreadGroupFreeze root) => Root = root;

    public ThreadGroupFreeze Root { get; }

    public int Pid => Root.Pid;

    /// <summary>Every process, the root first, parents before their children.</summary>
    public IReadOnlyList<FrozenProcess> Processes => _processes;

    /// <summary>Every stopped thread of every live process, in tree order.</summary>
    public IEnumerable<Tracee> Tracees => _processes.Where(p => p.Threads is not null).SelectMany(p => p.Threads!.Tracees);

    /// <summary>Seizes the root's leader only (everything keeps running); <see cref="StopAll"/> freezes.</summary>
    public static TreeFreeze Seize(int pid) => new(ThreadGroupFreeze.Seize(pid));

    public void StopAll()
    {
        Root.StopAll();
        int rootParent = (int)ProcStat.Read(Root.Pid).Field(4);
        Add(new FrozenProcess(Root.Pid, rootParent, Root));
    }

    private void Add(FrozenProcess process)
    {
        _processes.Add(process);
        if (process.Threads is null) return; // a zombie has no children: they were reparented when it exited
        // Every child is seized and asked to stop first, then each is waited for and added (its own children
        // then): a hundred children stop side by side, not one scheduler round trip after the other.
        var started = new List<(int Child, StartedFreeze? Started)>();
        try
        {
            foreach (int child in ChildrenOf(process.Threads).Where(child => !_processes.Any(p => p.Pid == child)))
                started.Add((child, StartFreeze(child)));
            for (int i = 0; i < started.Count; i++)
            {
                var (child, pending) = started[i];
                started[i] = (child, null); // finished here: added to the tree (released with it), or dropped
                FrozenProcess? frozen = FinishFreeze(child, process.Pid, pending);
                if (frozen is not null) Add(frozen);
            }
        }
        finally
        {
            // A failure part of the way (a refusal, an error) leaves the children started and not finished yet
            // as they were: each is waited for in its stop, then released as the tree's processes are.
            foreach (var (_, pending) in started)
                if (pending?.Threads is { } threads) ReleaseStarted(threads);
        }
    }

    private static void ReleaseStarted(ThreadGroupFreeze threads)
    {
        try { threads.StopAll(); }
        catch (Exception) { /* exited, or refused: what is attached is released below, or by the kernel when the tracer thread exits */ }
        try { if (threads.AnyAttached) threads.ReleaseAll(); }
        catch (Exception) { /* the checkpoint's own failure is reported */ }
    }

    /// <summary>A child seized and asked to stop (<see cref="ThreadGroupFreeze.SeizeAndInterrupt"/>), or a zombie, or gone (null Threads).</summary>
    private sealed record StartedFreeze(ThreadGroupFreeze? Threads, bool Zombie, Exception? Failure);

    private static StartedFreeze StartFreeze(int pid)
    {
        if (ProcStat.IsZombie(pid) is not false) return new StartedFreeze(null, ProcStat.IsZombie(pid) is true, null);
        try { return new StartedFreeze(ThreadGroupFreeze.SeizeAndInterrupt(pid), false, null); }
        catch (Exception e) when (e is TraceeExitedException or SyscallException) { return new StartedFreeze(null, false, e); }
    }

    private static FrozenProcess? FinishFreeze(int pid, int parent, StartedFreeze? started)
    {
        if (started is { Threads: null, Failure: null }) return started.Zombie ? new FrozenProcess(pid, parent, null) : null;
        ThreadGroupFreeze? threads = started?.Threads;
        try
        {
            if (started?.Failure is { } failure) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
            threads!.StopAll();
            return new FrozenProcess(pid, parent, threads);
        }
        catch (Exception e) when (e is TraceeExitedException or SyscallException && ProcStat.IsZombie(pid) is not false)
        {
            // It exited while being seized: its parent is stopped, so it stays a zombie until the release.
            if (threads?.AnyAttached == true) threads.ReleaseAll();
            return ProcStat.IsZombie(pid) is true ? new FrozenProcess(pid, parent, null) : null;
        }
    }

    private static IEnumerable<int> ChildrenOf(ThreadGroupFreeze process) =>
        process.Tracees.SelectMany(t => ReadChildren(process.Pid, t.Pid)).Distinct().Order().ToList();

    /// <summary>The live processes of the tree as it runs now (not frozen: for the audit before the freeze), the root first.</summary>
    public static List<int> LiveProcessesNow(int root)
    {
        var found = new List<int>();
        var pending = new Queue<int>([root]);
        while (pending.TryDequeue(out int pid))
        {
            if (ProcStat.IsZombie(pid) != false) continue; // gone or a zombie: nothing to audit
            found.Add(pid);
            List<int> tids;
            try { tids = ProcText.ListNumbers($"/proc/{pid}/task"); }
            catch (DirectoryNotFoundException) { continue; } // exited meanwhile
            foreach (int child in tids.SelectMany(tid => ReadChildrenIfThere(pid, tid)).Distinct().Order()) pending.Enqueue(child);
        }
        return found;
    }

    private static IEnumerable<int> ReadChildrenIfThere(int pid, int tid)
    {
        try { return ReadChildren(pid, tid).ToList(); }
        catch (IOException) { return []; } // the thread exited meanwhile
    }

    private static IEnumerable<int> ReadChildren(int pid, int tid)
    {
        try
        {
            return ProcText.ReadAllText($"/proc/{pid}/task/{tid}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse);
        }
        catch (FileNotFoundException)
        {
            throw new CheckpointRefusedException($"/proc/{pid}/task/{tid}/children is missing: this kernel lacks CONFIG_PROC_CHILDREN, which finding a process's descendants needs");
        }
    }

    /// <summary>Lets every live process run on as it was (see <see cref="ThreadGroupFreeze.ReleaseAll"/>).</summary>
    public void ReleaseAll()
    {
        foreach (FrozenProcess process in _processes) process.Threads?.ReleaseAll();
        if (_processes.Count == 0 && Root.AnyAttached) Root.ReleaseAll();
    }

    public bool AnyAttached => Root.AnyAttached || _processes.Any(p => p.Threads?.AnyAttached == true);

    /// <summary>
    /// SIGKILL to every live process, children first (a parent dying first would let init reap its
    /// children's exits before we collect them as their tracer; either way works, this is tidier).
    /// </summary>
    public void KillAll()
    {
        foreach (FrozenProcess process in Enumerable.Reverse(_processes))
            process.Threads?.Leader.SendKill();
        foreach (FrozenProcess process in Enumerable.Reverse(_processes))
            process.Threads?.WaitForKilled();
    }
}
