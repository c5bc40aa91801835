using Ckpt.Engine.Linux;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// Lets a stopped thread go without losing a signal that arrives as it goes. PTRACE_DETACH wakes a
/// stopped thread with TIF_SIGPENDING set, so a thread released on its way back into an interrupted
/// call (pause, sigsuspend, a futex wait, a sleep) leaves it once more and re-enters it from user
/// space: a signal landing in that window runs its handler before the call and the call then waits
/// forever (the classic lost wake-up). So a thread inside a restartable call is run to that call's
/// syscall-entry stop first (from there it goes straight into the call, never through user space),
/// every thread is continued with PTRACE_CONT (which sets no spurious signal), and the tracer thread
/// then exits: the kernel detaches running and sleeping tracees without waking them. A signal that
/// arrives while a thread is still traced stops it in a signal-delivery stop, and the tracer's exit
/// delivers it. The tracee must have PTRACE_O_TRACESYSGOOD (to tell its syscall stop from a SIGTRAP)
/// and PTRACE_O_EXITKILL must be off by then (<see cref="Tracee.SetOptions"/>).
/// </summary>
public static class SyscallReentry
{
    private const long ERESTARTSYS = -512, ERESTARTNOINTR = -513, ERESTARTNOHAND = -514, ERESTART_RESTARTBLOCK = -516;

    /// <summary>
    /// A checkpointed thread, stopped with the registers the kernel left (rax = -ERESTART..., orig_rax
    /// = the call) when it was inside a call: re-entered as the kernel would restart it.
    /// </summary>
    public static void ReleaseAsStopped(Tracee tracee)
    {
        if (JobControl.LeaveStopped(tracee)) return;
        UserRegisters interrupted = tracee.GetRegisters();
        long result = (long)interrupted.Rax;
        if ((long)interrupted.OrigRax < 0 || result is not (ERESTARTSYS or ERESTARTNOINTR or ERESTARTNOHAND or ERESTART_RESTARTBLOCK))
        {
            tracee.Continue();
            return;
        }
        UserRegisters rerun = interrupted;
        rerun.Rax = result == ERESTART_RESTARTBLOCK ? (ulong)SyscallNumbers.SYS_restart_syscall : interrupted.OrigRax;
        rerun.Rip -= 2;
        rerun.OrigRax = ulong.MaxValue;
        Release(tracee, rerun, interrupted);
    }

    /// <summary>
    /// A restored thread: <paramref name="rerun"/> points at its `syscall` instruction with the call's
    /// number in rax and orig_rax = -1; <paramref name="interruptedResult"/> is what the call had
    /// returned when it was interrupted (-ERESTART...), or null when the thread was not in a call.
    /// </summary>
    public static void ReleaseRestored(Tracee tracee, UserRegisters rerun, long? interruptedResult)
    {
        if (JobControl.ReleaseStopped(tracee, rerun, interruptedResult)) return;
        if (interruptedResult is not { } result)
        {
            tracee.SetRegisters(rerun);
            tracee.Continue();
            return;
        }
        // The same call, as interrupted: what a signal met on the way in must be delivered against.
        UserRegisters interrupted = rerun;
        interrupted.Rip += 2;
        interrupted.OrigRax = rerun.Rax;
        interrupted.Rax = (ulong)(result == ERESTART_RESTARTBLOCK ? ERESTARTNOHAND : result);
        Release(tracee, rerun, interrupted);
    }

    private static void Release(Tracee tracee, UserRegisters rerun, UserRegisters interrupted)
    {
        tracee.SetRegisters(rerun);
        int status = tracee.ResumeToNextStop($"entry of the interrupted syscall {(long)rerun.Rax} of thread {tracee.Pid}");
        if (Tracee.IsSyscallStop(status))
        {
            tracee.Continue();
            return;
        }
        if (WaitStatus.PtraceEvent(status) != 0)
            throw new InvalidOperationException($"thread {tracee.Pid} {WaitStatus.Describe(status)} on its way back into syscall {(long)rerun.Rax}");
        // A pending signal was due first: deliver it as if it had interrupted the call (the kernel
        // turns -ERESTART... into EINTR or a restart according to the handler's SA_RESTART).
        tracee.SetRegisters(interrupted);
        tracee.Continue(WaitStatus.StopSignal(status));
    }
}
