namespace Ckpt.Image.Records;

/// <summary>How a task stopped inside a system call must be resumed.</summary>
public enum SyscallState : uint
{
    NotInSyscall = 0,
    Restart = 1,           // -ERESTARTSYS/-ERESTARTNOINTR/-ERESTARTNOHAND: re-run it
    RestartBlock = 2,      // -ERESTART_RESTARTBLOCK: continue via the RestartBlockRecord
    Interrupted = 3,       // returns -EINTR to the program
}

/// <summary>
/// The per-thread state of a task, followed by [RESTART_BLOCK], SIGNAL_STACK, RSEQ, CPU,
/// CPU_XSTATE and PendingCount SIGNAL_PENDING records (signals queued for this thread alone).
/// set_child_tid is not saved: the kernel uses it once, when the thread starts.
/// </summary>
[ImageRecord(RecordType.Thread)]
public unsafe partial struct ThreadRecord
{
    public int Tid;
    public SyscallState SyscallState;
    public long SyscallNumber;           // orig_rax at the stop, -1 when not in a syscall
    public long SyscallResult;           // rax at the stop (-ERESTART...)
    public ulong BlockedSignals;         // sigmask
    public ulong ClearChildTid;          // set_tid_address; 0: none
    public ulong RobustListHead;         // set_robust_list; 0: none
    public ulong RobustListLength;
    public int SchedulingPolicy;         // SCHED_OTHER = 0, ...
    public int SchedulingPriority;       // sched_param.sched_priority (real-time policies)
    public int Nice;
    public int PendingCount;             // thread-directed SignalPendingRecords after CPU_XSTATE
    public fixed byte Comm[16];          // the thread's name
}

public enum RestartFunction : uint
{
    None = 0,
    Nanosleep = 1,        // relative sleep: Arguments[0] = remaining ns at checkpoint, [1] = clock id
    ClockNanosleepAbsolute = 2, // Arguments[0] = absolute deadline ns, [1] = clock id
    Poll = 3,             // Arguments[0] = remaining timeout ns
    FutexWait = 4,        // Arguments[0] = remaining timeout ns
    Other = 5,            // re-run the system call with its original arguments
}

/// <summary>
/// linux-cr's restart block: what an interrupted sleeping system call still had to do,
/// with times relative to the start of the checkpoint.
/// </summary>
[ImageRecord(RecordType.RestartBlock)]
public unsafe partial struct RestartBlockRecord
{
    public RestartFunction Function;
    public uint Reserved;
    public long SyscallNumber;
    public fixed ulong Arguments[6];
}

/// <summary>x86-64 general registers: struct user_regs_struct, in its order.</summary>
[ImageRecord(RecordType.Cpu)]
public partial struct CpuRecord
{
    public ulong R15, R14, R13, R12, Rbp, Rbx, R11, R10, R9, R8;
    public ulong Rax, Rcx, Rdx, Rsi, Rdi, OrigRax, Rip, Cs, Eflags, Rsp, Ss;
    public ulong FsBase, GsBase, Ds, Es, Fs, Gs;
}

/// <summary>The xsave area (NT_X86_XSTATE regset), as trailing bytes.</summary>
[ImageRecord(RecordType.CpuXstate)]
public partial struct CpuXstateRecord
{
    public ulong XstateFeatures;         // xstate_bv of the saved area
    [TrailingBytes] public uint Length;
    public uint Reserved;
}

/// <summary>The thread's rseq registration (PTRACE_GET_RSEQ_CONFIGURATION).</summary>
[ImageRecord(RecordType.Rseq)]
public partial struct RseqRecord
{
    public ulong Address;                // 0: not registered
    public uint Length;
    public uint Signature;
    public uint Flags;
    public uint Reserved;
}

/// <summary>The alternate signal stack (sigaltstack).</summary>
[ImageRecord(RecordType.SignalStack)]
public partial struct SignalStackRecord
{
    public ulong StackPointer;
    public ulong StackSize;
    public int Flags;                    // SS_DISABLE, SS_AUTODISARM
    public int Reserved;
}
