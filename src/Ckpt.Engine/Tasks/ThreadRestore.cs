using System.Runtime.InteropServices;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Engine.Signals;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// Threads on the restore side. <see cref="CreateThreads"/>: every thread but the leader is made by
/// the leader itself, by an injected clone3 with CLONE_THREAD and set_tid (so it gets its original
/// tid and shares the restored memory, descriptors and handlers); PTRACE_O_TRACECLONE attaches it
/// stopped before it runs a single instruction. Then per thread, injected into the thread itself:
/// alternate signal stack, rseq area, robust futex list, clear_child_tid, name, its own queued
/// signals; the xsave area (PTRACE_SETREGSET); scheduling after the credentials; and at the very
/// end the blocked mask and registers, and the release (<see cref="SyscallReentry"/>: a signal that
/// arrives the moment the restore returns interrupts a re-entered call as it would the original).
/// New threads have no rseq registration (the kernel drops it on clone with CLONE_VM), and the
/// leader never ran glibc (it stopped at exec), so there is none to drop.
/// </summary>
public static unsafe class ThreadRestore
{
    private const ulong CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_THREAD = 0x10000, CLONE_SYSVSEM = 0x40000;
    private const ulong PR_SET_NAME = 15;
    private const int PTRACE_EVENT_STOP = 128;

    /// <summary>Creates every thread but the leader, from inside the leader, and adds them to the context.</summary>
    public static void CreateThreads(RestoreContext context)
    {
        SyscallInjector leader = context.Leader;
        ScratchArea scratch = context.Scratch;
        foreach (ThreadImage thread in context.Plan.Threads.Skip(1))
        {
            scratch.Reset();
            int tid = thread.Tid;
            ulong setTid = scratch.PutStruct(tid);
            var arguments = new CloneArgs
            {
                Flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM,
                SetTid = setTid, SetTidSize = 1,
            };
            long result = leader.CallRaw(SYS_clone3, scratch.PutStruct(arguments), (ulong)sizeof(CloneArgs));
            if (result == -Errno.EEXIST) throw new PidInUseException(tid, ProcessNames.CommOf(tid));
            if (result < 0) throw new SyscallException($"clone3(CLONE_THREAD, set_tid {tid})", (int)-result, context.Plan.Pid, "injected into the restored leader");
            var tracee = Tracee.Adopt((int)result);
            context.Created(tracee);
            int status = tracee.WaitForStop($"creation of thread {tid}");
            if (WaitStatus.PtraceEvent(status) != PTRACE_EVENT_STOP)
                throw new InvalidOperationException($"new thread {tid} {WaitStatus.Describe(status)} instead of its first ptrace stop");
            context.AddThread(new RestoredThread(thread, SyscallInjector.ForNewThread(tracee, leader.SyscallAddress)));
        }
    }

    /// <summary>State only the thread itself can set: signal stack, rseq, robust list, clear_child_tid, name, own queue.</summary>
    public static void SetThreadState(SyscallInjector syscalls, ThreadImage thread, RestorePlan plan, ScratchArea scratch)
    {
        scratch.Reset();
        var batch = new SyscallBatch(syscalls, scratch); // one ptrace stop for all (a long queue: a few)
        AddThreadState(batch, thread, plan, scratch);
        batch.Run();
    }

