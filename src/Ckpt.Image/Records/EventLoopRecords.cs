using System.Runtime.InteropServices;

namespace Ckpt.Image.Records;

// The objects an event loop is made of: pipes (self-pipes), epoll instances, signalfds and
// timerfds. Each descriptor of these kinds is a FILE record (its kind, "pipe:[inode]" or
// "anon_inode:[...]" as path, the open file's flags) followed by the record of its kind's state.

/// <summary>
/// The pipe behind a pipe end (linux-cr's PIPE_BUF). Written once per pipe, right after the FILE
/// record of the first end that uses it; the FILE record of every other end of the same pipe is
/// followed by an OBJREF record (ObjectType.Pipe, PipeObjRef) instead. The data buffered in the
/// pipe at checkpoint follows as trailing bytes: copied with tee(2), so the running target's pipe
/// kept it. A pipe whose writer is in packet mode (O_DIRECT) and holds data is refused at checkpoint
/// (the packet boundaries are not saved).
/// </summary>
[ImageRecord(RecordType.PipeBuffer)]
public partial struct PipeBufferRecord
{
    public const uint MinimumSize = 4096;            // one page: the kernel's smallest pipe
    public const uint MaximumSize = 1u << 20;        // the default /proc/sys/fs/pipe-max-size; larger ones are refused

    public int PipeObjRef;              // the pipe object (ObjectType.Pipe), shared by all its ends
    public uint PipeSize;               // fcntl(F_GETPIPE_SZ) in bytes: a power of two pages
    [TrailingBytes] public uint DataLength;  // bytes buffered at checkpoint (FIONREAD), at most PipeSize
    public uint Reserved;
}

/// <summary>
/// CkptPS: an epoll instance's interest list, right after its FILE record (Kind = Epoll, same
/// objref), from the "tfd:" lines of /proc/PID/fdinfo. ItemCount <see cref="EpollItem"/> entries
/// follow as trailing bytes. Each watched file was checked at checkpoint to be the one at its
/// recorded fd in the same descriptor table (kcmp KCMP_EPOLL_TFD), so restore adds the descriptor
/// at that fd with epoll_ctl(EPOLL_CTL_ADD) once every descriptor exists.
/// </summary>
[ImageRecord(RecordType.Epoll)]
public partial struct EpollRecord
{
    public const int MaxItems = 1 << 16;

    public int ObjRef;
    public int ItemCount;
    [TrailingBytes] public uint ItemsLength;  // ItemCount * EpollItem.Size
    public uint Reserved;
}

/// <summary>One watched descriptor of an <see cref="EpollRecord"/> (16 bytes, little endian).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct EpollItem
{
    public const int Size = 16;

    /// <summary>Events, EPOLLRDHUP, EPOLLEXCLUSIVE, EPOLLWAKEUP, EPOLLONESHOT and EPOLLET: what epoll_ctl accepts.</summary>
    public const uint KnownEvents = 0x0000_3fff | 0x1000_0000 | 0x2000_0000 | 0x4000_0000 | 0x8000_0000;
    public const uint EPOLLEXCLUSIVE = 1u << 28, EPOLLWAKEUP = 1u << 29, EPOLLONESHOT = 1u << 30, EPOLLET = 1u << 31;

    public int Fd;                      // the watched descriptor ("tfd"), in the same descriptor table
    public uint Events;                 // the events mask with its EPOLLET/EPOLLONESHOT/... flags ("events", hex)
    public ulong Data;                  // the user's 64-bit data ("data", hex)
}

/// <summary>
/// CkptPS: a signalfd, right after its FILE record (Kind = Signalfd, same objref): the signals it
/// reads ("sigmask" in fdinfo, bit N-1 for signal N; SIGKILL and SIGSTOP never). O_NONBLOCK is the
/// FILE record's. Pending signals are the process's and its threads' (restored with them) and are
/// readable through the restored signalfd.
/// </summary>
[ImageRecord(RecordType.Signalfd)]
public partial struct SignalfdRecord
{
    public const ulong Unblockable = (1ul << (9 - 1)) | (1ul << (19 - 1)); // SIGKILL, SIGSTOP

    public int ObjRef;
    public uint Reserved;
    public ulong Mask;
}

/// <summary>TimerfdRecord.SettimeFlags: timerfd_settime(2) flags ("settime flags" in fdinfo, octal).</summary>
[Flags]
public enum TimerfdSettimeFlags : uint
{
    None = 0,
    Absolute = 1,           // TFD_TIMER_ABSTIME
    CancelOnSet = 2,        // TFD_TIMER_CANCEL_ON_SET (CLOCK_REALTIME absolute timers only)
}

/// <summary>
/// CkptPS: a timerfd, right after its FILE record (Kind = Timerfd, same objref), from fdinfo. The time
/// left is relative to the checkpoint (as for sleeps): a relative timer with 3 s left fires 3 s after
/// the restore, however long the image waited. An absolute timer on CLOCK_REALTIME(_ALARM) keeps its
/// absolute expiry instead (<see cref="RealtimeExpiryNanoseconds"/>); one on another clock is
/// re-armed at the same time left on the restoring host's clock, still absolute.
/// </summary>
[ImageRecord(RecordType.Timerfd)]
public partial struct TimerfdRecord
{
    public const int CLOCK_REALTIME = 0, CLOCK_MONOTONIC = 1, CLOCK_BOOTTIME = 7, CLOCK_REALTIME_ALARM = 8, CLOCK_BOOTTIME_ALARM = 9;

    public int ObjRef;
    public int ClockId;                 // "clockid": one of the clocks timerfd_create accepts
    public TimerfdSettimeFlags SettimeFlags;
    public uint Reserved;
    public ulong Ticks;                 // "ticks": expirations counted and not yet read
    public long ValueNanoseconds;       // "it_value": time left until the next expiry; 0 when disarmed or expired
    public long IntervalNanoseconds;    // "it_interval": the period, 0 for a one-shot timer
    public long RealtimeExpiryNanoseconds; // absolute CLOCK_REALTIME timers: the expiry (Unix time), else 0

    /// <summary>A periodic timer that expired and was not read has no time left but is still armed.</summary>
    public readonly bool ExpiredPeriodic => ValueNanoseconds == 0 && IntervalNanoseconds != 0 && Ticks != 0;
}
