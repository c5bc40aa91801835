using Ckpt.Engine.Linux;
using Ckpt.Engine.Signals;
using Ckpt.Engine.Tasks;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Checkpoint;

/// <summary>
/// Everything a checkpoint reads by injection into one frozen process: the process-wide state
/// (<see cref="InjectedTaskState"/>, the times of its POSIX timers, the stop reports of its stopped
/// children) and each thread's own (<see cref="ThreadProbes"/>). One session in the leader holds the
/// <see cref="ProbeRoutine"/> for the time of the reads: the process's calls and the leader's own are one
/// batch, each other thread's calls a batch in that thread. The routine is unmapped before the leader's
/// session ends (a refusal included), so every session puts its thread back as it was. Runs after the
/// process's memory is inspected and after <see cref="RseqCriticalSection.MoveToAbort"/>.
/// </summary>
public sealed record InjectedReads(InjectedTaskState Process, List<PosixTimerRecord> Timers, Dictionary<int, bool> ChildStops, Dictionary<int, ThreadProbes> Threads)
{
    /// <param name="maps">the process's mappings (/proc/PID/maps, read while frozen), to place the routine</param>
    /// <param name="statuses">/proc/TID/status of each thread, read while frozen</param>
    public static InjectedReads Read(ThreadGroupFreeze freeze, ulong syscallAddress, IReadOnlyList<MapsEntry> maps, IReadOnlyDictionary<int, ProcStatus> statuses,
        List<PosixTimerRecord> timers, IReadOnlyList<int> stoppedChildren)
    {
        int pid = freeze.Pid;
        using var leader = RemoteSyscall.Begin(freeze.Leader, syscallAddress);
        ProbeRoutine? routine;
        using (CheckpointProfile.Measure("inspect/injected state/map the routine")) routine = ProbeRoutine.TryMap(leader, pid, maps);
        InjectedReads reads;
        try
        {
            var batch = new ProbeBatch(leader, RoutineFor(routine, statuses[pid]));
            InjectedTaskState.Calls processCalls = InjectedTaskState.Add(batch, statuses[pid]);
            ThreadProbes.Calls leaderCalls = ThreadProbes.Add(batch);
            using (CheckpointProfile.Measure("inspect/injected state/the leader's batch")) batch.Run();
            InjectedTaskState process = InjectedTaskState.Read(batch, processCalls, pid);
            var threads = new Dictionary<int, ThreadProbes> { [pid] = ThreadProbes.Read(batch, leaderCalls, pid, pid) };
            foreach (Tracee thread in freeze.Tracees.Where(t => t.Pid != pid))
            {
                using var remote = RemoteSyscall.Begin(thread, syscallAddress);
                var own = new ProbeBatch(remote, RoutineFor(routine, statuses[thread.Pid]));
                ThreadProbes.Calls calls = ThreadProbes.Add(own);
                own.Run();
                threads[thread.Pid] = ThreadProbes.Read(own, calls, pid, thread.Pid);
            }
            reads = new InjectedReads(process, PosixTimers.ReadTimes(leader, timers), JobControl.ProbeCollected(leader, stoppedChildren), threads);
        }
        catch (Exception)
        {
            if (routine is not null) UnmapQuietly(routine, leader);
            throw;
        }
        using (CheckpointProfile.Measure("inspect/injected state/unmap the routine")) routine?.Unmap(leader);
        return reads;
    }

    private static ProbeRoutine? RoutineFor(ProbeRoutine? routine, ProcStatus thread) => ProbeRoutine.MayRunIn(thread) ? routine : null;

    // On a failure the routine goes before the leader's session ends; a second failure does not hide the first.
    private static void UnmapQuietly(ProbeRoutine routine, RemoteSyscall leader)
    {
        try { routine.Unmap(leader); }
        catch (Exception) { /* the leader is gone or failing: the first failure is reported */ }
    }
}
