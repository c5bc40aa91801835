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
/// The processes of a tree are read together (<see cref="ReadAll"/>): each stop of one process (the
/// routine's mmap, its run, its munmap) is waited for while the others run to theirs, instead of one
/// round trip through the scheduler after the other.
/// </summary>
public sealed record InjectedReads(InjectedTaskState Process, List<PosixTimerRecord> Timers, Dictionary<int, bool> ChildStops, Dictionary<int, ThreadProbes> Threads)
{
    /// <summary>One process's reads, made by <see cref="ReadAll"/>.</summary>
    /// <param name="maps">the process's mappings (/proc/PID/maps, read while frozen), to place the routine</param>
    /// <param name="statuses">/proc/TID/status of each thread, read while frozen</param>
    /// <param name="mayMapRoutine">false for a process sharing its address space with an earlier one of the tree (whose reads map theirs)</param>
    public sealed class Reading(ThreadGroupFreeze freeze, ulong syscallAddress, IReadOnlyList<MapsEntry> maps, IReadOnlyDictionary<int, ProcStatus> statuses,
        List<PosixTimerRecord> timers, IReadOnlyList<int> stoppedChildren, bool mayMapRoutine)
    {
        public int Pid => freeze.Pid;

        /// <summary>What was read, once <see cref="ReadAll"/> made the reads without a failure.</summary>
        public InjectedReads? Result { get; private set; }

        // The reads as steps: each yield leaves the process running to a stop the next step waits for.
        internal IEnumerable<bool> Steps()
        {
            int pid = freeze.Pid;
            var leader = RemoteSyscall.Begin(freeze.Leader, syscallAddress);
            ProbeRoutine? routine = null; // mapped and not yet being unmapped
            try
            {
                if (mayMapRoutine && ProbeRoutine.FreeAddress(maps) is ulong address)
                {
                    ProbeRoutine.StartMap(leader, address);
                    yield return true;
                    leader.PassEntry();
                    yield return true;
                    routine = ProbeRoutine.Mapped(leader, address, leader.FinishCall());
                }
                var batch = new ProbeBatch(leader, RoutineFor(routine, statuses[pid]));
                InjectedTaskState.Calls processCalls = InjectedTaskState.Add(batch, statuses[pid]);
                ThreadProbes.Calls leaderCalls = ThreadProbes.Add(batch);
                if (batch.TryStart())
                {
                    yield return true;
                    batch.Finish();
                }
                else batch.Run();
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
                var read = new InjectedReads(process, PosixTimers.ReadTimes(leader, timers), JobControl.ProbeCollected(leader, stoppedChildren), threads);
                if (routine is { } unmapping)
                {
                    routine = null; // from here a failure is the munmap's own
                    unmapping.StartUnmap(leader);
                    yield return true;
                    leader.PassEntry();
                    yield return true;
                    unmapping.FinishUnmap(leader);
                }
                Result = read;
            }
            finally
            {
                if (routine is not null) UnmapQuietly(routine, leader);
                leader.Dispose();
            }
        }
    }

    /// <summary>
    /// Makes the reads of every process, all at once: each step of each process in turn, tree order, the
    /// others running meanwhile. Every process's reads run to their end (a failure of one leaves the others to
    /// finish and put their threads back); returns each process's failure, by index, null where it has none.
    /// </summary>
    public static Exception?[] ReadAll(IReadOnlyList<Reading> readings)
    {
        var failures = new Exception?[readings.Count];
        var steps = readings.Select(r => r.Steps().GetEnumerator()).ToArray();
        var running = Enumerable.Repeat(true, readings.Count).ToArray();
        try
        {
            for (bool any = true; any;)
            {
                any = false;
                for (int i = 0; i < steps.Length; i++)
                {
                    if (!running[i]) continue;
                    try { running[i] = steps[i].MoveNext(); }
                    catch (Exception e)
                    {
                        failures[i] = e;
                        running[i] = false;
                    }
                    any |= running[i];
                }
            }
        }
        finally
        {
            foreach (IEnumerator<bool> step in steps) step.Dispose();
        }
        return failures;
    }

    private static ProbeRoutine? RoutineFor(ProbeRoutine? routine, ProcStatus thread) => ProbeRoutine.MayRunIn(thread) ? routine : null;

    // On a failure the routine goes before the leader's session ends; a second failure does not hide the first.
    private static void UnmapQuietly(ProbeRoutine routine, RemoteSyscall leader)
    {
        try { routine.Unmap(leader); }
        catch (Exception) { /* the leader is gone or failing: the first failure is reported */ }
    }
}
