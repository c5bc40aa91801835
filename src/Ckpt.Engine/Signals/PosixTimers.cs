using System.Globalization;
using System.Runtime.InteropServices;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Signals;

/// <summary>
/// POSIX timers (timer_create), both sides. Checkpoint: /proc/PID/timers gives each timer's id,
/// signal and sigev value, notification (and the thread of SIGEV_THREAD_ID) and clock; timer_gettime
/// and timer_getoverrun injected into the stopped leader give the time left, the interval and the
/// overrun. A timer on the CPU clock of "the calling thread" (CLOCK_THREAD_CPUTIME_ID, or a thread
/// CPU clock of pid 0) in a process with several threads is refused: nothing says which thread made it.
/// Restore (after every thread exists, before the credentials change, since the prctl needs
/// CAP_CHECKPOINT_RESTORE): prctl(PR_TIMER_CREATE_RESTORE_IDS, ON), then per timer timer_create with
/// the recorded id passed in through the timer_t pointer (the kernel reads it from there in that mode),
/// the clock and the sigevent, timer_settime with the time left (relative: counted from the restore,
/// like a sleep's) and the interval; then the prctl OFF. The overrun count cannot be set (no kernel
/// interface): it reads 0 until the next expiry. A timer signal that was queued at checkpoint time is
/// restored as a queued signal (with the process's queue), not as the timer's own preallocated one.
/// </summary>
public static class PosixTimers
{
    private const int CLOCK_THREAD_CPUTIME_ID = 3, CLOCK_REALTIME_ALARM = 8, CLOCK_BOOTTIME_ALARM = 9;
    private const int CAP_WAKE_ALARM = 35;
    private const ulong PR_TIMER_CREATE_RESTORE_IDS = 77, ON = 1, OFF = 0;

    [StructLayout(LayoutKind.Sequential)]
    private struct Itimerspec
    {
        public long IntervalSeconds, IntervalNanoseconds, ValueSeconds, ValueNanoseconds;
    }

    /// <summary>struct sigevent (x86-64, 64 bytes): value, signo, notify, then the union whose first int is the thread id.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 64)]
    private struct Sigevent
    {
        public ulong Value;
        public int Signal, Notify, ThreadId;
    }

    // ---- checkpoint ----

    /// <summary>The timers /proc/PID/timers lists (times not read yet), in id order; refuses what cannot be restored.</summary>
    public static List<PosixTimerRecord> Inspect(int pid, int threadCount)
    {
        var timers = Parse(pid, ProcText.ReadAllLines($"/proc/{pid}/timers"));
        foreach (PosixTimerRecord timer in timers)
        {
            bool callersThreadClock = timer.ClockId == CLOCK_THREAD_CPUTIME_ID
                || (timer.ClockId < 0 && PosixTimersReader.CpuClockTarget(timer.ClockId) is (0, true));
            if (callersThreadClock && threadCount > 1)
                throw new CheckpointRefusedException($"POSIX timer {timer.TimerId} of process {pid} counts the CPU time of the thread that created it, and the process has {threadCount} threads: which one is not visible, unsupported");
            if (timer.ClockId < 0 && PosixTimersReader.CpuClockTarget(timer.ClockId) is ({ } other, _) && other != 0 && !Directory.Exists($"/proc/{pid}/task/{other}"))
                throw new CheckpointRefusedException($"POSIX timer {timer.TimerId} of process {pid} counts the CPU time of process {other}, another process: unsupported");
        }
        return timers;
    }

