using Ckpt.Image.Records;

namespace Ckpt.Image.Model;

/// <summary>
/// The POSIX_TIMER records after a SIGNAL record's queue (ImageModelReader's order): ids increasing,
/// a notification the kernel knows, a valid signal, a clock id the kernel could have given, and
/// times that are neither negative nor beyond what a timespec of the kernel holds. Whether a thread
/// named by a timer exists is the restore's check (it knows every thread by then).
/// </summary>
public static class PosixTimersReader
{
    private const long MaxNanoseconds = long.MaxValue / 2; // far beyond any real timer, and safe to add to a clock

    internal static List<PosixTimerRecord> Read(ImageReader reader)
    {
        var timers = new List<PosixTimerRecord>();
        while (true)
        {
            reader.ThrowIfFailedCheckpoint();
            if (reader.PeekType() != RecordType.PosixTimer) return timers;
            if (timers.Count >= ImageLimits.MaxPosixTimers)
                throw Error(reader, $"more than {ImageLimits.MaxPosixTimers} POSIX timers");
            var timer = reader.Read<PosixTimerRecord>();
            if (timer.TimerId < 0 || (timers.Count > 0 && timer.TimerId <= timers[^1].TimerId))
                throw Error(reader, $"timer id {timer.TimerId} is negative or not above the previous timer's");
            if (Problem(timer) is { } problem)
                throw Error(reader, $"timer {timer.TimerId}: {problem}");
            timers.Add(timer);
        }
    }

    private static string? Problem(PosixTimerRecord timer)
    {
        if (timer.Notify is not (PosixTimerNotify.Signal or PosixTimerNotify.None or PosixTimerNotify.Thread or PosixTimerNotify.ThreadId))
            return $"notification {(int)timer.Notify} is not SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD or SIGEV_THREAD_ID";
        if (timer.Notify != PosixTimerNotify.None && (timer.Signal < 1 || timer.Signal > 64))
            return $"signal {timer.Signal} is outside 1..64";
        if (timer.Notify == PosixTimerNotify.ThreadId && timer.NotifyTid <= 0)
            return $"SIGEV_THREAD_ID names thread {timer.NotifyTid}";
        if (!IsKnownClock(timer.ClockId))
            return $"clock id {timer.ClockId} is not a clock a timer can use";
        if (timer.ValueNanoseconds is < 0 or > MaxNanoseconds || timer.IntervalNanoseconds is < 0 or > MaxNanoseconds)
            return $"time left {timer.ValueNanoseconds} ns or interval {timer.IntervalNanoseconds} ns is negative or too large";
        if (timer.Overrun < 0)
            return $"overrun {timer.Overrun} is negative";
        return null;
    }

    /// <summary>
    /// CLOCK_REALTIME 0, MONOTONIC 1, PROCESS_CPUTIME_ID 2, THREAD_CPUTIME_ID 3, BOOTTIME 7,
    /// REALTIME_ALARM 8, BOOTTIME_ALARM 9, TAI 11; a CPU-time clock of a pid or tid is negative:
    /// ~pid << 3 | type, type 0..2 (PROF, VIRT, SCHED) plus 4 for a thread (3 and 7 are not CPU clocks).
    /// </summary>
    public static bool IsKnownClock(int clock) => clock switch
    {
        0 or 1 or 2 or 3 or 7 or 8 or 9 or 11 => true,
        < 0 => (clock & 3) != 3,
        _ => false,
    };

    /// <summary>For a CPU-time clock (negative id): the pid or tid it measures (0: the caller) and whether it is a thread's.</summary>
    public static (int Pid, bool PerThread) CpuClockTarget(int clock) => (~(clock >> 3), (clock & 4) != 0);

    private static ImageFormatException Error(ImageReader reader, string problem) =>
        new(RecordType.PosixTimer, reader.CurrentRecordOffset, problem);
}
