using System.Buffers.Binary;
using Ckpt.Image.Records;

namespace Ckpt.Image.Model;

/// <summary>
/// The records that follow the FILE record of a pipe end, an epoll, a signalfd or a timerfd
/// (docs/FORMAT.md, "Image order"), and the checks that span a whole descriptor table: every
/// pipe has a read end and a write end, every fd an epoll watches is in the table.
/// </summary>
public static partial class ImageModelReader
{
    private const uint O_ACCMODE = 3, O_WRONLY = 1;

    private static FileImage ReadEventLoopState(ImageReader reader, FileImage file, ObjectTable objects) => file.Record.Kind switch
    {
        FileKind.Pipe => file with { Pipe = ReadPipeOfEnd(reader, file.Record, objects, ObjectType.Pipe) },
        FileKind.Fifo => file with { Fifo = ReadPipeOfEnd(reader, RequireFifoPath(reader, file), objects, ObjectType.Fifo) },
        FileKind.DeletedFifo => file with { Fifo = ReadPipeOfEnd(reader, RequireDeletedFifoPath(reader, file), objects, ObjectType.Fifo) },
        FileKind.Epoll => file with { Epoll = ReadEpoll(reader, file.Record) },
        FileKind.Signalfd => file with { Signalfd = ReadSignalfd(reader, file.Record) },
        FileKind.Timerfd => file with { Timerfd = ReadTimerfd(reader, file.Record) },
        _ => file,
    };

    /// <summary>The kind's record that must come right after its FILE record.</summary>
    private static T NextStateRecord<T>(ImageReader reader, FileRecord file, RecordType type) where T : struct, IImageRecord<T>
    {
        reader.ThrowIfFailedCheckpoint();
        if (reader.PeekType() is { } other && other != type)
            throw Error(reader, other, $"found where the {type} record of {file.Kind} file objref {file.ObjRef} belongs");
        return Next<T>(reader);
    }

    // ---- pipes ----

    // A pipe's or a FIFO's end: the PIPE_BUF of its pipe (ObjectType.Pipe) or named pipe (ObjectType.Fifo) on
    // first use, an OBJREF to it later. A FIFO end may be opened for reading and writing, a pipe end not.
    private static PipeImage ReadPipeOfEnd(ImageReader reader, FileRecord file, ObjectTable objects, ObjectType type)
    {
        string what = type == ObjectType.Fifo ? "FIFO" : "pipe";
        if ((file.OpenFlags & O_ACCMODE) > (type == ObjectType.Fifo ? O_RDWR : O_WRONLY))
            throw Error(reader, RecordType.File, $"{what} end objref {file.ObjRef} has access mode {file.OpenFlags & O_ACCMODE}: a {what} end reads{(type == ObjectType.Fifo ? ", writes or both" : " or writes")}");
        reader.ThrowIfFailedCheckpoint();
        if (reader.PeekType() == RecordType.Objref)
        {
            var reference = Next<ObjrefRecord>(reader);
            if (reference.ObjectType != type || !objects.TryGet(reference.ObjRef, out var known) || known.Type != type)
                throw Error(reader, RecordType.Objref, $"{what} end objref {file.ObjRef} refers to {reference.ObjectType} {reference.ObjRef}, which is no {what} defined earlier");
            return (PipeImage)known.Value;
        }
        var pipe = NextStateRecord<PipeBufferRecord>(reader, file, RecordType.PipeBuffer);
        long offset = reader.CurrentRecordOffset;
        if (pipe.PipeSize < PipeBufferRecord.MinimumSize || pipe.PipeSize > PipeBufferRecord.MaximumSize || (pipe.PipeSize & (pipe.PipeSize - 1)) != 0)
            throw Error(reader, RecordType.PipeBuffer, $"pipe objref {pipe.PipeObjRef} has size {pipe.PipeSize}: not a power of two from {PipeBufferRecord.MinimumSize} to {PipeBufferRecord.MaximumSize}");
        if (pipe.DataLength > pipe.PipeSize)
            throw Error(reader, RecordType.PipeBuffer, $"pipe objref {pipe.PipeObjRef} holds {pipe.DataLength} bytes, more than its size {pipe.PipeSize}");
        var image = new PipeImage(pipe, reader.ReadTrailingBytes(), offset);
        objects.Define(reader, type, pipe.PipeObjRef, image, offset, RecordType.PipeBuffer);
        return image;
    }

