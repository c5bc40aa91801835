using Ckpt.Engine.Linux;
using Ckpt.Engine.Tasks;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Signals;

/// <summary>
/// The process-wide signal objects: SIGNAL_HANDLERS + 64 SIGNAL_ACTIONs (read by injection), and
/// SIGNAL (limits from /proc/PID/limits, itimers by injection) with the process-wide queue.
/// Queues are read with PTRACE_PEEKSIGINFO, which leaves them queued; the thread-directed queue of
/// each thread goes with its thread (<see cref="Pending"/>).
/// </summary>
public static class SignalsCheckpoint
{
    public static void WriteHandlers(ImageWriter writer, InjectedTaskState injected, int handlersObjRef)
    {
        writer.Write(new SignalHandlersRecord { ObjRef = handlersObjRef, ActionCount = injected.Actions.Length });
        foreach (SignalActionRecord action in injected.Actions) writer.Write(action);
    }

    /// <summary>SIGNAL, its process-wide queue, then the POSIX timers (<see cref="PosixTimers"/>).</summary>
    public static unsafe void WriteSignal(ImageWriter writer, Tracee leader, InjectedTaskState injected, int signalObjRef, IReadOnlyList<PosixTimerRecord> timers)
    {
        List<SignalPendingRecord> pending = Pending(leader, shared: true);
        var signal = new SignalRecord { PendingCount = pending.Count, ObjRef = signalObjRef };
        var limits = ProcLimits.Read(leader.Pid);
        for (int i = 0; i < SignalRecord.RlimitCapacity; i++)
        {
            signal.RlimitCurrent[i] = limits[i].Current;
            signal.RlimitMaximum[i] = limits[i].Maximum;
        }
        (signal.RealTimerValueNs, signal.RealTimerIntervalNs) = injected.Itimers[0];
        (signal.VirtualTimerValueNs, signal.VirtualTimerIntervalNs) = injected.Itimers[1];
        (signal.ProfTimerValueNs, signal.ProfTimerIntervalNs) = injected.Itimers[2];
        writer.Write(signal);
        foreach (SignalPendingRecord record in pending) writer.Write(record);
        foreach (PosixTimerRecord timer in timers) writer.Write(timer);
    }

    /// <summary>The queued signals of a thread's own queue, or of the process-wide one.</summary>
    public static unsafe List<SignalPendingRecord> Pending(Tracee tracee, bool shared)
    {
        var pending = new List<SignalPendingRecord>();
        foreach (byte[] siginfo in tracee.PeekSignals(shared))
        {
            var record = new SignalPendingRecord { Signal = BitConverter.ToInt32(siginfo, 0), Shared = shared ? 1 : 0 };
            for (int i = 0; i < siginfo.Length; i++) record.Siginfo[i] = siginfo[i];
            pending.Add(record);
        }
        return pending;
    }
}
