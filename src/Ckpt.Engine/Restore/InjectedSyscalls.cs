using System.Runtime.InteropServices;
using Ckpt.Engine.Linux;
using static Ckpt.Engine.Linux.ProcessCreationNative;

namespace Ckpt.Engine.Restore;

/// <summary>
/// Runs system calls inside a ptrace-stopped task made by <see cref="ProcessCreation"/>, using a
/// `syscall` instruction of the task's own vdso: nothing of ours is written into its code.
/// Each call: set the registers at a syscall-exit-stop, PTRACE_SYSCALL to the entry stop,
/// PTRACE_SYSCALL to the exit stop, read rax. Use only on the thread that created the task.
/// </summary>
public sealed unsafe class InjectedSyscalls
{
    private const int PTRACE_GETREGS = 12, PTRACE_SETREGS = 13, PTRACE_SYSCALL = 24;
    private const int SyscallStopSignal = SIGTRAP | 0x80; // PTRACE_O_TRACESYSGOOD

    private readonly UserRegisters _template;

    /// <summary>Takes the task from its PTRACE_EVENT_EXEC stop to execve's syscall-exit-stop,
    /// the state where its registers can be replaced without the kernel overwriting rax.</summary>
    public InjectedSyscalls(int pid)
    {
        Pid = pid;
        ResumeToSyscallStop("execve (exit)");
        _template = GetRegisters();
        SyscallAddress = FindVdsoSyscall();
    }

    public int Pid { get; }

    /// <summary>Address of a `syscall` instruction; changes when the vdso is moved.</summary>
    public ulong SyscallAddress { get; private set; }

    /// <summary>Runs a syscall; returns its raw result (-errno on failure).</summary>
    public long CallRaw(long number, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0, ulong a5 = 0, ulong a6 = 0)
    {
        UserRegisters regs = _template;
        regs.Rip = SyscallAddress;
        regs.Rax = (ulong)number;
        regs.OrigRax = ulong.MaxValue; // not in a syscall: no restart logic on the way out
        (regs.Rdi, regs.Rsi, regs.Rdx, regs.R10, regs.R8, regs.R9) = (a1, a2, a3, a4, a5, a6);
        SetRegisters(regs);
        ResumeToSyscallStop($"syscall {number} (entry)");
        ResumeToSyscallStop($"syscall {number} (exit)");
        return (long)GetRegisters().Rax;
    }

    /// <summary>Runs a syscall and throws a <see cref="SyscallException"/> naming it if it fails.</summary>
    public long Call(string name, long number, ulong a1 = 0, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0, ulong a5 = 0, ulong a6 = 0)
    {
        long result = CallRaw(number, a1, a2, a3, a4, a5, a6);
        if (result < 0 && result > -4096)
            throw new SyscallException(name, (int)-result, Pid, "injected into the restored task");
        return result;
    }

    /// <summary>Call after moving the vdso: the instruction moved with it.</summary>
    public void RelocateSyscall(long delta) => SyscallAddress = (ulong)((long)SyscallAddress + delta);

    public UserRegisters GetRegisters()
    {
        UserRegisters regs;
        if (ptrace(PTRACE_GETREGS, Pid, 0, (nint)(&regs)) != 0)
            throw new SyscallException("ptrace(PTRACE_GETREGS)", Marshal.GetLastPInvokeError(), Pid);
        return regs;
    }

    public void SetRegisters(in UserRegisters registers)
    {
        fixed (UserRegisters* regs = &registers)
        {
            if (ptrace(PTRACE_SETREGS, Pid, 0, (nint)regs) != 0)
                throw new SyscallException("ptrace(PTRACE_SETREGS)", Marshal.GetLastPInvokeError(), Pid);
        }
    }

    private void ResumeToSyscallStop(string what)
    {
        if (ptrace(PTRACE_SYSCALL, Pid, 0, 0) != 0)
            throw new SyscallException("ptrace(PTRACE_SYSCALL)", Marshal.GetLastPInvokeError(), Pid, what);
        int status = ProcessCreation.WaitForStop(Pid);
        if (!WaitStatus.Stopped(status) || WaitStatus.StopSignal(status) != SyscallStopSignal || WaitStatus.PtraceEvent(status) != 0)
            throw new InvalidOperationException($"restored task {Pid} {WaitStatus.Describe(status)} while waiting for the stop of {what}");
    }

    private ulong FindVdsoSyscall()
    {
        MapsLine vdso = MapsLine.ReadAll(Pid).FirstOrDefault(m => m.Name == "[vdso]")
            ?? throw new InvalidOperationException($"task {Pid} has no [vdso] mapping to run system calls through");
        byte[] code = ProcessMemory.ReadExact(Pid, vdso.Start, checked((int)(vdso.End - vdso.Start)));
        for (int i = 0; i + 1 < code.Length; i++)
        {
            if (code[i] == 0x0f && code[i + 1] == 0x05)
                return vdso.Start + (ulong)i;
        }
        throw new InvalidOperationException($"the vdso of task {Pid} contains no syscall instruction");
    }
}
