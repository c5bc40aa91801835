using System.Buffers.Binary;
using System.Text;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// The event-loop records: PIPE_BUF (the pipe, after its first end's FILE; the other end refers to
/// it by OBJREF), EPOLL with its interest list, SIGNALFD and TIMERFD, each after its FILE record.
/// They come back in the model as the file objects' state; hostile values are refused naming the
/// record and its offset.
/// </summary>
public class V3EventLoopImageTests
{
    private const int ReadEndRef = 20, WriteEndRef = 21, PipeRef = 22;
    private const int SignalfdRef = 20, TimerfdRef = 21, EpollRef = 22;
    private const uint O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_NONBLOCK = 0x800;
    private static readonly byte[] InFlight = Encoding.ASCII.GetBytes("hello pipe");

    private static void WriteFile(ImageWriter writer, int objRef, FileKind kind, string path, uint flags)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(path);
        writer.Write(new FileRecord { ObjRef = objRef, Kind = kind, OpenFlags = flags, Mode = 0x1180, Device = 0xf, Inode = 977, PathLength = (uint)bytes.Length }, bytes);
    }

    private static PipeBufferRecord Pipe(uint size = 65536) => new() { PipeObjRef = PipeRef, PipeSize = size, DataLength = (uint)InFlight.Length };

    /// <summary>fd 3 the read end (FILE + PIPE_BUF), fd 4 the write end (FILE + OBJREF), fd 5 the library.</summary>
    private static byte[] PipeImage(Action<ImageWriter>? writePipe = null, Action<ImageWriter>? writeOtherEnd = null, uint readFlags = O_RDONLY | O_NONBLOCK, uint writeFlags = O_WRONLY) => new V3Image
    {
        Descriptors = (self, writer) =>
        {
            WriteFile(writer, ReadEndRef, FileKind.Pipe, "pipe:[977]", readFlags);
            if (writePipe is not null) writePipe(writer);
            else writer.Write(Pipe(), InFlight);
            writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = ReadEndRef });
            WriteFile(writer, WriteEndRef, FileKind.Pipe, "pipe:[977]", writeFlags);
            if (writeOtherEnd is not null) writeOtherEnd(writer);
            else writer.Write(new ObjrefRecord { ObjectType = ObjectType.Pipe, ObjRef = PipeRef });
            writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = WriteEndRef });
            writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = V3Image.LibraryRef });
        },
    }.Build();

    [Fact]
    public void BothEndsOfAPipeShareOnePipeWithItsBytes()
    {
        FileTableImage files = V3Image.Read(PipeImage()).Processes[0].FileTable;
        FileImage read = files.Files[ReadEndRef], write = files.Files[WriteEndRef];
        Assert.Same(read.Pipe, write.Pipe);
        Assert.Equal((PipeRef, 65536u), (read.Pipe!.Record.PipeObjRef, read.Pipe.Record.PipeSize));
        Assert.Equal(InFlight, read.Pipe.Data);
        Assert.Equal((O_RDONLY | O_NONBLOCK, O_WRONLY), (read.Record.OpenFlags, write.Record.OpenFlags));
        Assert.Null(files.Files[V3Image.LibraryRef].Pipe);
    }

    [Theory]
    [InlineData(65536u + 4096, "size 69632")]
    [InlineData(2048u, "size 2048")]
    [InlineData(1u << 21, "size 2097152")]
    [InlineData(4u, "size 4")] // smaller than the bytes it claims to hold
    public void APipeOfAnImpossibleSizeIsRefused(uint size, string named)
    {
        byte[] image = PipeImage(w => w.Write(Pipe(size), InFlight));
        Assert.Contains(named, Expect(image, RecordType.PipeBuffer, Offset(image, RecordType.PipeBuffer)).Message);
    }

    [Fact]
    public void AnEndReferringToAnObjectThatIsNoPipeIsRefused()
    {
        byte[] image = PipeImage(writeOtherEnd: w => w.Write(new ObjrefRecord { ObjectType = ObjectType.Pipe, ObjRef = V3Image.LibraryRef }));
        Assert.Contains($"refers to Pipe {V3Image.LibraryRef}, which is no pipe", Expect(image, RecordType.Objref, RecordAfterLastFile(image)).Message);
    }

    [Fact]
    public void APipeDefinedTwiceIsRefused()
    {
        byte[] image = PipeImage(writeOtherEnd: w => w.Write(Pipe(), InFlight));
        Assert.Contains($"objref {PipeRef} is already defined", Expect(image, RecordType.PipeBuffer, Offset(image, RecordType.PipeBuffer, last: true)).Message);
    }

    [Fact]
    public void APipeWithoutAWriteEndIsRefused()
    {
        byte[] image = PipeImage(writeFlags: O_RDONLY);
        Assert.Contains($"pipe objref {PipeRef} has no write end", Expect(image, RecordType.PipeBuffer, Offset(image, RecordType.PipeBuffer)).Message);
    }

    /// <summary>The leader holds the read end (fd 3, FILE + PIPE_BUF), its child the other end (fd 1, FILE + OBJREF).</summary>
    private static byte[] TwoProcessPipeImage(uint childFlags) => new V3Image
    {
        SecondProcess = true,
        Descriptors = (self, writer) =>
        {
            WriteFile(writer, ReadEndRef, FileKind.Pipe, "pipe:[977]", O_RDONLY);
            writer.Write(Pipe(), InFlight);
            writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = ReadEndRef });
            writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = V3Image.LibraryRef });
            writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = V3Image.LibraryRef });
        },
        ChildDescriptors = (1, writer =>
        {
            WriteFile(writer, WriteEndRef, FileKind.Pipe, "pipe:[977]", childFlags);
            writer.Write(new ObjrefRecord { ObjectType = ObjectType.Pipe, ObjRef = PipeRef });
            writer.Write(new FileDescriptorRecord { Fd = 1, FileObjRef = WriteEndRef });
        }),
    }.Build();

    [Fact]
    public void APipeWithItsEndsInTwoProcessesIsOnePipeWithItsBytes()
    {
        ImageModel model = V3Image.Read(TwoProcessPipeImage(O_WRONLY));
        FileImage read = model.Processes.Single(p => p.Pid == V3Image.LeaderPid).FileTable.Files[ReadEndRef];
        FileImage write = model.Processes.Single(p => p.Pid == V3Image.ChildPid).FileTable.Files[WriteEndRef];
        Assert.Same(read.Pipe, write.Pipe);
        Assert.Equal(InFlight, read.Pipe!.Data);
        Assert.Equal((O_RDONLY, O_WRONLY), (read.Record.OpenFlags, write.Record.OpenFlags));
    }

    [Fact]
    public void APipeWithoutAWriteEndInAnyProcessOfTheTreeIsRefused()
    {
        byte[] image = TwoProcessPipeImage(O_RDONLY);
        Assert.Contains($"pipe objref {PipeRef} has no write end in any descriptor table of the tree", Expect(image, RecordType.PipeBuffer, Offset(image, RecordType.PipeBuffer)).Message);
    }

    [Fact]
    public void APipeEndOpenedForReadingAndWritingIsRefused()
    {
        byte[] image = PipeImage(readFlags: O_RDWR);
        Assert.Contains("access mode 2", Expect(image, RecordType.File, Offset(image, RecordType.File, fromEnd: 2)).Message);
    }

    // ---- epoll, signalfd, timerfd ----

    private static readonly EpollItem[] Items =
    [
        new() { Fd = 3, Events = 0x19, Data = 0xdeadbeef_00000003 },
        new() { Fd = 4, Events = EpollItem.EPOLLET | EpollItem.EPOLLONESHOT | 0x1, Data = 4 },
    ];

    private static SignalfdRecord Signalfd() => new() { ObjRef = SignalfdRef, Mask = 1ul << 11 };

    private static TimerfdRecord Timerfd() => new()
    {
        ObjRef = TimerfdRef, ClockId = TimerfdRecord.CLOCK_REALTIME, SettimeFlags = TimerfdSettimeFlags.Absolute | TimerfdSettimeFlags.CancelOnSet,
        Ticks = 2, ValueNanoseconds = 3_000_000_000, IntervalNanoseconds = 500_000_000, RealtimeExpiryNanoseconds = 1_800_000_000_000_000_000,
    };

    private static byte[] EpollBytes(EpollItem[] items)
    {
        var bytes = new byte[items.Length * EpollItem.Size];
        for (int i = 0; i < items.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(i * 16), items[i].Fd);
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(i * 16 + 4), items[i].Events);
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(i * 16 + 8), items[i].Data);
        }
        return bytes;
    }

    private static void WriteEpoll(ImageWriter writer, EpollItem[] items, int? count = null) =>
        writer.Write(new EpollRecord { ObjRef = EpollRef, ItemCount = count ?? items.Length, ItemsLength = (uint)(items.Length * EpollItem.Size) }, EpollBytes(items));

    /// <summary>fd 3 a signalfd, fd 4 a timerfd, fd 5 an epoll watching both.</summary>
    private static byte[] LoopImage(Action<ImageWriter>? signalfd = null, Action<ImageWriter>? timerfd = null, Action<ImageWriter>? epoll = null) => new V3Image
    {
        Descriptors = (self, writer) =>
        {
            WriteFile(writer, SignalfdRef, FileKind.Signalfd, "anon_inode:[signalfd]", O_RDWR | O_NONBLOCK);
            (signalfd ?? (w => w.Write(Signalfd())))(writer);
            writer.Write(new FileDescriptorRecord { Fd = 3, FileObjRef = SignalfdRef });
            WriteFile(writer, TimerfdRef, FileKind.Timerfd, "anon_inode:[timerfd]", O_RDWR);
            (timerfd ?? (w => w.Write(Timerfd())))(writer);
            writer.Write(new FileDescriptorRecord { Fd = 4, FileObjRef = TimerfdRef });
            WriteFile(writer, EpollRef, FileKind.Epoll, "anon_inode:[eventpoll]", O_RDWR);
            (epoll ?? (w => WriteEpoll(w, Items)))(writer);
            writer.Write(new FileDescriptorRecord { Fd = 5, FileObjRef = EpollRef, CloseOnExec = 1 });
        },
    }.Build();

    [Fact]
    public void AnEpollASignalfdAndATimerfdComeBackWithTheirState()
    {
        FileTableImage files = V3Image.Read(LoopImage()).Processes[0].FileTable;
        Assert.Equal(Signalfd().Mask, files.Files[SignalfdRef].Signalfd!.Value.Mask);
        TimerfdRecord timer = files.Files[TimerfdRef].Timerfd!.Value;
        Assert.Equal(Timerfd(), timer);
        EpollImage epoll = files.Files[EpollRef].Epoll!;
        Assert.Equal(Items.Select(i => (i.Fd, i.Events, i.Data)), epoll.Items.Select(i => (i.Fd, i.Events, i.Data)));
        Assert.Null(files.Files[SignalfdRef].Epoll);
    }

    [Theory]
    [InlineData(-1, 0x1u, "watches fd -1")]
    [InlineData(3, 0x1u, "watches fd 3: negative or watched twice")]
    [InlineData(9, 0x1u, "watches fd 9, which the descriptor table does not have")]
    [InlineData(4, 0x0800_0000u, "unknown bits 0x8000000")]
    [InlineData(4, EpollItem.EPOLLEXCLUSIVE | EpollItem.EPOLLONESHOT | 1, "both EPOLLEXCLUSIVE and EPOLLONESHOT")]
    public void AnImpossibleWatchIsRefused(int fd, uint events, string named)
    {
        byte[] image = LoopImage(epoll: w => WriteEpoll(w, [Items[0], new EpollItem { Fd = fd, Events = events }]));
        Assert.Contains(named, Expect(image, RecordType.Epoll, Offset(image, RecordType.Epoll)).Message);
    }

    [Theory]
    [InlineData(3)]
    [InlineData(-1)]
    [InlineData(EpollRecord.MaxItems + 1)]
    public void AnItemCountThatDisagreesWithTheBytesIsRefused(int count)
    {
        byte[] image = LoopImage(epoll: w => WriteEpoll(w, Items, count));
        Assert.Contains($"{count} items in 32 bytes", Expect(image, RecordType.Epoll, Offset(image, RecordType.Epoll)).Message);
    }

    [Fact]
    public void ASignalfdReadingSigkillIsRefused()
    {
        byte[] image = LoopImage(signalfd: w => w.Write(Signalfd() with { Mask = 1ul << 8 }));
        Assert.Contains("SIGKILL or SIGSTOP", Expect(image, RecordType.Signalfd, Offset(image, RecordType.Signalfd)).Message);
    }

    public static TheoryData<string, string> HostileTimers() => new()
    {
        { "clock", "clock 3 is not one timerfd_create accepts" },
        { "flags", "settime flags 0x4" },
        { "value", "time left -1 ns" },
        { "interval", "interval -5 ns" },
        { "expiry-on-monotonic", "belongs to armed absolute CLOCK_REALTIME timers only" },
        { "no-expiry", "belongs to armed absolute CLOCK_REALTIME timers only" },
        { "objref", $"has objref {EpollRef}" },
    };

    [Theory]
    [MemberData(nameof(HostileTimers))]
    public void AnImpossibleTimerIsRefused(string what, string named)
    {
        TimerfdRecord timer = what switch
        {
            "clock" => Timerfd() with { ClockId = 3 },
            "flags" => Timerfd() with { SettimeFlags = (TimerfdSettimeFlags)4 },
            "value" => Timerfd() with { ValueNanoseconds = -1 },
            "interval" => Timerfd() with { IntervalNanoseconds = -5 },
            "expiry-on-monotonic" => Timerfd() with { ClockId = TimerfdRecord.CLOCK_MONOTONIC },
            "no-expiry" => Timerfd() with { RealtimeExpiryNanoseconds = 0 },
            _ => Timerfd() with { ObjRef = EpollRef },
        };
        byte[] image = LoopImage(timerfd: w => w.Write(timer));
        Assert.Contains(named, Expect(image, RecordType.Timerfd, Offset(image, RecordType.Timerfd)).Message);
    }

    [Fact]
    public void ATimerfdWithoutItsRecordIsRefusedAtWhatCameInstead()
    {
        byte[] image = LoopImage(timerfd: _ => { });
        Assert.Contains($"Timerfd record of Timerfd file objref {TimerfdRef}", Expect(image, RecordType.FileDescriptor, Offset(image, RecordType.FileDescriptor, nth: 1)).Message);
    }

    // The files of the mappings come first: the descriptors' FILE records are the last ones.
    private static int Offset(byte[] image, RecordType type, bool last = false, int nth = 0, int fromEnd = 0)
    {
        var matching = V3Image.Records(image).Where(r => r.Type == type).ToList();
        return last ? matching[^1].Offset : fromEnd > 0 ? matching[^fromEnd].Offset : matching[nth].Offset;
    }

    private static int RecordAfterLastFile(byte[] image)
    {
        var records = V3Image.Records(image).ToList();
        return records[records.FindLastIndex(r => r.Type == RecordType.File) + 1].Offset;
    }

    private static ImageFormatException Expect(byte[] image, RecordType record, int offset)
    {
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.True(record == error.Record && offset == error.Offset,
            $"expected the error at {record} offset {offset}, got {error.Record} offset {error.Offset}: {error.Message}");
        Assert.Contains($"record {ImageFormatException.RecordName(record)} at offset {offset}", error.Message);
        return error;
    }
}