    /// <summary>Parses the "ID / signal / notify / ClockID" blocks of /proc/PID/timers.</summary>
    internal static List<PosixTimerRecord> Parse(int pid, IEnumerable<string> lines)
    {
        var timers = new List<PosixTimerRecord>();
        PosixTimerRecord current = default;
        foreach (string line in lines)
        {
            int colon = line.IndexOf(':');
            if (colon < 0) continue;
            string key = line[..colon], value = line[(colon + 1)..].Trim();
            switch (key)
            {
                case "ID":
                    current = new PosixTimerRecord { TimerId = Int(value, pid, line) };
                    break;
                case "signal":
                    string[] signal = value.Split('/');
                    current.Signal = Int(signal[0], pid, line);
                    current.SigevValue = ulong.Parse(signal[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    break;
                case "notify":
                    // "signal/pid.N", "none/pid.N", "thread/pid.N", "signal/tid.N" (SIGEV_THREAD_ID)
                    string[] notify = value.Split('/', '.');
                    int kind = notify[0] switch { "signal" => 0, "none" => 1, "thread" => 2, _ => throw new FormatException($"/proc/{pid}/timers: unknown notification in '{line}'") };
                    current.Notify = (PosixTimerNotify)(kind | (notify[1] == "tid" ? 4 : 0));
                    current.NotifyTid = Int(notify[2], pid, line);
                    break;
                case "ClockID":
                    current.ClockId = Int(value, pid, line);
                    timers.Add(current); // the last line of a timer's block
                    break;
            }
        }
        return timers.OrderBy(t => t.TimerId).ToList();
    }

    private static int Int(string text, int pid, string line) =>
        int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value) ? value
            : throw new FormatException($"/proc/{pid}/timers: '{line}' is not what this engine reads");

    /// <summary>The time left, interval and overrun of each timer, injected into the stopped leader (its session).</summary>
    public static List<PosixTimerRecord> ReadTimes(RemoteSyscall remote, List<PosixTimerRecord> timers)
    {
        if (timers.Count == 0) return timers;
        var read = new List<PosixTimerRecord>(timers.Count);
        foreach (PosixTimerRecord timer in timers)
        {
            remote.Call($"timer_gettime({timer.TimerId})", SYS_timer_gettime, (ulong)timer.TimerId, remote.Scratch);
            var spec = remote.ReadScratch<Itimerspec>(0);
            int overrun = (int)remote.Call($"timer_getoverrun({timer.TimerId})", SYS_timer_getoverrun, (ulong)timer.TimerId);
            read.Add(timer with
            {
                ValueNanoseconds = spec.ValueSeconds * 1_000_000_000 + spec.ValueNanoseconds,
                IntervalNanoseconds = spec.IntervalSeconds * 1_000_000_000 + spec.IntervalNanoseconds,
                Overrun = overrun,
            });
        }
        return read;
    }

    // ---- restore ----

    /// <summary>Before any process exists: every thread and CPU clock a timer names is one of the image's.</summary>
    public static void Validate(RestorePlan plan)
    {
        var tids = plan.Threads.Select(t => t.Tid).ToHashSet();
        foreach (PosixTimerRecord timer in plan.Process.Signal.PosixTimers)
        {
            if (timer.Notify == PosixTimerNotify.ThreadId && !tids.Contains(timer.NotifyTid))
                throw new RestoreRefusedException($"POSIX timer {timer.TimerId} signals thread {timer.NotifyTid}, which is not a thread of the image");
            if (timer.ClockId < 0 && PosixTimersReader.CpuClockTarget(timer.ClockId) is var (target, perThread) && target != 0
                && (perThread ? !tids.Contains(target) : target != plan.Pid))
                throw new RestoreRefusedException($"POSIX timer {timer.TimerId} counts the CPU time of {(perThread ? "thread" : "process")} {target}, which is not of the image");
            bool callersThreadClock = timer.ClockId == CLOCK_THREAD_CPUTIME_ID || (timer.ClockId < 0 && PosixTimersReader.CpuClockTarget(timer.ClockId) is (0, true));
            if (callersThreadClock && plan.Threads.Count > 1)
                throw new RestoreRefusedException($"POSIX timer {timer.TimerId} counts the CPU time of its creating thread, which a process of {plan.Threads.Count} threads does not say");
            // The engine creates timers as root: an alarm clock only for an image whose credentials could have made one.
            if (timer.ClockId is CLOCK_REALTIME_ALARM or CLOCK_BOOTTIME_ALARM && (plan.Credentials.CapEffective & (1ul << CAP_WAKE_ALARM)) == 0)
                throw new RestoreRefusedException($"POSIX timer {timer.TimerId} uses alarm clock {timer.ClockId}, which needs CAP_WAKE_ALARM, and the image's credentials do not have it");
        }
    }

    /// <summary>Creates every timer with its id, clock and notification, and arms it; injected into the leader.</summary>
    public static void Run(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch)
    {
        IReadOnlyList<PosixTimerRecord> timers = plan.Process.Signal.PosixTimers;
        if (timers.Count == 0) return;
        syscalls.Call("prctl(PR_TIMER_CREATE_RESTORE_IDS, ON)", SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, ON);
        foreach (PosixTimerRecord timer in timers)
        {
            scratch.Reset();
            var sigevent = new Sigevent { Value = timer.SigevValue, Signal = timer.Signal, Notify = (int)timer.Notify, ThreadId = timer.NotifyTid };
            ulong eventAddress = scratch.PutStruct(sigevent);
            ulong idAddress = scratch.PutStruct(timer.TimerId);
            syscalls.Call($"timer_create of POSIX timer {timer.TimerId} (clock {timer.ClockId})", SYS_timer_create, (ulong)(long)timer.ClockId, eventAddress, idAddress);
            int created = BitConverter.ToInt32(ProcessMemory.ReadExact(syscalls.Pid, idAddress, sizeof(int)));
            if (created != timer.TimerId)
                throw new IOException($"timer_create gave POSIX timer id {created} where {timer.TimerId} was asked for");
            if (timer.ValueNanoseconds <= 0) continue; // disarmed: a new timer is
            var spec = new Itimerspec
            {
                IntervalSeconds = timer.IntervalNanoseconds / 1_000_000_000, IntervalNanoseconds = timer.IntervalNanoseconds % 1_000_000_000,
                ValueSeconds = timer.ValueNanoseconds / 1_000_000_000, ValueNanoseconds = timer.ValueNanoseconds % 1_000_000_000,
            };
            syscalls.Call($"timer_settime of POSIX timer {timer.TimerId}", SYS_timer_settime, (ulong)timer.TimerId, 0, scratch.PutStruct(spec), 0);
        }
        syscalls.Call("prctl(PR_TIMER_CREATE_RESTORE_IDS, OFF)", SYS_prctl, PR_TIMER_CREATE_RESTORE_IDS, OFF);
    }
}
