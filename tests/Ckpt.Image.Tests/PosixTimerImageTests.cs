using Ckpt.Image.Model;
using Ckpt.Image.Records;
using Xunit;

namespace Ckpt.Image.Tests;

/// <summary>
/// POSIX_TIMER records (after the SIGNAL record's queue): read back as written, and each kind of
/// lie refused at the lying record with a message that says what is wrong.
/// </summary>
public class PosixTimerImageTests
{
    private static readonly PosixTimerRecord Periodic = new()
    {
        TimerId = 1, ClockId = 1, Notify = PosixTimerNotify.Signal, Signal = 34, NotifyTid = V3Image.LeaderPid,
        SigevValue = 42, ValueNanoseconds = 60_000_000, IntervalNanoseconds = 100_000_000,
    };

    private static readonly PosixTimerRecord OnThread = new()
    {
        TimerId = 4, ClockId = -6, Notify = PosixTimerNotify.ThreadId, Signal = 35, NotifyTid = V3Image.Tid(1), SigevValue = 7, Overrun = 2,
        ValueNanoseconds = 1, IntervalNanoseconds = 0,
    };

    [Fact]
    public void Timers_are_read_back_in_order_with_every_field()
    {
        ImageModel model = V3Image.Read(new V3Image { PosixTimers = [Periodic, OnThread] }.Build());
        Assert.Equal([Periodic, OnThread], model.Processes[0].Signal.PosixTimers);
        Assert.Equal(2, model.Processes[0].Signal.SharedPending.Count);
    }

    [Fact]
    public void An_image_without_timers_has_none()
    {
        Assert.Empty(V3Image.Read(new V3Image().Build()).Processes[0].Signal.PosixTimers);
    }

    [Fact]
    public void A_negative_id_is_refused() =>
        Expect(new V3Image { PosixTimers = [Periodic with { TimerId = -1 }] }.Build(), 0, "timer id -1 is negative or not above");

    [Theory]
    [InlineData(1)] // the same id twice
    [InlineData(0)] // out of order
    public void Ids_must_increase(int secondId) =>
        Expect(new V3Image { PosixTimers = [Periodic, OnThread with { TimerId = secondId }] }.Build(), 1, $"timer id {secondId} is negative or not above the previous");

    public static TheoryData<string, Func<PosixTimerRecord, PosixTimerRecord>, string> Lies => new()
    {
        { "notify 3", t => t with { Notify = (PosixTimerNotify)3 }, "notification 3 is not" },
        { "signal 0", t => t with { Signal = 0 }, "signal 0 is outside 1..64" },
        { "signal 65", t => t with { Signal = 65 }, "signal 65 is outside 1..64" },
        { "thread 0", t => t with { Notify = PosixTimerNotify.ThreadId, NotifyTid = 0 }, "SIGEV_THREAD_ID names thread 0" },
        { "clock 4", t => t with { ClockId = 4 }, "clock id 4 is not a clock" },
        { "clock fd", t => t with { ClockId = -5 }, "clock id -5 is not a clock" }, // ~0 << 3 | CLOCKFD: a dynamic (PTP) clock
        { "negative time left", t => t with { ValueNanoseconds = -1 }, "negative or too large" },
        { "huge interval", t => t with { IntervalNanoseconds = long.MaxValue }, "negative or too large" },
        { "negative overrun", t => t with { Overrun = -5 }, "overrun -5 is negative" },
    };

    [Theory]
    [MemberData(nameof(Lies))]
    public void Hostile_timers_are_refused_naming_the_record(string lie, Func<PosixTimerRecord, PosixTimerRecord> change, string message)
    {
        _ = lie;
        Expect(new V3Image { PosixTimers = [change(Periodic)] }.Build(), 0, message);
    }

    [Fact]
    public void A_timer_without_notification_needs_no_signal()
    {
        var quiet = Periodic with { Notify = PosixTimerNotify.None, Signal = 0 };
        Assert.Equal([quiet], V3Image.Read(new V3Image { PosixTimers = [quiet] }.Build()).Processes[0].Signal.PosixTimers);
    }

    [Fact]
    public void A_timer_record_elsewhere_is_refused()
    {
        // After the leader's thread records, where the next task section belongs.
        var image = new V3Image { Threads = 2, ThreadObjects = (_, writer, _) => { writer.Write(Periodic); V3Image.WriteObjrefs(writer); } }.Build();
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.Equal(RecordType.PosixTimer, error.Record);
    }

    private static void Expect(byte[] image, int nth, string message)
    {
        int offset = V3Image.OffsetOf(image, RecordType.PosixTimer, nth);
        var error = Assert.Throws<ImageFormatException>(() => V3Image.Read(image));
        Assert.True(error.Record == RecordType.PosixTimer && error.Offset == offset,
            $"expected the error at POSIX_TIMER offset {offset}, got {error.Record} offset {error.Offset}: {error.Message}");
        Assert.Contains(message, error.Message);
    }
}
