using Ckpt.Engine.Linux;
using System.Runtime.InteropServices;
using Ckpt.Engine.Restore;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Signals;

/// <summary>
/// Process-wide signal state, injected: handlers (rt_sigaction), interval timers (setitimer)
/// and queued signals (rt_sigqueueinfo / rt_tgsigqueueinfo: sent by the task to itself, the
/// kernel accepts any siginfo, so the original sender and code survive). The new task blocks
/// every signal until its recorded mask is set last, so nothing is delivered early.
/// </summary>
public static class SignalsRestore
{
    private const int SIGKILL = 9, SIGSTOP = 19;

    [StructLayout(LayoutKind.Sequential)]
    private struct KernelSigaction
    {
        public ulong Handler, Flags, Restorer, Mask;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct ItimerValue
    {
        public long IntervalSeconds, IntervalMicroseconds, ValueSeconds, ValueMicroseconds;
    }

    public static void Run(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch)
    {
        scratch.Reset();
        var batch = new SyscallBatch(syscalls, scratch);
        Add(batch, IgnoredSignals(syscalls.Pid), plan, scratch);
        batch.Run();
    }

    /// <summary>The signals a task ignores now (SigIgn): what <see cref="Add"/> compares the image's actions with.</summary>
    public static ulong IgnoredSignals(int pid) => ProcStatus.Read(pid).HexNumber("SigIgn");

    /// <summary>
    /// <see cref="Run"/>'s calls, added to a batch that runs in the process's leader, which ignores
    /// <paramref name="ignoredNow"/> (<see cref="IgnoredSignals"/>).
    /// </summary>
    public static void Add(SyscallBatch batch, ulong ignoredNow, RestorePlan plan, ScratchArea scratch)
    {
        // The new task has just executed its program: execve left every action SIG_DFL, or SIG_IGN
        // where the engine ignored the signal, with no flags, mask or restorer. An action the image
        // has as it is now needs no call (most of the 64: a hundred processes save thousands of calls).
        foreach (SignalActionRecord action in plan.SignalActions)
        {
            if (action.Signal is SIGKILL or SIGSTOP) continue;
            if (action.Signal < 1 || action.Signal > 64)
                throw new RestoreRefusedException($"signal action for signal {action.Signal}, outside 1..64");
            ulong handlerNow = (ignoredNow >> (action.Signal - 1) & 1) != 0 ? 1ul : 0ul;
            if (action.Handler == handlerNow && action.Flags == 0 && action.Restorer == 0 && action.Mask == 0) continue;
            var kernelAction = new KernelSigaction { Handler = action.Handler, Flags = action.Flags, Restorer = action.Restorer, Mask = action.Mask };
            batch.Add($"rt_sigaction({action.Signal})", SYS_rt_sigaction, (ulong)action.Signal, scratch.PutStruct(kernelAction), 0, 8);
        }
        SignalRecord signal = plan.Signal;
        AddTimer(batch, scratch, 0, "ITIMER_REAL", signal.RealTimerValueNs, signal.RealTimerIntervalNs);
        AddTimer(batch, scratch, 1, "ITIMER_VIRTUAL", signal.VirtualTimerValueNs, signal.VirtualTimerIntervalNs);
        AddTimer(batch, scratch, 2, "ITIMER_PROF", signal.ProfTimerValueNs, signal.ProfTimerIntervalNs);
        foreach (SignalPendingRecord pending in plan.SharedPendingSignals)
            AddQueued(batch, scratch, plan.Pid, tid: null, pending);
    }

    private static void AddTimer(SyscallBatch batch, ScratchArea scratch, ulong which, string name, long valueNs, long intervalNs)
    {
        if (valueNs <= 0 && intervalNs <= 0) return;
        // A timer about to fire must still fire: never round a running value down to 0 (disarmed).
        long valueUs = Math.Max(1, (valueNs + 999) / 1000), intervalUs = (intervalNs + 999) / 1000;
        var value = new ItimerValue
        {
            IntervalSeconds = intervalUs / 1_000_000, IntervalMicroseconds = intervalUs % 1_000_000,
            ValueSeconds = valueUs / 1_000_000, ValueMicroseconds = valueUs % 1_000_000,
        };
        batch.Add($"setitimer({name})", SYS_setitimer, which, scratch.PutStruct(value), 0);
    }

    /// <summary>
    /// Queues a recorded signal again: on the process-wide queue (rt_sigqueueinfo), or with
    /// <paramref name="tid"/> on that thread's own queue (rt_tgsigqueueinfo, injected into that
    /// thread itself, since the kernel accepts any siginfo only from a thread to itself). Added to a
    /// batch that runs in that thread; a full scratch area runs the batch first (a queue may hold thousands).
    /// </summary>
    public static unsafe void AddQueued(SyscallBatch batch, ScratchArea scratch, int tgid, int? tid, SignalPendingRecord pending)
    {
        const int SiginfoSize = 128;
        if (scratch.Remaining < SiginfoSize + 16)
        {
            batch.Run();
            scratch.Reset();
        }
        var siginfo = new byte[SiginfoSize];
        for (int i = 0; i < siginfo.Length; i++) siginfo[i] = pending.Siginfo[i];
        ulong address = scratch.Put(siginfo);
        if (tid is { } thread)
            batch.Add($"rt_tgsigqueueinfo({pending.Signal})", SYS_rt_tgsigqueueinfo, (ulong)tgid, (ulong)thread, (ulong)pending.Signal, address);
        else
            batch.Add($"rt_sigqueueinfo({pending.Signal})", SYS_rt_sigqueueinfo, (ulong)tgid, (ulong)pending.Signal, address);
    }
}
