using System.Runtime.InteropServices;
using static Ckpt.Engine.Linux.Native;

namespace Ckpt.Engine.Linux;

/// <summary>
/// One ptrace-attached task. Every request is made by the thread that called <see cref="Seize"/>
/// (the kernel ties a tracee to the tracing thread): called from it, or from a worker of
/// <see cref="PtraceRelay.RunConcurrently"/>, which hands the request to it.
/// API: Seize(pid) attaches without stopping; Interrupt() stops the task (PTRACE_INTERRUPT +
/// wait for the event stop); WaitForStop(); Get/SetRegisters; Get/SetXstate (NT_X86_XSTATE);
/// Get/SetSignalMask; PeekSignals(shared); GetRseqConfiguration(); ResumeToSyscallStop(); Continue(signal);
/// Detach() resumes it; Kill() ends it and reaps the trace. A task that dies meanwhile raises
/// <see cref="TraceeExitedException"/>.
/// </summary>
public sealed unsafe class Tracee
{
    private const int PTRACE_CONT = 7, PTRACE_KILL = 8, PTRACE_GETREGS = 12, PTRACE_SYSCALL = 24, PTRACE_SINGLESTEP = 9, PTRACE_SETREGS = 13,
        PTRACE_DETACH = 17, PTRACE_SETOPTIONS = 0x4200, PTRACE_GETEVENTMSG = 0x4201, PTRACE_GETREGSET = 0x4204, PTRACE_SETREGSET = 0x4205, PTRACE_SEIZE = 0x4206,
        PTRACE_INTERRUPT = 0x4207, PTRACE_GETSIGINFO = 0x4202, PTRACE_PEEKSIGINFO = 0x4209, PTRACE_GETSIGMASK = 0x420a, PTRACE_SETSIGMASK = 0x420b,
        PTRACE_GET_RSEQ_CONFIGURATION = 0x420f;
    private const int NT_X86_XSTATE = 0x202;
    private const int PTRACE_EVENT_STOP = 128;
    public const int PTRACE_O_TRACESYSGOOD = 1;
    private const int MaxXstateSize = 64 * 1024;
    [ThreadStatic] private static byte[]? t_xstateBuffer;

    private Tracee(int pid) => Pid = pid;

    /// <summary>A task this thread already traces (created stopped by the engine, or auto-attached by PTRACE_O_TRACECLONE).</summary>
    public static Tracee Adopt(int pid) => new(pid) { Attached = true };

    public int Pid { get; }
    public bool Attached { get; private set; }

    /// <summary>After <see cref="Interrupt"/>: the task was in a job-control stop (SIGSTOP, SIGTSTP, ...).</summary>
    public bool InGroupStop => GroupStopSignal != 0;

    /// <summary>The signal of the job-control stop the task is in (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU), 0 when none.</summary>
    public int GroupStopSignal { get; private set; }

    /// <summary>Attaches with PTRACE_SEIZE (the task keeps running until <see cref="Interrupt"/>).</summary>
    public static Tracee Seize(int pid, int options = PTRACE_O_TRACESYSGOOD)
    {
        if (ptrace(PTRACE_SEIZE, pid, 0, options) != 0)
            throw new SyscallException("ptrace(PTRACE_SEIZE)", LastErrno, pid);
        return new Tracee(pid) { Attached = true };
    }

    /// <summary>
    /// Stops the task at a PTRACE_EVENT_STOP. Signals that arrive first (signal-delivery stops)
    /// are passed on to the task, as if the freeze had come a moment later.
    /// </summary>
    public void Interrupt()
    {
        RequestInterrupt();
        WaitForInterruptStop();
    }

    /// <summary>PTRACE_INTERRUPT without waiting: interrupt every thread first, then wait for each.</summary>
    public void RequestInterrupt() => Request(PTRACE_INTERRUPT, "PTRACE_INTERRUPT");

