using System.Runtime.InteropServices;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.ProcessCreationNative;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// Per-thread state: the alternate signal stack and the rseq area (injected), the xsave area
/// (PTRACE_SETREGSET), and at the very end the blocked mask (PTRACE_SETSIGMASK) and registers.
/// The new task never ran glibc (it stopped at exec), so it has no rseq registration to drop.
/// </summary>
public static unsafe class ThreadRestore
{
    private const long SYS_sigaltstack = 131, SYS_rseq = 334;
    private const int PTRACE_GETREGSET = 0x4204, PTRACE_SETREGSET = 0x4205, PTRACE_SETSIGMASK = 0x420b;
    private const int NT_X86_XSTATE = 0x202;

    [StructLayout(LayoutKind.Sequential)]
    private struct Iovec
    {
        public nint Base;
        public nuint Length;
    }

    public static void SetStackAndRseq(InjectedSyscalls syscalls, ThreadPlan thread, ScratchArea scratch)
    {
        scratch.Reset();
        SignalStackRecord stack = thread.SignalStack;
        const int SS_DISABLE = 2;
        if ((stack.Flags & SS_DISABLE) == 0)
        {
            var value = new StackT { Pointer = stack.StackPointer, Flags = stack.Flags & ~1 /* SS_ONSTACK is not settable */, Size = stack.StackSize };
            syscalls.Call("sigaltstack", SYS_sigaltstack, scratch.PutStruct(value), 0);
        }
        RseqRecord rseq = thread.Rseq;
        if (rseq.Address != 0)
            syscalls.Call($"rseq(0x{rseq.Address:x})", SYS_rseq, rseq.Address, rseq.Length, 0, rseq.Signature);
    }

    /// <summary>Writes the xsave area after checking this CPU's area has the same size.</summary>
    public static void SetXstate(int pid, ThreadPlan thread)
    {
        byte[] current = new byte[thread.Xstate.Length + 4096];
        fixed (byte* buffer = current)
        {
            var iov = new Iovec { Base = (nint)buffer, Length = (nuint)current.Length };
            if (ptrace(PTRACE_GETREGSET, pid, NT_X86_XSTATE, (nint)(&iov)) != 0)
                throw new SyscallException("ptrace(PTRACE_GETREGSET, NT_X86_XSTATE)", Marshal.GetLastPInvokeError(), pid);
            if ((int)iov.Length != thread.Xstate.Length)
                throw new RestoreRefusedException($"this CPU's xsave area is {iov.Length} bytes, the image's {thread.Xstate.Length}: FPU state cannot move between them");
        }
        fixed (byte* buffer = thread.Xstate)
        {
            var iov = new Iovec { Base = (nint)buffer, Length = (nuint)thread.Xstate.Length };
            if (ptrace(PTRACE_SETREGSET, pid, NT_X86_XSTATE, (nint)(&iov)) != 0)
                throw new SyscallException("ptrace(PTRACE_SETREGSET, NT_X86_XSTATE)", Marshal.GetLastPInvokeError(), pid);
        }
    }

    public static void SetMaskAndRegisters(InjectedSyscalls syscalls, ThreadPlan thread, RestorePlan plan)
    {
        ulong mask = thread.Thread.BlockedSignals;
        if (ptrace(PTRACE_SETSIGMASK, syscalls.Pid, 8, (nint)(&mask)) != 0)
            throw new SyscallException("ptrace(PTRACE_SETSIGMASK)", Marshal.GetLastPInvokeError(), syscalls.Pid);
        syscalls.SetRegisters(InterruptedSyscallRestore.Registers(thread, plan));
    }
}
