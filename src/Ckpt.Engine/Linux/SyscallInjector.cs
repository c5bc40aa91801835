using Ckpt.Engine.Linux;
namespace Ckpt.Engine.Linux;

/// <summary>
/// Runs system calls inside a ptrace-stopped task, for checkpoint (<see cref="RemoteSyscall"/>,
/// which puts everything back afterwards) and restore alike. Each call: registers = the template
/// with rip at a `syscall` instruction of the task's own vdso (no code of ours: the batch routines,
/// a restore's <see cref="Restore.SyscallBatch"/> and a checkpoint's <see cref="ProbeRoutine"/>, run from pages of their own),
/// rax = number, orig_rax = -1 (so the kernel's restart logic cannot rewrite the call), then
/// PTRACE_SYSCALL to the call's entry stop and on to its exit stop, and rax is the result.
/// Event stops in between are handled: a clone/fork made by the call reports the new task's id
/// (<see cref="LastCreatedTask"/>), which PTRACE_O_TRACECLONE has attached to this tracer.
/// A task being checkpointed is never single-stepped: should the engine die, the kernel's automatic
/// detach lets it run on, and a task last single-stepped would take a fatal SIGTRAP at its next syscall
/// exit. A task the engine restores dies with the engine until its release (PTRACE_O_EXITKILL), so its
/// calls step over the syscall instruction instead: one stop per call, not two (<see cref="StepsOverCalls"/>).
/// </summary>
public sealed class SyscallInjector
{
    private const int PTRACE_EVENT_FORK = 1, PTRACE_EVENT_VFORK = 2, PTRACE_EVENT_CLONE = 3;

    private readonly UserRegisters _template;

    public SyscallInjector(Tracee tracee, ulong syscallAddress, UserRegisters template, bool stepsOverCalls = false)
    {
        Tracee = tracee;
        SyscallAddress = syscallAddress;
        _template = template;
        StepsOverCalls = stepsOverCalls;
    }

    /// <summary>
    /// Each call is one PTRACE_SINGLESTEP over the syscall instruction: the kernel reports the step when
    /// the call returns (x86 SYSCALL_EXIT_TRAP) as a SIGTRAP stop that the next resume discards, and any
    /// later PTRACE_CONT or PTRACE_SYSCALL (a batch, the release) clears the step state. Only for tasks the
    /// engine restores (see the class summary); turned off for a task that is left in a job-control stop at its
    /// release (no resume clears the step state there, and the SIGCONT that ends the stop would meet a fatal SIGTRAP).
    /// </summary>
    public bool StepsOverCalls { get; set; }

    /// <summary>
    /// For a task the engine created (<see cref="ProcessCreation"/>): from its PTRACE_EVENT_EXEC stop
    /// to execve's syscall-exit stop, where its registers can be replaced without the kernel
    /// overwriting rax.
    /// </summary>
    public static SyscallInjector AtExecStop(Tracee tracee)
    {
        tracee.ResumeToSyscallStop("execve (exit)");
        return new SyscallInjector(tracee, RemoteSyscall.FindSyscallInstruction(tracee.Pid), tracee.GetRegisters(), stepsOverCalls: true);
    }

    /// <summary>For a thread just created and stopped (PTRACE_EVENT_STOP) in a task this engine restores.</summary>
    public static SyscallInjector ForNewThread(Tracee thread, ulong syscallAddress) =>
        new(thread, syscallAddress, thread.GetRegisters(), stepsOverCalls: true);

    public Tracee Tracee { get; }

    public int Pid => Tracee.Pid;

    /// <summary>Address of the `syscall` instruction; changes when the vdso is moved.</summary>
    public ulong SyscallAddress { get; private set; }

    /// <summary>System calls injected by this engine so far (the restore's profile, CKPT_PROFILE).</summary>
    public static long InjectedCalls;

    /// <summary>The id of the task the last injected clone/fork created, 0 if none.</summary>
    public int LastCreatedTask { get; private set; }

    /// <summary>Call after moving the vdso: the instruction moved with it.</summary>
    public void RelocateSyscall(long delta) => SyscallAddress = (ulong)((long)SyscallAddress + delta);

