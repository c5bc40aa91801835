using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// Turns the recorded registers of a thread stopped inside a system call into the registers it
/// resumes with. The task resumes from a syscall-exit-stop with orig_rax = -1, so the kernel's
/// own restart logic stays out of the way and this class decides:
/// Restart re-runs the call (rax = number, rip back over the 2-byte `syscall`); an interrupted
/// relative sleep re-runs it for the time that was left at checkpoint time (linux-cr's relative
/// restart block), with the remaining timespec as its request; Interrupted returns -EINTR.
/// </summary>
public static unsafe class InterruptedSyscallRestore
{
    private const int RedZone = 128;

    public static UserRegisters Registers(ThreadImage thread, RestorePlan plan)
    {
        UserRegisters regs = FromRecord(thread.Cpu);
        regs.OrigRax = ulong.MaxValue;
        switch (thread.Thread.SyscallState)
        {
            case SyscallState.NotInSyscall:
            case SyscallState.Interrupted:
                break; // rax already holds the result the program sees (-EINTR for Interrupted)
            case SyscallState.Restart:
                Rerun(ref regs, thread.Thread.SyscallNumber);
                break;
            case SyscallState.RestartBlock:
                RestartBlock(ref regs, thread, plan);
                break;
            default:
                throw new RestoreRefusedException($"thread {thread.Thread.Tid}: unknown syscall state {thread.Thread.SyscallState}");
        }
        return regs;
    }

    private static void Rerun(ref UserRegisters regs, long number)
    {
        regs.Rax = (ulong)number;
        regs.Rip -= 2;
    }

    private static void RestartBlock(ref UserRegisters regs, ThreadImage thread, RestorePlan plan)
    {
        RestartBlockRecord block = thread.RestartBlock
            ?? throw new RestoreRefusedException($"thread {thread.Thread.Tid} stopped in a restartable sleep but the image has no RESTART_BLOCK for it");
        Rerun(ref regs, block.SyscallNumber);
        if (block.Function != RestartFunction.Nanosleep) return; // absolute deadlines and the rest re-run as they were called
        ulong remaining = block.Arguments[0];
        ulong buffer = SleepBuffer(ref regs, block.SyscallNumber, plan, thread.Thread.Tid);
        Span<byte> timespec = stackalloc byte[16];
        BitConverter.TryWriteBytes(timespec, (long)(remaining / 1_000_000_000));
        BitConverter.TryWriteBytes(timespec[8..], (long)(remaining % 1_000_000_000));
        ProcessMemory.Write(plan.Pid, buffer, timespec);
    }

    // Where the remaining time goes: the call's own rem buffer (the kernel writes it on EINTR
    // anyway), else below the stack's red zone, which the ABI leaves free at any instruction.
    private static ulong SleepBuffer(ref UserRegisters regs, long number, RestorePlan plan, int tid)
    {
        ulong buffer;
        switch (number)
        {
            case SYS_nanosleep:
                buffer = regs.Rsi != 0 ? regs.Rsi : BelowRedZone(regs, plan, tid);
                regs.Rdi = buffer;
                break;
            case SYS_clock_nanosleep:
                buffer = regs.R10 != 0 ? regs.R10 : BelowRedZone(regs, plan, tid);
                regs.Rdx = buffer;
                break;
            default:
                throw new RestoreRefusedException($"thread {tid}: relative sleep restart block for syscall {number}, expected nanosleep or clock_nanosleep");
        }
        return buffer;
    }

    private static ulong BelowRedZone(in UserRegisters regs, RestorePlan plan, int tid)
    {
        ulong address = (regs.Rsp - RedZone - 64) & ~15ul;
        bool mapped = plan.Vmas.Any(v => v.Record.VmStart <= address && address + 16 <= v.Record.VmEnd);
        return mapped ? address : throw new RestoreRefusedException($"thread {tid}: no stack room below rsp 0x{regs.Rsp:x} for the remaining sleep time");
    }

    private static UserRegisters FromRecord(in CpuRecord cpu) => new()
    {
        R15 = cpu.R15, R14 = cpu.R14, R13 = cpu.R13, R12 = cpu.R12, Rbp = cpu.Rbp, Rbx = cpu.Rbx, R11 = cpu.R11,
        R10 = cpu.R10, R9 = cpu.R9, R8 = cpu.R8, Rax = cpu.Rax, Rcx = cpu.Rcx, Rdx = cpu.Rdx, Rsi = cpu.Rsi,
        Rdi = cpu.Rdi, OrigRax = cpu.OrigRax, Rip = cpu.Rip, Cs = cpu.Cs, Eflags = cpu.Eflags, Rsp = cpu.Rsp,
        Ss = cpu.Ss, FsBase = cpu.FsBase, GsBase = cpu.GsBase, Ds = cpu.Ds, Es = cpu.Es, Fs = cpu.Fs, Gs = cpu.Gs,
    };
}
