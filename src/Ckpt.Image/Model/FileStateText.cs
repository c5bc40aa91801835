using System.Globalization;
using System.Text;
using Ckpt.Image.Records;

namespace Ckpt.Image.Model;

/// <summary>
/// One line saying what a file object's kind-specific state is (an eventfd's counter, a pipe's size and
/// buffered bytes, an epoll's watches, a signalfd's mask, a timerfd's time left), for `ckpt show` and
/// Get-CkptImage; empty for files that have none.
/// </summary>
public static class FileStateText
{
    public static string Describe(FileImage file)
    {
        if (file.Eventfd is { } eventfd)
            return $"count {eventfd.Count}{(eventfd.Flags.HasFlag(EventfdFlags.Semaphore) ? ", semaphore" : "")}";
        if (file.Pipe is { } pipe)
            return $"{(((file.Record.OpenFlags & 3) == 0) ? "read" : "write")} end, pipe of {pipe.Record.PipeSize} bytes, {pipe.Data.Length} buffered";
        if (file.Fifo is { } fifo)
            return $"{((file.Record.OpenFlags & 3) switch { 0 => "read", 1 => "write", _ => "read-write" })} end, FIFO of {fifo.Record.PipeSize} bytes, {fifo.Data.Length} buffered";
        if (file.Epoll is { } epoll)
            return epoll.Items.Count == 0 ? "watches nothing"
                : "watches " + string.Join(", ", epoll.Items.Select(i => $"fd {i.Fd} (events 0x{i.Events:x}, data 0x{i.Data:x})"));
        if (file.Signalfd is { } signalfd)
            return $"signals [{string.Join(",", Enumerable.Range(1, 64).Where(s => (signalfd.Mask & (1ul << (s - 1))) != 0))}]";
        if (file.Timerfd is { } timer)
            return Timer(timer);
        if (file.Socket?.Tcp is { } tcp)
            return $"TCP ESTABLISHED, {tcp.ReceiveQueue.Length} bytes to read, {tcp.SendQueue.Length} unacknowledged ({tcp.Record.UnsentBytes} never sent), mss {tcp.Record.MaxSegmentSize}, options {tcp.Record.Options}";
        if (file.Terminal is { } pair)
            return Terminal(pair.Record) + (pair.UnreadOutput.Length > 0 ? $", {pair.UnreadOutput.Length} bytes of unread output" : "");
        return "";
    }

    /// <summary>"pair /dev/pts/3 (objref 7), 24x80, packet mode, locked": the pair's state as recorded.</summary>
    public static string Terminal(in TerminalRecord pair) =>
        $"pair /dev/pts/{pair.Index} (objref {pair.TerminalObjRef}), {pair.Rows}x{pair.Columns}"
        + (pair.Flags.HasFlag(TerminalFlags.PacketMode) ? ", packet mode" : "") + (pair.Flags.HasFlag(TerminalFlags.Locked) ? ", locked" : "")
        + ((pair.LocalFlags & 0x2) != 0 ? ", canonical" : ", raw") + ((pair.LocalFlags & 0x8) != 0 ? ", echo" : "");

    /// <summary>"/dev/pts/3 (pair objref 7), foreground group 812" or "/dev/pts/0 (outside the image), ...".</summary>
    public static string ControllingTerminal(ControllingTerminalImage terminal) =>
        $"{terminal.Name} ({(terminal.Outside ? "outside the image" : $"pair objref {terminal.Record.TerminalObjRef}")}), session {terminal.Record.Session}, foreground group {terminal.Record.ForegroundGroup}";

    private static string Timer(in TimerfdRecord timer)
    {
        var text = new StringBuilder(ClockName(timer.ClockId));
        text.Append(timer.ValueNanoseconds != 0 ? $", {Seconds(timer.ValueNanoseconds)} s left" : timer.Ticks != 0 ? ", expired" : ", disarmed");
        if (timer.IntervalNanoseconds != 0) text.Append($", every {Seconds(timer.IntervalNanoseconds)} s");
        if (timer.RealtimeExpiryNanoseconds != 0)
            text.Append($", at {DateTime.UnixEpoch.AddTicks(timer.RealtimeExpiryNanoseconds / 100):u}");
        if (timer.SettimeFlags != TimerfdSettimeFlags.None) text.Append($", {timer.SettimeFlags}");
        if (timer.Ticks != 0) text.Append($", {timer.Ticks} unread");
        return text.ToString();
    }

    private static string ClockName(int clock) => clock switch
    {
        TimerfdRecord.CLOCK_REALTIME => "CLOCK_REALTIME",
        TimerfdRecord.CLOCK_MONOTONIC => "CLOCK_MONOTONIC",
        TimerfdRecord.CLOCK_BOOTTIME => "CLOCK_BOOTTIME",
        TimerfdRecord.CLOCK_REALTIME_ALARM => "CLOCK_REALTIME_ALARM",
        TimerfdRecord.CLOCK_BOOTTIME_ALARM => "CLOCK_BOOTTIME_ALARM",
        _ => $"clock {clock}",
    };

    private static string Seconds(long nanoseconds) => (nanoseconds / 1e9).ToString("0.###", CultureInfo.InvariantCulture);
}