    /// <summary>Runs one system call; returns rax (negative errno on failure).</summary>
    public long CallRaw(long number, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0, ulong a5 = 0, ulong a6 = 0)
    {
        if (StepsOverCalls)
        {
            SetCallRegistersAndResume(TraceeResume.SingleStep, number, a1, a2, a3, a4, a5, a6);
            StepOverSyscall($"injected syscall {number}");
        }
        else
        {
            SetCallRegistersAndResume(TraceeResume.ToSyscall, number, a1, a2, a3, a4, a5, a6);
            AwaitSyscallStopPastEvents($"entry of injected syscall {number}");
            RunToSyscallStop($"exit of injected syscall {number}");
        }
        UserRegisters after = Tracee.GetRegisters();
        if (after.Rip != SyscallAddress + 2)
            throw new InvalidOperationException($"task {Pid}: injected syscall {number} stopped at 0x{after.Rip:x}, expected 0x{SyscallAddress + 2:x}");
        return (long)after.Rax;
    }

    /// <summary>Runs one system call and throws a <see cref="SyscallException"/> naming it on failure.</summary>
    public long Call(string name, long number, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0, ulong a5 = 0, ulong a6 = 0)
    {
        long result = CallRaw(number, a1, a2, a3, a4, a5, a6);
        if (result < 0 && result > -4096) throw new SyscallException(name, (int)-result, Pid, "injected into the task");
        return result;
    }

    /// <summary>
    /// Runs code of the engine's already in the task (<see cref="Restore.SyscallBatch"/>'s routine) from
    /// <paramref name="entry"/> with rbx, r12 and r13 set, until it stops with SIGTRAP (its int3: a stop, not
    /// delivered); returns that stop's wait status. The registers are not read (one request to the tracer
    /// thread fewer per batch): the code reports its end in memory, and the caller checks it. Any other
    /// stop throws: like an injected call, the code runs with the task's signals as they are, and a
    /// restoring task has none it could take.
    /// </summary>
    public int RunCodeToTrap(ulong entry, ulong rbx, ulong r12, ulong r13, string what)
    {
        StartCode(entry, rbx, r12, r13);
        int status = Tracee.WaitForStop(what);
        // A clone3 in the code (a parent forking its children in one batch) stops it at each fork event;
        // the new task's id is in the call's result.
        while (WaitStatus.PtraceEvent(status) is PTRACE_EVENT_CLONE or PTRACE_EVENT_FORK or PTRACE_EVENT_VFORK)
        {
            Tracee.Continue();
            status = Tracee.WaitForStop(what);
        }
        const int SIGTRAP = 5;
        if (WaitStatus.StopSignal(status) != SIGTRAP || WaitStatus.PtraceEvent(status) != 0)
            throw new InvalidOperationException($"task {Pid}: {WaitStatus.Describe(status)} at 0x{Tracee.GetRegisters().Rip:x} during {what}");
        return status;
    }

    /// <summary>
    /// <see cref="CallRaw"/> in three parts, so that calls can be started in several tasks before the engine
    /// waits for any (the tasks run at once): the registers and PTRACE_SYSCALL to the entry stop here, then
    /// <see cref="PassEntry"/>, then <see cref="FinishCall"/>. For calls that create no task.
    /// </summary>
    public void StartCall(long number, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0, ulong a5 = 0, ulong a6 = 0)
    {
        SetCallRegistersAndResume(TraceeResume.ToSyscall, number, a1, a2, a3, a4, a5, a6);
    }

    // The template with rip at the syscall instruction, the call's number and arguments, and orig_rax -1; then the task resumed.
    private void SetCallRegistersAndResume(TraceeResume how, long number, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5, ulong a6)
    {
        Interlocked.Increment(ref InjectedCalls);
        UserRegisters regs = _template;
        regs.Rip = SyscallAddress;
        regs.Rax = (ulong)number;
        regs.OrigRax = ulong.MaxValue;
        (regs.Rdi, regs.Rsi, regs.Rdx, regs.R10, regs.R8, regs.R9) = (a1, a2, a3, a4, a5, a6);
        LastCreatedTask = 0;
        Tracee.SetRegistersAndResume(regs, how);
    }

