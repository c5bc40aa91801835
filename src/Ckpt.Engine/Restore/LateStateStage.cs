using Ckpt.Engine.Signals;
using Ckpt.Engine.Tasks;

namespace Ckpt.Engine.Restore;

/// <summary>
/// What a process takes once its files are in place, in four steps: cwd, umask and personality ("task
/// state"); signal actions, interval timers and the process-wide queue ("signals"); each thread's
/// signal stack, rseq area, robust list, name, own queue and vector state (the thread-state step); then
/// limits, scheduling, late flags, the parent-death signal and the dumpable flag (the limits step).
/// Done as one stage whose calls share batches: one batch per thread, and for a process with one thread
/// a single batch, where four stages made four (each batch is a round trip between the engine and the
/// task, most of a tree's restore time: docs/benchmarks.md). A failed call is reported under its own
/// step's name, as the four stages did. A job-control stop goes between task state and signals
/// (<see cref="JobControl"/>): a tree that has one restores these steps as four stages (<see cref="Applies"/>).
/// </summary>
public static class LateStateStage
{
    public const string TaskState = "task state", Signals = "signals",
        ThreadState = "signal stack, rseq, robust list, name, queued signals, xstate", Limits = "limits, scheduling, no_new_privs";

    /// <summary>No process of the tree was stopped by job control: the four steps can share batches.</summary>
    public static bool Applies(RestorePlan plan) => plan.Processes.All(p => p.JobControlStop is null);

    public static void Run(RestoreContext process)
    {
        RestorePlan plan = process.Plan;
        ScratchArea scratch = process.Scratch;
        bool oneThread = process.Threads.Count == 1;
        foreach (RestoredThread thread in process.Threads)
        {
            scratch.Reset();
            var batch = new SyscallBatch(thread.Syscalls, scratch);
            if (thread.Tid == plan.Pid)
            {
                batch.Step = new BatchStep(TaskState);
                TaskStateRestore.Add(batch, plan, scratch, setFs: SharedTables.RestoresFs(plan.Process));
                batch.Step = new BatchStep(Signals);
                SignalsRestore.Add(batch, process.Tree.IgnoredSignalsOfNewTasks, plan, scratch);
            }
            batch.Step = new BatchStep(ThreadState, OfThread: true);
            ThreadRestore.AddThreadState(batch, thread.Image, plan, scratch);
            // Several threads: every thread's queue is restored before any limit (RLIMIT_SIGPENDING), as the stages did.
            if (oneThread) AddLimits(batch, process, thread);
            batch.Run();
            try { ThreadRestore.SetXstate(thread.Syscalls.Tracee, thread.Image); }
            catch (Exception e) { throw new StepFailedException(ThreadState, e, thread.Tid); }
        }
        if (oneThread) return;
        foreach (RestoredThread thread in process.Threads)
        {
            scratch.Reset();
            var batch = new SyscallBatch(thread.Syscalls, scratch);
            AddLimits(batch, process, thread);
            batch.Run();
        }
    }

    /// <summary>The limits step of one thread, added to its batch (the leader's first: see below).</summary>
    public static void AddLimits(SyscallBatch batch, RestoreContext process, RestoredThread thread)
    {
        batch.Step = new BatchStep(Limits, OfThread: true);
        // The leader comes first: limits (process-wide) are set with its restored credentials,
        // so the kernel refuses a hard limit the recorded user could not have set; every
        // thread's scheduling then sees them (RLIMIT_NICE, RLIMIT_RTPRIO).
        if (thread.Tid == process.Plan.Pid) TaskStateRestore.AddLimits(batch, process.Plan, process.Scratch);
        ThreadRestore.AddScheduling(batch, thread.Image, process.Scratch);
        CredentialsRestore.AddLateFlags(batch, thread.Image);
        // After the credentials (a change clears it), with every process under its restored parent.
        ParentLinks.AddParentDeathSignal(batch, thread.Image);
        // The dumpable flag with the process's last thread: every credential change (which resets it)
        // is made, and an engine without CAP_SYS_PTRACE no longer writes the scratch area of a task
        // that is not dumpable.
        if (ReferenceEquals(thread, process.Threads[^1])) CredentialsRestore.AddDumpable(batch, process.Plan);
    }
}
