using System.Globalization;
using System.Runtime.InteropServices;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files;

/// <summary>
/// timerfd: clock, settime flags, time left, interval and the expirations counted but not read, from
/// /proc/PID/fdinfo/N (the kernel shows the time left, relative, whatever the flags). The time left is
/// kept relative to the checkpoint, as for sleeps; an absolute CLOCK_REALTIME timer also records its
/// absolute expiry and keeps it. Restore: an injected timerfd_create and timerfd_settime (a relative
/// timer gets its time left, an absolute one the recorded expiry or, on the other clocks, the restoring
/// host's clock plus the time left), then TFD_IOC_SET_TICKS for the counted expirations (present when
/// the kernel has CONFIG_CHECKPOINT_RESTORE). A periodic timer that expired unread is armed 1 ns ahead
/// and waited for (so the kernel knows it must be re-armed on the next read) before its ticks are set.
/// Not visible and not kept: the "cancelled" state of a TFD_TIMER_CANCEL_ON_SET timer whose clock was
/// set and that was not read since.
/// </summary>
public sealed partial class TimerfdKind : IDescriptorKind
{
    private const string Target = "anon_inode:[timerfd]";
    private const uint O_NONBLOCK = 0x800;
    private const long SYS_ioctl = 16, SYS_timerfd_create = 283, SYS_timerfd_settime = 286;
    private const ulong TFD_IOC_SET_TICKS = 0x40085400; // _IOW('T', 0, u64)
    private const short POLLIN = 1;
    private const long NanosecondsPerSecond = 1_000_000_000;

    public bool Matches(DescriptorInfo fd) => fd.Target == Target;

    public IInspectedFile Inspect(DescriptorInfo fd, int objRef)
    {
        IReadOnlyDictionary<string, string> fields = fd.FdInfo.Fields;
        string where = $"/proc/{fd.Pid}/fdinfo/{fd.Fd}";
        string Field(string key) => fields.TryGetValue(key, out string? value) ? value : throw new FormatException($"{where}: no {key} line");
        var timer = new TimerfdRecord
        {
            ObjRef = objRef,
            ClockId = int.Parse(Field("clockid"), CultureInfo.InvariantCulture),
            Ticks = ulong.Parse(Field("ticks"), CultureInfo.InvariantCulture),
            SettimeFlags = (TimerfdSettimeFlags)Convert.ToUInt32(Field("settime flags"), 8),
            ValueNanoseconds = Timespec(Field("it_value"), where),
            IntervalNanoseconds = Timespec(Field("it_interval"), where),
        };
        bool absoluteRealtime = timer.SettimeFlags.HasFlag(TimerfdSettimeFlags.Absolute)
            && timer.ClockId is TimerfdRecord.CLOCK_REALTIME or TimerfdRecord.CLOCK_REALTIME_ALARM;
        if (absoluteRealtime && timer.ValueNanoseconds != 0)
            timer.RealtimeExpiryNanoseconds = Now(TimerfdRecord.CLOCK_REALTIME) + timer.ValueNanoseconds;
        FileRecord file = OpenFileRecords.Record(objRef, FileKind.Timerfd, fd.Stat, Target, fd.FdInfo.Flags, 0);
        return new InspectedAnonymousFile<TimerfdRecord>(file, Target, timer);
    }

