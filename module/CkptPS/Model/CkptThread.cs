using Ckpt.Image.Records;

namespace CkptPS;

/// <summary>
/// One thread of a checkpointed process: its tid and name, how it stopped (the system call it was
/// in and how the restore resumes it), its signal mask, own pending signals, alternate signal
/// stack and scheduling. The kernel's names (comm, blocked, sas_ss_sp, ...) are alias properties
/// added by CkptPS.types.ps1xml.
/// </summary>
public sealed class CkptThread
{
    public required string ImagePath { get; init; }
    /// <summary>The process (thread group) the thread belongs to.</summary>
    public required int Pid { get; init; }
    public required int Tid { get; init; }
    /// <summary>The thread's name (its comm, /proc/PID/task/TID/comm).</summary>
    public required string Name { get; init; }
    /// <summary>True for the thread group leader (Tid = Pid).</summary>
    public bool IsLeader => Tid == Pid;
    /// <summary>NotInSyscall, Restart (the call is re-run), RestartBlock (continued with its time left) or Interrupted.</summary>
    public required SyscallState State { get; init; }
    /// <summary>The system call number the thread was in (orig_rax), -1 for none.</summary>
    public required long SyscallNumber { get; init; }
    /// <summary>Its name for common calls (futex, nanosleep, read, poll, ...), else empty.</summary>
    public required string SyscallName { get; init; }
    /// <summary>"202 futex", a bare number when the name is not known here, "-" for none.</summary>
    public required string Syscall { get; init; }
    /// <summary>How an interrupted sleep continues (Nanosleep, FutexWait, ...), None without a restart block.</summary>
    public required RestartFunction RestartFunction { get; init; }
    /// <summary>The blocked signal mask: bit N-1 is signal N.</summary>
    public required ulong BlockedSignals { get; init; }
    /// <summary>Signals queued for this thread alone (the process-wide queue is not counted).</summary>
    public required int PendingSignals { get; init; }
    /// <summary>The alternate signal stack as "0xADDRESS+SIZE", or "disabled".</summary>
    public required string SignalStack { get; init; }
    public required ulong SignalStackPointer { get; init; }
    public required ulong SignalStackSize { get; init; }
    public required int Nice { get; init; }
    public required SchedulingPolicy Policy { get; init; }
    /// <summary>sched_param.sched_priority (real-time policies), 0 otherwise.</summary>
    public required int Priority { get; init; }
    /// <summary>The instruction pointer the thread resumes at.</summary>
    public required ulong Rip { get; init; }

    public override string ToString() => $"{Name} ({Tid})";
}

/// <summary>Linux scheduling policies (SCHED_*).</summary>
public enum SchedulingPolicy
{
    Other = 0,
    Fifo = 1,
    RoundRobin = 2,
    Batch = 3,
    Idle = 5,
    Deadline = 6,
}