    /// <summary>Waits for the stop a <see cref="RequestInterrupt"/> asked for (see <see cref="Interrupt"/>).</summary>
    public void WaitForInterruptStop()
    {
        while (true)
        {
            int status = WaitForStop("PTRACE_INTERRUPT");
            if (WaitStatus.PtraceEvent(status) == PTRACE_EVENT_STOP)
            {
                // A plain interrupt reports SIGTRAP; a group stop reports its stop signal.
                GroupStopSignal = WaitStatus.StopSignal(status) == SIGTRAP ? 0 : WaitStatus.StopSignal(status);
                if (InGroupStop) SettleGroupStop();
                return;
            }
            Continue(WaitStatus.StopSignal(status));
        }
    }

    /// <summary>
    /// A task seized in a job-control stop traps by itself (PTRACE_SEIZE of a stopped task schedules a
    /// STOP trap), and a PTRACE_INTERRUPT that arrived after that trap leaves a second one pending,
    /// which would come first on the next resume and get in the way of an injected call. So make one
    /// pending for sure (PTRACE_INTERRUPT again) and take it (PTRACE_CONT: the task goes straight from
    /// the trap to the next one inside get_signal, without a user instruction). After this, resuming the
    /// task runs it (it has taken part in the group stop already), and the kernel puts it back into the
    /// group stop when the tracer lets go (__ptrace_unlink sets JOBCTL_STOP_PENDING again).
    /// </summary>
    public void SettleGroupStop()
    {
        RequestInterrupt();
        Continue();
        while (true)
        {
            int status = WaitForStop("the second STOP trap of a job-control-stopped task");
            if (WaitStatus.PtraceEvent(status) == PTRACE_EVENT_STOP)
            {
                GroupStopSignal = WaitStatus.StopSignal(status) == SIGTRAP ? 0 : WaitStatus.StopSignal(status);
                return;
            }
            Continue(WaitStatus.StopSignal(status));
        }
    }

    /// <summary>Restore: the task has taken part in a group stop the engine made (its STOP trap was just reported).</summary>
    public void EnteredGroupStop(int signal) => GroupStopSignal = signal;

    /// <summary>waitpid(__WALL) for the next stop; throws if the task exited or was killed.</summary>
    public int WaitForStop(string waitingFor)
    {
        int status;
        int result;
        do result = waitpid(Pid, &status, WALL);
        while (result < 0 && LastErrno == Errno.EINTR);
        if (result < 0) throw new SyscallException("waitpid", LastErrno, Pid, $"waiting for the stop after {waitingFor}");
        if (!WaitStatus.Stopped(status))
        {
            Attached = false;
            throw new TraceeExitedException(Pid, $"{WaitStatus.Describe(status)} while waiting for the stop after {waitingFor}");
        }
        return status;
    }

    public void Continue(int signal = 0) => Request(PTRACE_CONT, "PTRACE_CONT", 0, signal);

    /// <summary>PTRACE_SETOPTIONS (PTRACE_O_*).</summary>
    public void SetOptions(int options) => Request(PTRACE_SETOPTIONS, "PTRACE_SETOPTIONS", 0, options);

    /// <summary>
    /// After the task was continued for good (see Tasks/SyscallReentry): the kernel detaches it when
    /// the tracing thread exits; nothing else may be asked of it.
    /// </summary>
    public void MarkReleased() => Attached = false;

    /// <summary>
    /// Resumes the task to its next syscall-entry or syscall-exit stop (PTRACE_SYSCALL, reported as
    /// SIGTRAP | 0x80 with PTRACE_O_TRACESYSGOOD). Unlike PTRACE_SINGLESTEP it leaves no single-step
    /// state behind: should the engine die, the kernel's automatic detach lets the task run on, while
    /// a task last single-stepped would take a fatal SIGTRAP at its next syscall exit.
    /// </summary>
    public void ResumeToSyscallStop(string what)
    {
        int status = ResumeToNextStop(what);
        if (!IsSyscallStop(status))
            throw new InvalidOperationException($"task {Pid}: {WaitStatus.Describe(status)} while waiting for the stop at {what}");
    }

    /// <summary>PTRACE_SYSCALL and the status of the next stop, whatever it is (syscall, event, signal).</summary>
    public int ResumeToNextStop(string what, int signal = 0)
    {
        Request(PTRACE_SYSCALL, "PTRACE_SYSCALL", 0, signal);
        return WaitForStop(what);
    }