    private const uint O_RDWR = 2;

    // The path a FIFO end is reopened by: absolute, as /proc/PID/fd gives it.
    private static FileRecord RequireFifoPath(ImageReader reader, FileImage file) =>
        file.Path.StartsWith('/') && !file.Path.EndsWith(" (deleted)", StringComparison.Ordinal) && !file.Path.Contains('\0')
            ? file.Record
            : throw Error(reader, RecordType.File, $"FIFO end objref {file.Record.ObjRef} has path '{file.Path}': a FIFO is reopened by an absolute path");

    // A deleted FIFO's path as /proc showed it: absolute, " (deleted)" at the end (the restore makes it next to it).
    private static FileRecord RequireDeletedFifoPath(ImageReader reader, FileImage file) =>
        file.Path.StartsWith('/') && file.Path.EndsWith(" (deleted)", StringComparison.Ordinal) && !file.Path.Contains('\0') && !file.Path.Contains("/../", StringComparison.Ordinal)
            ? file.Record
            : throw Error(reader, RecordType.File, $"deleted FIFO end objref {file.Record.ObjRef} has path '{file.Path}': an absolute path ending in \" (deleted)\" is expected");

    // ---- epoll ----

    private static EpollImage ReadEpoll(ImageReader reader, FileRecord file)
    {
        var epoll = NextStateRecord<EpollRecord>(reader, file, RecordType.Epoll);
        long offset = reader.CurrentRecordOffset;
        if (epoll.ObjRef != file.ObjRef)
            throw Error(reader, RecordType.Epoll, $"has objref {epoll.ObjRef}, its FILE record {file.ObjRef}");
        if (epoll.ItemCount < 0 || epoll.ItemCount > EpollRecord.MaxItems || epoll.ItemsLength != (uint)epoll.ItemCount * EpollItem.Size)
            throw Error(reader, RecordType.Epoll, $"{epoll.ItemCount} items in {epoll.ItemsLength} bytes (at most {EpollRecord.MaxItems} items of {EpollItem.Size} bytes)");
        byte[] bytes = reader.ReadTrailingBytes();
        var items = new EpollItem[epoll.ItemCount];
        var fds = new HashSet<int>();
        for (int i = 0; i < items.Length; i++)
        {
            ReadOnlySpan<byte> entry = bytes.AsSpan(i * EpollItem.Size, EpollItem.Size);
            var item = new EpollItem
            {
                Fd = BinaryPrimitives.ReadInt32LittleEndian(entry),
                Events = BinaryPrimitives.ReadUInt32LittleEndian(entry[4..]),
                Data = BinaryPrimitives.ReadUInt64LittleEndian(entry[8..]),
            };
            if (item.Fd < 0 || !fds.Add(item.Fd))
                throw Error(reader, RecordType.Epoll, $"item {i} watches fd {item.Fd}: negative or watched twice");
            if ((item.Events & ~EpollItem.KnownEvents) != 0)
                throw Error(reader, RecordType.Epoll, $"item {i} (fd {item.Fd}) has events 0x{item.Events:x}, unknown bits 0x{item.Events & ~EpollItem.KnownEvents:x}");
            if ((item.Events & EpollItem.EPOLLEXCLUSIVE) != 0 && (item.Events & EpollItem.EPOLLONESHOT) != 0)
                throw Error(reader, RecordType.Epoll, $"item {i} (fd {item.Fd}) is both EPOLLEXCLUSIVE and EPOLLONESHOT, which epoll_ctl never accepts");
            items[i] = item;
        }
        return new EpollImage(epoll, items, offset);
    }

    // ---- signalfd, timerfd ----

    private static SignalfdRecord ReadSignalfd(ImageReader reader, FileRecord file)
    {
        var signalfd = NextStateRecord<SignalfdRecord>(reader, file, RecordType.Signalfd);
        if (signalfd.ObjRef != file.ObjRef)
            throw Error(reader, RecordType.Signalfd, $"has objref {signalfd.ObjRef}, its FILE record {file.ObjRef}");
        if ((signalfd.Mask & SignalfdRecord.Unblockable) != 0)
            throw Error(reader, RecordType.Signalfd, $"mask 0x{signalfd.Mask:x} holds SIGKILL or SIGSTOP, which a signalfd never reads");
        return signalfd;
    }

