namespace Ckpt.Image.Records;

/// <summary>PosixTimerRecord.Notify: the sigevent's sigev_notify, as /proc/PID/timers shows it.</summary>
public enum PosixTimerNotify : int
{
    Signal = 0,         // SIGEV_SIGNAL: the signal goes to the process
    None = 1,           // SIGEV_NONE: no notification, the timer is only read
    Thread = 2,         // SIGEV_THREAD: delivered by the kernel as SIGEV_SIGNAL (glibc's helper thread uses ThreadId)
    ThreadId = 4,       // SIGEV_THREAD_ID: the signal goes to the thread NotifyTid
}

/// <summary>
/// CkptPS: one POSIX timer (timer_create) of the process, after the process-wide SIGNAL record and
/// its queue, in increasing TimerId order, as many as the process had (none: no record). Identity
/// and notification come from /proc/PID/timers ("ID", "signal: SIGNO/VALUE", "notify: KIND/pid|tid.N",
/// "ClockID"); the times were read by timer_gettime injected into the stopped process, the overrun by
/// timer_getoverrun. A restore creates the timer with the same id (prctl PR_TIMER_CREATE_RESTORE_IDS),
/// clock and sigevent, and arms it with ValueNanoseconds left, counted from the restore (as the time
/// left of a sleep is), and the interval.
/// </summary>
[ImageRecord(RecordType.PosixTimer)]
public partial struct PosixTimerRecord
{
    public int TimerId;                 // the timer_t the process uses (0, 1, 2 ... as the kernel gave them)
    public int ClockId;                 // clockid_t; negative: a CPU-time clock, ~(pid) << 3 | type (4 = per thread)
    public PosixTimerNotify Notify;
    public int Signal;                  // sigev_signo (1..64)
    public int NotifyTid;               // SIGEV_THREAD_ID: the thread that gets the signal (a thread of this process)
    public int Overrun;                 // timer_getoverrun at checkpoint time (informational: the kernel has no way to set it)
    public ulong SigevValue;            // sigev_value (sival_ptr/sival_int), handed to the signal handler in si_value
    public long ValueNanoseconds;       // time left until the next expiry; 0: disarmed
    public long IntervalNanoseconds;    // period after each expiry; 0: one-shot
}