    /// <summary>"(seconds, nanoseconds)" as fdinfo prints it_value and it_interval.</summary>
    private static long Timespec(string text, string where)
    {
        string[] parts = text.Trim('(', ')').Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length != 2 || !long.TryParse(parts[0], CultureInfo.InvariantCulture, out long seconds) || !long.TryParse(parts[1], CultureInfo.InvariantCulture, out long nanoseconds))
            throw new FormatException($"{where}: '{text}' is not a (seconds, nanoseconds) pair");
        return seconds * NanosecondsPerSecond + nanoseconds;
    }

    public bool Restores(FileImage file) => file.Record.Kind == FileKind.Timerfd;

    public void Validate(FileImage file, int fd)
    {
        if (file.Timerfd is null)
            throw new RestoreRefusedException($"fd {fd} is a timerfd without its TIMERFD record");
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Itimerspec
    {
        public long IntervalSeconds, IntervalNanoseconds, ValueSeconds, ValueNanoseconds;
    }

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd)
    {
        TimerfdRecord timer = file.Timerfd!.Value;
        ulong createFlags = file.Record.OpenFlags & O_NONBLOCK;
        long created = syscalls.Call($"timerfd_create(clock {timer.ClockId}, 0x{createFlags:x}) for fd {fd}", SYS_timerfd_create, (ulong)timer.ClockId, createFlags);
        long value = ValueToSet(timer);
        var setting = new Itimerspec
        {
            IntervalSeconds = timer.IntervalNanoseconds / NanosecondsPerSecond, IntervalNanoseconds = timer.IntervalNanoseconds % NanosecondsPerSecond,
            ValueSeconds = value / NanosecondsPerSecond, ValueNanoseconds = value % NanosecondsPerSecond,
        };
        syscalls.Call($"timerfd_settime(flags {timer.SettimeFlags}, value {value} ns, interval {timer.IntervalNanoseconds} ns) for fd {fd}",
            SYS_timerfd_settime, (ulong)created, (ulong)timer.SettimeFlags, scratch.PutStruct(setting), 0);
        if (timer.Ticks == 0) return created;
        if (timer.ExpiredPeriodic) WaitForExpiry(syscalls, scratch, created, fd);
        syscalls.Call($"ioctl(TFD_IOC_SET_TICKS, {timer.Ticks}) for fd {fd} (needs a kernel with CONFIG_CHECKPOINT_RESTORE)",
            SYS_ioctl, (ulong)created, TFD_IOC_SET_TICKS, scratch.PutStruct(timer.Ticks));
        return created;
    }

    // The value timerfd_settime gets: the time left (relative, or absolute on the restoring host's
    // clock), the recorded expiry of an absolute CLOCK_REALTIME timer, 1 ns for a periodic timer that
    // expired unread (0 would disarm it), 0 for a disarmed or spent one.
    private static long ValueToSet(in TimerfdRecord timer)
    {
        long left = timer.ValueNanoseconds != 0 ? timer.ValueNanoseconds : timer.ExpiredPeriodic ? 1 : 0;
        if (left == 0 || !timer.SettimeFlags.HasFlag(TimerfdSettimeFlags.Absolute)) return left;
        return timer.RealtimeExpiryNanoseconds != 0 ? timer.RealtimeExpiryNanoseconds : Now(timer.ClockId) + left;
    }

    // A timer armed 1 ns ahead fires at once; until it has, TFD_IOC_SET_TICKS would be added to.
    private static void WaitForExpiry(SyscallInjector syscalls, ScratchArea scratch, long created, int fd)
    {
        ulong pollfd = scratch.PutStruct(((long)(uint)created) | ((long)POLLIN << 32));
        ulong timeout = scratch.PutStruct(new Timespec16 { Seconds = 1 });
        long ready = syscalls.Call($"ppoll of the re-armed timerfd for fd {fd}", SYS_ppoll, pollfd, 1, timeout, 0, 0);
        if (ready != 1) throw new IOException($"timerfd of fd {fd}: armed 1 ns ahead, it had not expired after 1 s");
    }

    private static long Now(int clock)
    {
        if (clock_gettime(clock, out Timespec16 now) != 0)
            throw new SyscallException($"clock_gettime({clock})", Marshal.GetLastPInvokeError(), Environment.ProcessId, "for a timerfd");
        return now.Seconds * NanosecondsPerSecond + now.Nanoseconds;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec16
    {
        public long Seconds, Nanoseconds;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int clock_gettime(int clock, out Timespec16 time);
}