    public static bool IsSyscallStop(int status) => WaitStatus.StopSignal(status) == (SIGTRAP | 0x80) && WaitStatus.PtraceEvent(status) == 0;

    /// <summary>PTRACE_GETEVENTMSG: the new task's id at a clone/fork event stop, the exit status at an exit stop.</summary>
    public ulong GetEventMessage()
    {
        ulong message;
        Request(PTRACE_GETEVENTMSG, "PTRACE_GETEVENTMSG", 0, (nint)(&message));
        return message;
    }

    /// <summary>Resumes the task <paramref name="how"/> without waiting: its stop is collected later (<see cref="WaitForStop"/>), so several tasks can run at once.</summary>
    public void Resume(TraceeResume how) => Request((int)how, NameOf(how));

    private static string NameOf(TraceeResume how) => how switch
    {
        TraceeResume.Continue => "PTRACE_CONT",
        TraceeResume.ToSyscall => "PTRACE_SYSCALL",
        _ => "PTRACE_SINGLESTEP",
    };

    /// <summary>
    /// PTRACE_SETREGS then the resume <paramref name="how"/> in one request to the tracer thread
    /// (<see cref="PtraceRelay.CallThen"/>): how every injected call and batch starts.
    /// </summary>
    public void SetRegistersAndResume(in UserRegisters registers, TraceeResume how)
    {
        fixed (UserRegisters* regs = &registers)
        {
            long result = PtraceRelay.CallThen(PTRACE_SETREGS, 0, (nint)regs, (int)how, 0, 0, Pid, out int errno, out bool firstFailed);
            if (result == -1) Fail(firstFailed ? "PTRACE_SETREGS" : NameOf(how), errno);
        }
    }

    public UserRegisters GetRegisters()
    {
        UserRegisters regs;
        Request(PTRACE_GETREGS, "PTRACE_GETREGS", 0, (nint)(&regs));
        return regs;
    }

    public void SetRegisters(in UserRegisters registers)
    {
        fixed (UserRegisters* regs = &registers) Request(PTRACE_SETREGS, "PTRACE_SETREGS", 0, (nint)regs);
    }

    /// <summary>The xsave area (FPU, SSE, AVX, AVX-512 ...) at the size the kernel reports.</summary>
    public byte[] GetXstate()
    {
        // One buffer per thread: a fresh 64 KiB array per captured thread cost 16 page faults (a checkpoint of
        // 100 processes spent more time faulting them in than in the ptrace calls).
        byte[] buffer = t_xstateBuffer ??= new byte[MaxXstateSize];
        fixed (byte* bytes = buffer)
        {
            var iov = new Iovec { Base = (nint)bytes, Length = (nuint)buffer.Length };
            Request(PTRACE_GETREGSET, "PTRACE_GETREGSET(NT_X86_XSTATE)", NT_X86_XSTATE, (nint)(&iov));
            return buffer.AsSpan(0, (int)iov.Length).ToArray();
        }
    }

    public void SetXstate(byte[] xstate)
    {
        fixed (byte* bytes = xstate)
        {
            var iov = new Iovec { Base = (nint)bytes, Length = (nuint)xstate.Length };
            Request(PTRACE_SETREGSET, "PTRACE_SETREGSET(NT_X86_XSTATE)", NT_X86_XSTATE, (nint)(&iov));
        }
    }

    public ulong GetSignalMask()
    {
        ulong mask;
        Request(PTRACE_GETSIGMASK, "PTRACE_GETSIGMASK", sizeof(ulong), (nint)(&mask));
        return mask;
    }

    public void SetSignalMask(ulong mask) => Request(PTRACE_SETSIGMASK, "PTRACE_SETSIGMASK", sizeof(ulong), (nint)(&mask));

    /// <summary>si_code of the signal a signal-delivery stop reports (PTRACE_GETSIGINFO): SI_KERNEL (0x80) for a trap of the task's own.</summary>
    public int GetSignalCode()
    {
        byte* siginfo = stackalloc byte[128];
        Request(PTRACE_GETSIGINFO, "PTRACE_GETSIGINFO", 0, (nint)siginfo);
        return *(int*)(siginfo + 8); // si_signo, si_errno, si_code
    }

