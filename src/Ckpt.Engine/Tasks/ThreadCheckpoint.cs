using Ckpt.Engine.Checkpoint.Audit;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Signals;
using Ckpt.Image;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// One stopped thread: registers, how it stopped inside a system call (and the restart block of an
/// interrupted sleep), its blocked mask, queued thread-directed signals, alternate signal stack and
/// clear_child_tid (both injected into the thread itself: <see cref="ThreadProbes"/>), robust futex list, name, scheduling,
/// rseq registration (<see cref="RseqCriticalSection.MoveToAbort"/> must have run before any
/// injection into the process), and the xsave area. Read with <see cref="Capture"/> while frozen, written with <see cref="Write"/>.
/// </summary>
public sealed record ThreadCheckpoint(
    ThreadRecord Thread, RestartBlockRecord? RestartBlock, SignalStackRecord SignalStack,
    RseqRecord Rseq, CpuRecord Cpu, CpuXstateRecord XstateRecord, byte[] Xstate, List<SignalPendingRecord> Pending)
{
    private const long ERESTARTSYS = -512, ERESTARTNOINTR = -513, ERESTARTNOHAND = -514, ERESTART_RESTARTBLOCK = -516;
    private const int XstateBvOffset = 512;

    /// <param name="probes">what was read by injection into the thread (<see cref="ThreadProbes"/>); every injection session is closed</param>
    public static unsafe ThreadCheckpoint Capture(Tracee tracee, int tgid, ThreadProbes probes)
    {
        int tid = tracee.Pid;
        UserRegisters regs = tracee.GetRegisters();
        var (state, number) = SyscallStateOf(regs);
        if (state == SyscallState.RestartBlock) number = RestartBlocks.OriginalSyscall(tid, regs);
        RestartBlockRecord? block = state == SyscallState.RestartBlock ? RestartBlocks.Read(tid, regs) : null;
        RseqConfiguration rseq = tracee.GetRseqConfiguration();
        byte[] xstate = tracee.GetXstate();
        List<SignalPendingRecord> pending = SignalsCheckpoint.Pending(tracee, shared: false);

        var thread = new ThreadRecord
        {
            Tid = tid, SyscallState = state, SyscallNumber = number, SyscallResult = (long)regs.Rax,
            BlockedSignals = tracee.GetSignalMask(), ClearChildTid = probes.ClearChildTid, PendingCount = pending.Count,
        };
        ReadRobustList(tid, ref thread);
        ReadScheduling(tid, ref thread);
        RecordText.SetCString(thread.Comm, 16, ProcText.ReadAllText($"/proc/{tgid}/task/{tid}/comm").TrimEnd('\n'));
        return new ThreadCheckpoint(thread, block,
            probes.SignalStack,
            new RseqRecord { Address = rseq.Address, Length = rseq.Length, Signature = rseq.Signature, Flags = rseq.Flags },
            ToRecord(regs),
            new CpuXstateRecord { XstateFeatures = BitConverter.ToUInt64(xstate, XstateBvOffset), Length = (uint)xstate.Length },
            xstate, pending) { ParentDeathSignal = probes.ParentDeathSignal };
    }

    /// <summary>prctl(PR_GET_PDEATHSIG) of the thread: 0, or the signal it gets when its parent thread exits.</summary>
    public int ParentDeathSignal { get; init; }

    private static unsafe void ReadRobustList(int tid, ref ThreadRecord thread)
    {
        ulong head = 0, length = 0;
        if (Native.syscall3(SYS_get_robust_list, tid, (long)&head, (long)&length) != 0)
            throw new SyscallException("get_robust_list", Native.LastErrno, tid);
        (thread.RobustListHead, thread.RobustListLength) = (head, length);
    }

    private static unsafe void ReadScheduling(int tid, ref ThreadRecord thread)
    {
        long policy = Native.syscall3(SYS_sched_getscheduler, tid, 0, 0);
        if (policy < 0) throw new SyscallException("sched_getscheduler", Native.LastErrno, tid);
        int priority = 0;
        if (Native.syscall3(SYS_sched_getparam, tid, (long)&priority, 0) != 0)
            throw new SyscallException("sched_getparam", Native.LastErrno, tid);
        // The raw getpriority returns 20 - nice, so it is never negative.
        long raw = Native.syscall3(SYS_getpriority, 0 /* PRIO_PROCESS */, tid, 0);
        if (raw < 0) throw new SyscallException("getpriority", Native.LastErrno, tid);
        thread.SchedulingPolicy = (int)policy & ~0x40000000; // without SCHED_RESET_ON_FORK
        thread.SchedulingPriority = priority;
        thread.Nice = 20 - (int)raw;
    }

    /// <summary>In image order: THREAD, [RESTART_BLOCK], SIGNAL_STACK, RSEQ, CPU, CPU_XSTATE, SIGNAL_PENDING...</summary>
    public void Write(ImageWriter writer)
    {
        writer.Write(Thread);
        if (RestartBlock is { } block) writer.Write(block);
        writer.Write(SignalStack);
        writer.Write(Rseq);
        writer.Write(Cpu);
        writer.Write(XstateRecord, Xstate);
        foreach (SignalPendingRecord record in Pending) writer.Write(record);
    }

    // A thread frozen inside a syscall sits in the kernel's signal path with orig_rax = its number
    // and rax = one of the internal restart codes; any other rax means the call had completed.
    private static (SyscallState State, long Number) SyscallStateOf(in UserRegisters regs)
    {
        long number = (long)regs.OrigRax;
        if (number < 0) return (SyscallState.NotInSyscall, -1);
        return (long)regs.Rax switch
        {
            ERESTARTSYS or ERESTARTNOINTR or ERESTARTNOHAND => (SyscallState.Restart, number),
            ERESTART_RESTARTBLOCK => (SyscallState.RestartBlock, number),
            _ => (SyscallState.NotInSyscall, number),
        };
    }

    private static CpuRecord ToRecord(in UserRegisters r) => new()
    {
        R15 = r.R15, R14 = r.R14, R13 = r.R13, R12 = r.R12, Rbp = r.Rbp, Rbx = r.Rbx, R11 = r.R11, R10 = r.R10,
        R9 = r.R9, R8 = r.R8, Rax = r.Rax, Rcx = r.Rcx, Rdx = r.Rdx, Rsi = r.Rsi, Rdi = r.Rdi, OrigRax = r.OrigRax,
        Rip = r.Rip, Cs = r.Cs, Eflags = r.Eflags, Rsp = r.Rsp, Ss = r.Ss, FsBase = r.FsBase, GsBase = r.GsBase,
        Ds = r.Ds, Es = r.Es, Fs = r.Fs, Gs = r.Gs,
    };
}