    /// <summary><see cref="SetThreadState"/>'s calls, added to a batch that runs in the thread.</summary>
    public static void AddThreadState(SyscallBatch batch, ThreadImage thread, RestorePlan plan, ScratchArea scratch)
    {
        SignalStackRecord stack = thread.SignalStack;
        const int SS_DISABLE = 2;
        if ((stack.Flags & SS_DISABLE) == 0)
        {
            var value = new StackT { Pointer = stack.StackPointer, Flags = stack.Flags & ~1 /* SS_ONSTACK is not settable */, Size = stack.StackSize };
            batch.Add("sigaltstack", SYS_sigaltstack, scratch.PutStruct(value), 0);
        }
        RseqRecord rseq = thread.Rseq;
        if (rseq.Address != 0)
            batch.Add($"rseq(0x{rseq.Address:x})", SYS_rseq, rseq.Address, rseq.Length, 0, rseq.Signature);
        ThreadRecord record = thread.Thread;
        if (record.RobustListHead != 0)
            batch.Add("set_robust_list", SYS_set_robust_list, record.RobustListHead, record.RobustListLength);
        if (record.ClearChildTid != 0)
            batch.Add("set_tid_address", SYS_set_tid_address, record.ClearChildTid);
        // Threads are made before the leader's personality is set (they must exist before the credentials
        // leave CAP_CHECKPOINT_RESTORE behind); the checkpoint refuses threads with their own personality.
        if (thread.Tid != plan.Pid)
            batch.Add("personality", SYS_personality, plan.Task.Personality);
        byte[] name = new byte[16];
        for (int i = 0; i < 15 && record.Comm[i] != 0; i++) name[i] = record.Comm[i];
        batch.Add($"prctl(PR_SET_NAME, {thread.Name})", SYS_prctl, PR_SET_NAME, scratch.Put(name));
        foreach (SignalPendingRecord pending in thread.Pending)
            SignalsRestore.AddQueued(batch, scratch, plan.Pid, thread.Tid, pending);
    }

    /// <summary>
    /// Policy and nice value where they are not the default, set by the thread itself after its
    /// credentials: the kernel then allows only what the restored user may do.
    /// </summary>
    /// <remarks>Added to <paramref name="batch"/>, which runs in the thread; the caller runs it.</remarks>
    public static void AddScheduling(SyscallBatch batch, ThreadImage thread, ScratchArea scratch)
    {
        ThreadRecord record = thread.Thread;
        if (record.SchedulingPolicy != 0)
            batch.Add($"sched_setscheduler({record.SchedulingPolicy})", SYS_sched_setscheduler, 0, (ulong)record.SchedulingPolicy, scratch.PutStruct(record.SchedulingPriority));
        if (record.Nice != 0)
            batch.Add($"setpriority(nice {record.Nice})", SYS_setpriority, 0 /* PRIO_PROCESS */, 0, (ulong)(long)record.Nice);
    }

    /// <summary>Writes the xsave area after checking this CPU's area has the same size.</summary>
    public static void SetXstate(Tracee tracee, ThreadImage thread)
    {
        int size = Volatile.Read(ref s_xstateSize);
        if (size == 0) Volatile.Write(ref s_xstateSize, size = tracee.GetXstate().Length);
        if (size != thread.Xstate.Length)
            throw new RestoreRefusedException($"this CPU's xsave area is {size} bytes, the image's {thread.Xstate.Length}: FPU state cannot move between them");
        tracee.SetXstate(thread.Xstate);
    }

    // The xsave area size of the tasks this engine makes, read from the first: every one is a fresh task on
    // this CPU and kernel, without the permission for dynamically enabled features (AMX) that would enlarge it.
    private static int s_xstateSize;

    /// <summary>
    /// The last step of a thread: its blocked mask and registers, PTRACE_O_EXITKILL off, and the
    /// thread let go (an interrupted call re-entered first, see <see cref="SyscallReentry"/>).
    /// </summary>
    public static void Release(SyscallInjector syscalls, ThreadImage thread, RestorePlan plan)
    {
        Tracee tracee = syscalls.Tracee;
        tracee.SetSignalMask(thread.Thread.BlockedSignals);
        tracee.SetOptions(ProcessCreation.PTRACE_O_TRACESYSGOOD | ProcessCreation.PTRACE_O_TRACEEXEC);
        UserRegisters registers = InterruptedSyscallRestore.Registers(thread, plan);
        long? interrupted = thread.Thread.SyscallState is SyscallState.Restart or SyscallState.RestartBlock ? thread.Thread.SyscallResult : null;
        SyscallReentry.ReleaseRestored(tracee, registers, interrupted);
        tracee.MarkReleased();
    }
}
