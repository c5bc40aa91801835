using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// Job-control stops (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU; state T), both sides.
/// Checkpoint: the freeze finds every thread of a stopped process in the group stop
/// (<see cref="Tracee.GroupStopSignal"/>, settled so that injection works, see
/// <see cref="Tracee.SettleGroupStop"/>); the process is saved as any other plus a JOB_CONTROL_STOP record.
/// Whether its parent (when it is in the tree) already collected the stop with wait(WUNTRACED) is
/// probed in the parent with an injected waitid(P_PID, child, WSTOPPED | WNOHANG | WNOWAIT), which
/// reports without consuming. The release leaves a stopped thread where it is (no PTRACE_CONT): when
/// the tracer lets go, the kernel puts it back into the group stop, so it never runs in between.
/// Restore (<see cref="Stop"/>, before the signals stage, while every handler is still SIG_DFL): the
/// recorded signal is sent to the leader with that signal unblocked for the moment, passed on at its
/// delivery stop, and every thread is run into the group stop's trap, which completes the stop with
/// the recorded signal (the parent is told, as by a real stop). The parent's SIGCHLD from it is
/// discarded (the image holds the parent's real queue), and a stop report the parent had collected
/// at checkpoint time is collected again by an injected waitid, so that its wait(WUNTRACED) reports
/// the stop exactly when it would have. WCONTINUED reports are not recorded (a continued process is
/// running, and a pending "continued" report is lost). At the release a stopped thread gets its
/// registers in the form of an interrupted call (the kernel restarts the call, or returns EINTR to a
/// handler, after the SIGCONT) and is left in its stop for the tracer's exit.
/// </summary>
public static class JobControl
{
    private const int P_PID = 1;
    private const ulong WNOHANG = 1, WSTOPPED = 2, WNOWAIT = 0x0100_0000;
    private const int SiginfoPidOffset = 16;

    /// <summary>The signal every thread of the frozen process is stopped by, 0 when it runs; threads that disagree are refused.</summary>
    public static int StopSignalOf(ThreadGroupFreeze freeze)
    {
        int signal = freeze.Leader.GroupStopSignal;
        if (freeze.Tracees.Any(t => t.GroupStopSignal != signal))
            throw new CheckpointRefusedException($"process {freeze.Pid} is on its way into or out of a job-control stop (threads {string.Join(", ", freeze.Tracees.Select(t => $"{t.Pid}: {(t.InGroupStop ? $"stopped by {t.GroupStopSignal}" : "running")}"))}): try again");
        return signal;
    }

    /// <summary>
    /// For each stopped child: true when the parent has already collected its stop report (a
    /// waitid with WNOWAIT, which leaves a report where it is, finds none), injected into the parent's leader (its session).
    /// </summary>
    public static Dictionary<int, bool> ProbeCollected(RemoteSyscall remote, IReadOnlyList<int> stoppedChildren)
    {
        var collected = new Dictionary<int, bool>();
        if (stoppedChildren.Count == 0) return collected;
        foreach (int child in stoppedChildren)
        {
            remote.WriteScratch(0, new byte[128]);
            remote.Call($"waitid(P_PID {child}, WSTOPPED | WNOHANG | WNOWAIT)", SYS_waitid, P_PID, (ulong)child, remote.Scratch, WSTOPPED | WNOHANG | WNOWAIT, 0);
            collected[child] = remote.ReadScratch<int>(SiginfoPidOffset) != child;
        }
        return collected;
    }

    /// <summary>The record of a stopped process; <paramref name="collected"/> from its parent's probe (false for the root).</summary>
    public static JobControlStopRecord Record(int pid, int signal, bool collected) =>
        new() { Pid = pid, StopSignal = signal, ReportCollected = collected ? 1 : 0 };

    /// <summary>Checkpoint release of a stopped thread: leave it in its trap; the tracer's exit puts it back into the group stop.</summary>
    public static bool LeaveStopped(Tracee tracee)
    {
        if (!tracee.InGroupStop) return false;
        tracee.MarkReleased();
        return true;
    }

