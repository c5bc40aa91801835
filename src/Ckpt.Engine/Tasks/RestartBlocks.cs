using Ckpt.Engine.Linux;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// The restart block of a thread frozen in a call that returned -ERESTART_RESTARTBLOCK. For a
/// relative nanosleep/clock_nanosleep with a rem buffer, the kernel has written the remaining time
/// to *rem when PTRACE_INTERRUPT stopped it: that is what is recorded (relative to the checkpoint,
/// as linux-cr did). Without rem, and for poll and futex, the kernel's remaining time is not
/// visible from user space: the original timeout is recorded instead (the sleep restarts in full).
/// </summary>
public static class RestartBlocks
{
    private const ulong TIMER_ABSTIME = 1, CLOCK_MONOTONIC = 1;


    public static unsafe RestartBlockRecord Read(int pid, in UserRegisters regs)
    {
        long number = OriginalSyscall(pid, regs);
        var block = new RestartBlockRecord { SyscallNumber = number };
        switch (number)
        {
            case SYS_nanosleep:
                block.Function = RestartFunction.Nanosleep;
                block.Arguments[0] = Timespec(pid, regs.Rsi != 0 ? regs.Rsi : regs.Rdi);
                block.Arguments[1] = CLOCK_MONOTONIC;
                break;
            case SYS_clock_nanosleep when (regs.Rsi & TIMER_ABSTIME) != 0:
                block.Function = RestartFunction.ClockNanosleepAbsolute;
                block.Arguments[0] = Timespec(pid, regs.Rdx);
                block.Arguments[1] = regs.Rdi;
                break;
            case SYS_clock_nanosleep:
                block.Function = RestartFunction.Nanosleep;
                block.Arguments[0] = Timespec(pid, regs.R10 != 0 ? regs.R10 : regs.Rdx);
                block.Arguments[1] = regs.Rdi;
                break;
            case SYS_poll:
                block.Function = RestartFunction.Poll;
                block.Arguments[0] = (ulong)Math.Max(0L, (long)(int)regs.Rdx) * 1_000_000;
                break;
            case SYS_ppoll:
                block.Function = RestartFunction.Poll;
                block.Arguments[0] = regs.Rdx == 0 ? ulong.MaxValue : Timespec(pid, regs.Rdx);
                break;
            case SYS_futex:
                block.Function = RestartFunction.FutexWait;
                block.Arguments[0] = regs.R10 == 0 ? ulong.MaxValue : Timespec(pid, regs.R10);
                break;
            default:
                block.Function = RestartFunction.Other;
                (block.Arguments[0], block.Arguments[1], block.Arguments[2]) = (regs.Rdi, regs.Rsi, regs.Rdx);
                (block.Arguments[3], block.Arguments[4], block.Arguments[5]) = (regs.R10, regs.R8, regs.R9);
                break;
        }
        return block;
    }

    /// <summary>
    /// The call a restart block belongs to. A sleep interrupted before (an earlier checkpoint, a
    /// stopped-and-continued process) runs on as restart_syscall, whose number says nothing about
    /// the original; its arguments are still in the registers, and the original number is found
    /// in the `mov $nr, %eax` (b8 nr32) that glibc's wrappers put right before `syscall` (0f 05).
    /// When that pattern is absent, restart_syscall itself is recorded (Function Other).
    /// </summary>
    public static long OriginalSyscall(int pid, in UserRegisters regs)
    {
        long number = (long)regs.OrigRax;
        if (number != SYS_restart_syscall || regs.Rip < 7) return number;
        byte[] code = ProcessMemory.ReadExact(pid, regs.Rip - 7, 7);
        return code[0] == 0xb8 && code[5] == 0x0f && code[6] == 0x05 ? BitConverter.ToInt32(code, 1) : number;
    }

    private static ulong Timespec(int pid, ulong address)
    {
        byte[] bytes = ProcessMemory.ReadExact(pid, address, 16);
        long seconds = BitConverter.ToInt64(bytes, 0), nanoseconds = BitConverter.ToInt64(bytes, 8);
        return (ulong)(seconds * 1_000_000_000 + nanoseconds);
    }
}