/// <summary>
/// rseq: a thread stopped between a critical section's start_ip and start_ip + post_commit_offset
/// must resume at its abort_ip, which the kernel would do on its next return to user space.
/// <see cref="MoveToAbort"/> does it at once, before anything is injected: an injected syscall
/// returns to user space outside the section, and the kernel then just clears rseq_cs, after
/// which the thread would resume inside the section unprotected (and the image would too).
/// </summary>
public static class RseqCriticalSection
{
    private const int RseqCsPointerOffset = 8; // struct rseq: cpu_id_start, cpu_id, rseq_cs

    /// <summary>Moves a stopped thread's ip to the abort handler if it is inside a critical section.</summary>
    public static void MoveToAbort(Tracee tracee)
    {
        UserRegisters regs = tracee.GetRegisters();
        ulong resume = ResumeAddress(tracee.Pid, tracee.GetRseqConfiguration(), regs.Rip);
        if (resume == regs.Rip) return;
        regs.Rip = resume;
        tracee.SetRegisters(regs);
    }

    public static ulong ResumeAddress(int pid, RseqConfiguration rseq, ulong rip)
    {
        if (rseq.Address == 0) return rip;
        ulong descriptor = BitConverter.ToUInt64(ProcessMemory.ReadExact(pid, rseq.Address + RseqCsPointerOffset, 8));
        if (descriptor == 0) return rip;
        // struct rseq_cs { u32 version; u32 flags; u64 start_ip; u64 post_commit_offset; u64 abort_ip; }
        byte[] cs = ProcessMemory.ReadExact(pid, descriptor, 32);
        ulong start = BitConverter.ToUInt64(cs, 8), length = BitConverter.ToUInt64(cs, 16), abort = BitConverter.ToUInt64(cs, 24);
        return rip >= start && rip - start < length ? abort : rip;
    }
}