    // ---- restore ----

    /// <summary>Stops a process the image holds as stopped, then makes its parent's view of it what it was.</summary>
    public static void Stop(RestoreContext process, TreeRestoreContext tree)
    {
        if (process.Plan.Process.JobControlStop is not { } stop) return;
        int signal = stop.StopSignal;
        // Left in the stop at the release, without the resume that clears a single step: no more steps
        // (the PTRACE_CONT below clears those made so far).
        foreach (RestoredThread thread in process.Threads) thread.Syscalls.StepsOverCalls = false;
        Tracee leader = process.Leader.Tracee;
        ulong mask = leader.GetSignalMask();
        leader.SetSignalMask(mask & ~(1ul << (signal - 1)));
        if (Native.tgkill(process.Plan.Pid, process.Plan.Pid, signal) != 0)
            throw new SyscallException($"tgkill({signal})", Native.LastErrno, process.Plan.Pid, "stopping the process as it was at checkpoint time");
        RunIntoStop(leader, signal, deliver: true);
        leader.SetSignalMask(mask);
        foreach (RestoredThread thread in process.Threads.Skip(1)) RunIntoStop(thread.Syscalls.Tracee, signal, deliver: false);

        if (!tree.ByPid.TryGetValue(process.Plan.Task.Ppid, out RestoreContext? parent) || process.Plan.Pid == tree.Plan.Pid) return;
        TreeCreation.DiscardSigchld(parent);
        if (stop.ReportCollected == 1)
        {
            ScratchArea scratch = parent.Scratch;
            scratch.Reset();
            ulong info = scratch.Reserve(128);
            parent.Leader.Call($"waitid(P_PID {process.Plan.Pid}, WSTOPPED | WNOHANG): the parent had collected the stop", SYS_waitid, P_PID, (ulong)process.Plan.Pid, info, WSTOPPED | WNOHANG, 0);
        }
    }

    // From an injection stop: resumed, the thread meets the signal (the leader: its delivery stop, where it
    // is passed on) or the pending group stop, and reports the group stop's trap without running a user instruction.
    private static void RunIntoStop(Tracee tracee, int signal, bool deliver)
    {
        tracee.Continue();
        while (true)
        {
            int status = tracee.WaitForStop($"the job-control stop by signal {signal}");
            if (WaitStatus.PtraceEvent(status) == 128 /* PTRACE_EVENT_STOP */ && WaitStatus.StopSignal(status) == signal)
            {
                tracee.EnteredGroupStop(signal);
                return;
            }
            if (deliver && WaitStatus.PtraceEvent(status) == 0 && WaitStatus.StopSignal(status) == signal)
            {
                tracee.Continue(signal);
                continue;
            }
            throw new InvalidOperationException($"thread {tracee.Pid} {WaitStatus.Describe(status)} on its way into the job-control stop by signal {signal}");
        }
    }

    /// <summary>
    /// Restore release of a thread of a stopped process: the registers as the kernel keeps them for an
    /// interrupted call (or as they were), and the thread left in its stop for the tracer's exit.
    /// </summary>
    public static bool ReleaseStopped(Tracee tracee, UserRegisters rerun, long? interruptedResult)
    {
        if (!tracee.InGroupStop) return false;
        if (interruptedResult is { } result)
        {
            // The kernel's own restart after the stop: -ERESTART_RESTARTBLOCK has no restart block
            // here, and the call's registers already hold the time left, so it restarts as NOHAND.
            const long ERESTARTNOHAND = -514, ERESTART_RESTARTBLOCK = -516;
            UserRegisters interrupted = rerun;
            interrupted.Rip += 2;
            interrupted.OrigRax = rerun.Rax;
            interrupted.Rax = (ulong)(result == ERESTART_RESTARTBLOCK ? ERESTARTNOHAND : result);
            tracee.SetRegisters(interrupted);
        }
        else tracee.SetRegisters(rerun);
        tracee.MarkReleased();
        return true;
    }
}