    /// <summary>The entry stop of the call <see cref="StartCall"/> started, and on to its exit stop.</summary>
    public void PassEntry()
    {
        AwaitSyscallStop("entry of an injected syscall");
        Tracee.Resume(TraceeResume.ToSyscall);
    }

    /// <summary>The exit stop of the started call: its rax (negative errno on failure).</summary>
    public long FinishCall()
    {
        AwaitSyscallStop("exit of an injected syscall");
        UserRegisters after = Tracee.GetRegisters();
        if (after.Rip != SyscallAddress + 2)
            throw new InvalidOperationException($"task {Pid}: injected syscall {after.OrigRax} stopped at 0x{after.Rip:x}, expected 0x{SyscallAddress + 2:x}");
        return (long)after.Rax;
    }

    /// <summary><see cref="RunCodeToTrap"/> in two parts, like <see cref="StartCall"/>: the registers and PTRACE_CONT here.</summary>
    public void StartCode(ulong entry, ulong rbx, ulong r12, ulong r13)
    {
        UserRegisters regs = _template;
        regs.Rip = entry;
        regs.OrigRax = ulong.MaxValue;
        (regs.Rbx, regs.R12, regs.R13) = (rbx, r12, r13);
        Tracee.SetRegistersAndResume(regs, TraceeResume.Continue);
    }

    /// <summary>The stop at the code's int3 (see <see cref="RunCodeToTrap"/>); the registers there.</summary>
    public UserRegisters FinishCode(ulong expectedStop, string what)
    {
        int status = Tracee.WaitForStop(what);
        UserRegisters after = Tracee.GetRegisters();
        const int SIGTRAP = 5;
        if (WaitStatus.StopSignal(status) != SIGTRAP || WaitStatus.PtraceEvent(status) != 0 || after.Rip != expectedStop)
            throw new InvalidOperationException($"task {Pid}: {WaitStatus.Describe(status)} at 0x{after.Rip:x} during {what}, expected its end at 0x{expectedStop:x}");
        return after;
    }

    private void AwaitSyscallStop(string what)
    {
        int status = Tracee.WaitForStop(what);
        if (!Tracee.IsSyscallStop(status))
            throw new InvalidOperationException($"task {Pid}: {WaitStatus.Describe(status)} while waiting for the stop at {what}");
    }

    public UserRegisters GetRegisters() => Tracee.GetRegisters();

    public void SetRegisters(in UserRegisters registers) => Tracee.SetRegisters(registers);

    // The step started by SetCallRegistersAndResume: a fork event on the way is noted and stepped past.
    private void StepOverSyscall(string what)
    {
        const int SIGTRAP = 5;
        while (true)
        {
            int status = Tracee.WaitForStop(what);
            int ptraceEvent = WaitStatus.PtraceEvent(status);
            if (ptraceEvent is PTRACE_EVENT_CLONE or PTRACE_EVENT_FORK or PTRACE_EVENT_VFORK)
            {
                LastCreatedTask = (int)Tracee.GetEventMessage();
                Tracee.Resume(TraceeResume.SingleStep);
                continue;
            }
            if (WaitStatus.StopSignal(status) == SIGTRAP && ptraceEvent == 0) return;
            throw new InvalidOperationException($"task {Pid}: {WaitStatus.Describe(status)} while stepping over {what}");
        }
    }

    private void RunToSyscallStop(string what)
    {
        Tracee.Resume(TraceeResume.ToSyscall);
        AwaitSyscallStopPastEvents(what);
    }

    // The task already resumed with PTRACE_SYSCALL: its next syscall stop, past the fork events on the way.
    private void AwaitSyscallStopPastEvents(string what)
    {
        while (true)
        {
            int status = Tracee.WaitForStop(what);
            if (Tracee.IsSyscallStop(status)) return;
            int ptraceEvent = WaitStatus.PtraceEvent(status);
            if (ptraceEvent is PTRACE_EVENT_CLONE or PTRACE_EVENT_FORK or PTRACE_EVENT_VFORK)
            {
                LastCreatedTask = (int)Tracee.GetEventMessage();
                Tracee.Resume(TraceeResume.ToSyscall);
                continue;
            }
            throw new InvalidOperationException($"task {Pid}: {WaitStatus.Describe(status)} while waiting for the stop at {what}");
        }
    }
}
