namespace Ckpt.Image.Records;

/// <summary>The signal handler table: SignalActionRecords follow, one per signal 1.._NSIG.</summary>
[ImageRecord(RecordType.SignalHandlers)]
public partial struct SignalHandlersRecord
{
    public int ObjRef;
    public int ActionCount;
}

/// <summary>One handler, as rt_sigaction reports it (struct kernel_sigaction).</summary>
[ImageRecord(RecordType.SignalAction)]
public partial struct SignalActionRecord
{
    public int Signal;
    public uint Reserved;
    public ulong Handler;               // SIG_DFL = 0, SIG_IGN = 1, or an address
    public ulong Flags;                 // SA_*
    public ulong Restorer;
    public ulong Mask;
}

/// <summary>Process-wide signal state (signal_struct): resource limits, interval timers, the shared queue.</summary>
[ImageRecord(RecordType.Signal)]
public unsafe partial struct SignalRecord
{
    public const int RlimitCapacity = 16;

    public fixed ulong RlimitCurrent[16];
    public fixed ulong RlimitMaximum[16];
    public long RealTimerValueNs, RealTimerIntervalNs;      // ITIMER_REAL
    public long VirtualTimerValueNs, VirtualTimerIntervalNs;
    public long ProfTimerValueNs, ProfTimerIntervalNs;
    public int PendingCount;            // process-wide queued SignalPendingRecords follow
    public int ObjRef;
}

/// <summary>One queued signal: the siginfo as PTRACE_PEEKSIGINFO returns it.</summary>
[ImageRecord(RecordType.SignalPending)]
public unsafe partial struct SignalPendingRecord
{
    public int Signal;
    public int Shared;                  // 1: process-wide queue, 0: the thread's own
    public fixed byte Siginfo[128];
}