    /// <summary>Queued signals without dequeuing them: the thread's own queue, or the process-wide one.</summary>
    public List<byte[]> PeekSignals(bool shared)
    {
        const int Batch = 32, SiginfoSize = 128;
        var result = new List<byte[]>();
        byte[] buffer = new byte[Batch * SiginfoSize];
        fixed (byte* bytes = buffer)
        {
            while (true)
            {
                var args = new PeekSiginfoArgs { Offset = (ulong)result.Count, Flags = shared ? 1u : 0u, Count = Batch };
                long n = Request(PTRACE_PEEKSIGINFO, "PTRACE_PEEKSIGINFO", (nint)(&args), (nint)bytes);
                for (int i = 0; i < n; i++) result.Add(buffer.AsSpan(i * SiginfoSize, SiginfoSize).ToArray());
                if (n < Batch) return result;
            }
        }
    }

    /// <summary>The task's rseq registration; Address 0 when it has none.</summary>
    public RseqConfiguration GetRseqConfiguration()
    {
        RseqConfiguration configuration;
        Request(PTRACE_GET_RSEQ_CONFIGURATION, "PTRACE_GET_RSEQ_CONFIGURATION", sizeof(RseqConfiguration), (nint)(&configuration));
        return configuration;
    }

    /// <summary>Lets the task run on, untraced.</summary>
    public void Detach(int signal = 0)
    {
        Request(PTRACE_DETACH, "PTRACE_DETACH", 0, signal);
        Attached = false;
    }

    /// <summary>SIGKILL, then collects the tracer's exit notification.</summary>
    public void Kill()
    {
        SendKill();
        WaitForExit();
    }

    /// <summary>SIGKILL to the task's whole thread group, without waiting.</summary>
    public void SendKill()
    {
        if (kill(Pid, SIGKILL) != 0 && LastErrno != Errno.ESRCH)
            throw new SyscallException("kill(SIGKILL)", LastErrno, Pid);
    }

    /// <summary>
    /// Collects the tracer's exit notification of a killed task. Wait for every other thread of
    /// a group before its leader: the kernel reports a leader's exit only after its threads'.
    /// </summary>
    public void WaitForExit()
    {
        int status;
        while (waitpid(Pid, &status, WALL) >= 0 && WaitStatus.Stopped(status)) { }
        Attached = false;
    }

    // ptrace requests other than SEIZE need the tracee in a ptrace stop. A task this engine has
    // stopped only leaves the stop when SIGKILL hits it, so ESRCH here means it is exiting.
    private long Request(int request, string name, nint address = 0, nint data = 0)
    {
        long result = PtraceRelay.Call(request, Pid, address, data, out int errno);
        if (result == -1 || (result < 0 && request != PTRACE_PEEKSIGINFO)) Fail(name, errno);
        return result;
    }

    private void Fail(string name, int errno)
    {
        if (errno == Errno.ESRCH)
        {
            Attached = false;
            throw new TraceeExitedException(Pid, $"was killed or exited (ptrace({name}): ESRCH)");
        }
        throw new SyscallException($"ptrace({name})", errno, Pid);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PeekSiginfoArgs
    {
        public ulong Offset;
        public uint Flags;
        public int Count;
    }
}

/// <summary>How <see cref="Tracee.SetRegistersAndResume"/> resumes the task (the ptrace request).</summary>
public enum TraceeResume
{
    /// <summary>PTRACE_CONT: to its next signal or event stop.</summary>
    Continue = 7,
    /// <summary>PTRACE_SINGLESTEP: one instruction (a syscall instruction: the whole call).</summary>
    SingleStep = 9,
    /// <summary>PTRACE_SYSCALL: to its next syscall-entry or -exit stop.</summary>
    ToSyscall = 24,
}

/// <summary>struct ptrace_rseq_configuration.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct RseqConfiguration
{
    public ulong Address;
    public uint Length;
    public uint Signature;
    public uint Flags;
    public uint Padding;
}

/// <summary>The traced task exited or was killed while the engine worked on it.</summary>
public sealed class TraceeExitedException(int pid, string detail) : Exception($"process {pid} {detail}")
{
    public int Pid { get; } = pid;
}