    private const long MaxTimerNanoseconds = long.MaxValue / 2;

    private static TimerfdRecord ReadTimerfd(ImageReader reader, FileRecord file)
    {
        var timer = NextStateRecord<TimerfdRecord>(reader, file, RecordType.Timerfd);
        if (timer.ObjRef != file.ObjRef)
            throw Error(reader, RecordType.Timerfd, $"has objref {timer.ObjRef}, its FILE record {file.ObjRef}");
        if (timer.ClockId is not (TimerfdRecord.CLOCK_REALTIME or TimerfdRecord.CLOCK_MONOTONIC or TimerfdRecord.CLOCK_BOOTTIME
            or TimerfdRecord.CLOCK_REALTIME_ALARM or TimerfdRecord.CLOCK_BOOTTIME_ALARM))
            throw Error(reader, RecordType.Timerfd, $"clock {timer.ClockId} is not one timerfd_create accepts");
        if ((timer.SettimeFlags & ~(TimerfdSettimeFlags.Absolute | TimerfdSettimeFlags.CancelOnSet)) != 0)
            throw Error(reader, RecordType.Timerfd, $"settime flags 0x{(uint)timer.SettimeFlags:x} are not TFD_TIMER_ABSTIME/TFD_TIMER_CANCEL_ON_SET");
        if (timer.ValueNanoseconds is < 0 or > MaxTimerNanoseconds || timer.IntervalNanoseconds is < 0 or > MaxTimerNanoseconds || timer.RealtimeExpiryNanoseconds is < 0 or > MaxTimerNanoseconds)
            throw Error(reader, RecordType.Timerfd, $"time left {timer.ValueNanoseconds} ns, interval {timer.IntervalNanoseconds} ns, expiry {timer.RealtimeExpiryNanoseconds} ns: out of range");
        bool keepsRealtime = timer.SettimeFlags.HasFlag(TimerfdSettimeFlags.Absolute) && timer.ClockId is TimerfdRecord.CLOCK_REALTIME or TimerfdRecord.CLOCK_REALTIME_ALARM;
        if ((keepsRealtime && timer.ValueNanoseconds != 0) != (timer.RealtimeExpiryNanoseconds != 0))
            throw Error(reader, RecordType.Timerfd, $"an absolute expiry ({timer.RealtimeExpiryNanoseconds} ns) belongs to armed absolute CLOCK_REALTIME timers only (clock {timer.ClockId}, flags {timer.SettimeFlags})");
        return timer;
    }

    // ---- checks over a whole descriptor table ----

    private static void RequireEventLoopReferences(List<FileDescriptorRecord> descriptors, Dictionary<int, FileImage> files)
    {
        var fds = descriptors.Select(d => d.Fd).ToHashSet();
        foreach (FileImage file in files.Values)
        {
            if (file.Epoll is not { } epoll) continue;
            foreach (EpollItem item in epoll.Items)
                if (!fds.Contains(item.Fd))
                    throw new ImageFormatException(RecordType.Epoll, epoll.Offset, $"epoll objref {file.Record.ObjRef} watches fd {item.Fd}, which the descriptor table does not have");
        }
    }

    // A pipe's ends may be in different processes of the tree: checked once every table is read.
    private static void RequireBothPipeEnds(IEnumerable<ProcessImage> processes)
    {
        // An end may be in flight only, in a unix socket's queue (SOCKET_RIGHTS).
        var tables = processes.SelectMany(p => p.FileTable.Files.Values).ToList();
        var inFlight = tables.SelectMany(f => f.Socket?.InFlight.Values.SelectMany(m => m) ?? []);
        var files = tables.Concat(inFlight).DistinctBy(f => f.Record.ObjRef);
        foreach (var pipe in files.Where(f => f.Pipe is not null).GroupBy(f => f.Pipe!.Record.PipeObjRef))
        {
            bool reads = pipe.Any(f => (f.Record.OpenFlags & O_ACCMODE) == 0), writes = pipe.Any(f => (f.Record.OpenFlags & O_ACCMODE) == O_WRONLY);
            if (!reads || !writes)
                throw new ImageFormatException(RecordType.PipeBuffer, pipe.First().Pipe!.Offset, $"pipe objref {pipe.Key} has no {(reads ? "write" : "read")} end in any descriptor table of the tree (or in flight)");
        }
    }
}
