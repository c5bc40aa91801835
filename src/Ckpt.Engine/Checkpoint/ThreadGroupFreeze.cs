using Ckpt.Engine.Linux;

namespace Ckpt.Engine.Checkpoint;

/// <summary>
/// Freezes every thread of a process: PTRACE_SEIZE each thread listed in /proc/PID/task, then
/// PTRACE_INTERRUPT them all and wait for each stop, and list again until a pass finds no new
/// thread (a running thread may create one until it is itself stopped; once all are stopped, no
/// thread can appear). A thread that exits meanwhile is dropped; the leader exiting is the
/// process exiting. The leader comes first in <see cref="Tracees"/>.
/// </summary>
public sealed class ThreadGroupFreeze
{
    private const int MaxPasses = 1000;
    private readonly List<Tracee> _tracees = [];

    private ThreadGroupFreeze(int pid) => Pid = pid;

    public int Pid { get; }

    /// <summary>Every stopped thread, the leader first, then by tid.</summary>
    public IReadOnlyList<Tracee> Tracees => _tracees;

    public Tracee Leader => _tracees[0];

    /// <summary>Seizes the leader only (the process keeps running); <see cref="StopAll"/> freezes.</summary>
    public static ThreadGroupFreeze Seize(int pid)
    {
        var freeze = new ThreadGroupFreeze(pid);
        freeze._tracees.Add(Tracee.Seize(pid));
        return freeze;
    }

    /// <summary>
    /// Seizes the leader and asks it to stop, without waiting (<see cref="StopAll"/> waits): the children of a
    /// stopped process are all started so, then finished one by one, so that they stop side by side instead of
    /// one scheduler round trip after the other.
    /// </summary>
    public static ThreadGroupFreeze SeizeAndInterrupt(int pid)
    {
        ThreadGroupFreeze freeze = Seize(pid);
        TryRequestInterrupt(freeze.Leader);
        freeze._leaderInterrupted = true;
        return freeze;
    }

    private bool _leaderInterrupted; // by SeizeAndInterrupt: StopAll must not interrupt it twice

    public void StopAll()
    {
        var stopped = new HashSet<int>();
        for (int pass = 0; pass < MaxPasses; pass++)
        {
            var fresh = new List<Tracee>();
            foreach (int tid in ListThreads())
            {
                if (stopped.Contains(tid)) continue;
                Tracee? tracee = _tracees.Find(t => t.Pid == tid) ?? TrySeize(tid);
                if (tracee is not null) fresh.Add(tracee);
            }
            if (fresh.Count == 0) break;
            foreach (Tracee tracee in fresh)
            {
                if (_leaderInterrupted && tracee.Pid == Pid) _leaderInterrupted = false;
                else TryRequestInterrupt(tracee);
            }
            foreach (Tracee tracee in fresh)
            {
                if (!tracee.Attached) continue;
                try
                {
                    tracee.WaitForInterruptStop();
                    stopped.Add(tracee.Pid);
                }
                catch (TraceeExitedException) when (tracee.Pid != Pid)
                {
                    // The thread exited before it stopped: it is not part of the process any more.
                }
            }
            _tracees.RemoveAll(t => !t.Attached && t.Pid != Pid);
            if (pass == MaxPasses - 1)
                throw new CheckpointRefusedException($"process {Pid} keeps creating threads faster than they can be stopped");
        }
        // The leader first (false sorts before true), then by tid.
        _tracees.Sort((a, b) => (a.Pid != Pid).CompareTo(b.Pid != Pid) is var leaderFirst and not 0 ? leaderFirst : a.Pid.CompareTo(b.Pid));
    }

    /// <summary>
    /// Lets every thread run on as it was (see <see cref="Tasks.SyscallReentry"/>); the kernel detaches
    /// them when the calling (tracer) thread exits, which the caller must let happen promptly.
    /// A thread that cannot be released so is detached instead.
    /// </summary>
    public void ReleaseAll()
    {
        foreach (Tracee tracee in _tracees)
        {
            if (!tracee.Attached) continue;
            try
            {
                Tasks.SyscallReentry.ReleaseAsStopped(tracee);
                tracee.MarkReleased();
            }
            catch (Exception)
            {
                try { if (tracee.Attached) tracee.Detach(); }
                catch (Exception) { /* already gone: nothing left to resume */ }
            }
        }
    }

    public bool AnyAttached => _tracees.Any(t => t.Attached);

    /// <summary>SIGKILL ends the whole process; collect every thread's exit notification.</summary>
    public void KillAll()
    {
        Leader.SendKill();
        WaitForKilled();
    }

    /// <summary>After SIGKILL: collects every thread's exit notification, the leader's last.</summary>
    public void WaitForKilled()
    {
        foreach (Tracee tracee in _tracees.Skip(1)) tracee.WaitForExit();
        Leader.WaitForExit();
    }

    private Tracee? TrySeize(int tid)
    {
        try
        {
            Tracee tracee = Tracee.Seize(tid);
            _tracees.Add(tracee);
            return tracee;
        }
        catch (SyscallException e) when (e.Errno is Errno.ESRCH or Errno.EPERM && tid != Pid && !Directory.Exists($"/proc/{Pid}/task/{tid}"))
        {
            return null; // exited between the listing and the seize
        }
    }

    private static void TryRequestInterrupt(Tracee tracee)
    {
        try { tracee.RequestInterrupt(); }
        catch (TraceeExitedException) { /* WaitForInterruptStop reports it */ }
    }

    private IEnumerable<int> ListThreads()
    {
        try
        {
            return ProcText.ListNumbers($"/proc/{Pid}/task");
        }
        catch (DirectoryNotFoundException)
        {
            throw new TraceeExitedException(Pid, "exited while it was being frozen");
        }
    }
}
