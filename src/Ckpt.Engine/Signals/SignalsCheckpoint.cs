using Ckpt.Engine.Linux;
using Ckpt.Engine.Tasks;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Signals;

/// <summary>
/// Writes SIGNAL_HANDLERS + 64 SIGNAL_ACTIONs (read by injection), SIGNAL (limits from
/// /proc/PID/limits, itimers by injection) and the queued signals of the thread and of the
/// process (PTRACE_PEEKSIGINFO, which leaves them queued).
/// </summary>
public static class SignalsCheckpoint
{
    public static unsafe void Write(ImageWriter writer, Tracee tracee, InjectedTaskState injected, int handlersObjRef)
    {
        writer.Write(new SignalHandlersRecord { ObjRef = handlersObjRef, ActionCount = injected.Actions.Length });
        foreach (SignalActionRecord action in injected.Actions) writer.Write(action);

        var pending = new List<SignalPendingRecord>();
        foreach (bool shared in new[] { false, true })
        {
            foreach (byte[] siginfo in tracee.PeekSignals(shared))
            {
                var record = new SignalPendingRecord { Signal = BitConverter.ToInt32(siginfo, 0), Shared = shared ? 1 : 0 };
                for (int i = 0; i < siginfo.Length; i++) record.Siginfo[i] = siginfo[i];
                pending.Add(record);
            }
        }

        var signal = new SignalRecord { PendingCount = pending.Count };
        var limits = ProcLimits.Read(tracee.Pid);
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
    }
}
