using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files.Terminals;

/// <summary>
/// A pair's unread output: bytes its slave side wrote that the master has not read yet. They sit in
/// the master tty's N_TTY read buffer (the master's termios is the pty driver's raw one and cannot be
/// changed: termios ioctls on a master act on the slave; so FIONREAD on the master counts exactly the
/// bytes a read returns, stored verbatim, after the slave's output processing) and, beyond its 4095
/// bytes, in the master port's flip buffers (8 KiB), which FIONREAD does not count.
/// A tty has no MSG_PEEK. With the whole tree frozen, the engine, holding the ends through
/// pidfd_getfd, takes the bytes and puts them back:
/// 1. checks that put-back is exact, refusing by name otherwise: the read buffer below its 4095-byte
///    limit (then nothing waits in the flip buffers once the kernel's worker ran), the slave writable
///    (POLLOUT: not stopped by ^S/TCOOFF, buffers not full: a stopped pty accepts no write), no packet
///    status byte pending on a master in packet mode (POLLPRI: reading it consumes it), no end with
///    O_ASYNC (the put-back would send SIGIO), no end held by a process outside the tree (it could read
///    or write meanwhile), the master's line discipline N_TTY;
/// 2. packet mode off on the master for the while (re-enabling it resets the pending status, which was
///    none), the slave's OPOST cleared (its output processing would otherwise turn a stored "\r\n" into
///    "\r\r\n"; the change of OPOST alone starts or stops nothing and, packet mode being off, reports
///    nothing to the master) and checked to be cleared (locked termios would keep it);
/// 3. reads FIONREAD bytes from the master while poll says there are more (poll and an empty read wait
///    for the flip buffers' worker, so the loop ends when everything is read; a read of at most
///    FIONREAD bytes never blocks, whatever the target's O_NONBLOCK);
/// 4. writes them back through the slave (O_NONBLOCK on its open file description for the while), so
///    they arrive, unprocessed, in the master's queue as before;
/// 5. restores the slave's file flags, its exact termios and packet mode.
/// Echo needs no care: echoed input is output like any other, already in the master's queue.
/// Restore: <see cref="PutBack"/> into the new pair, before its packet mode is set (the same steps 2, 4, 5).
/// Side effects left: the inode times of /dev/ptmx and /dev/pts/N (the kernel updates them, at 8-second
/// granularity, on reads and writes), wake-ups of the frozen tree's waiters (an edge-triggered epoll
/// waiter may see one more edge).
/// Unread input (bytes the master wrote that the slave's reader has not read) stays refused: the
/// slave's line discipline has processed it (ICRNL, line editing, canonical line boundaries, ISIG),
/// and writing it again through the master would process it twice and echo it a second time; a
/// partial canonical line is not even counted by FIONREAD.
/// </summary>
public static unsafe partial class UnreadOutput
{
    /// <summary>N_TTY_BUF_SIZE - 1: the most a raw N_TTY read buffer holds (a master's always is raw).</summary>
    public const int LineDisciplineLimit = 4095;
    private const uint OPOST = 1, O_NONBLOCK = 0x800, O_ASYNC = 0x2000;
    private const short POLLIN = 1, POLLPRI = 2, POLLOUT = 4;
    private const int F_GETFL = 3, F_SETFL = 4, EAGAIN = 11, EINTR = 4;

    // One capture per pair and checkpoint: the pair is inspected once for each of its ends.
    private static readonly ConditionalWeakTable<ObjectTable, Dictionary<int, byte[]>> Captured = [];

    /// <summary>
    /// The pair's unread output, taken and put back (<paramref name="dryRun"/>: the checks only, before
    /// the freeze). The copies in <paramref name="ends"/> are the engine's (pidfd_getfd): the target's
    /// open file descriptions.
    /// </summary>
    public static byte[] Capture(PairEnds ends, ObjectTable objects, int pairRef, bool dryRun)
    {
        lock (Captured)
            if (Captured.TryGetValue(objects, out var done) && done.TryGetValue(pairRef, out byte[]? data)) return data;
        Poll(ends.MasterCopy, POLLIN, ends.Master); // waits for the pty's flip-buffer worker: FIONREAD then counts all it moved
        int queued = Queued(ends.MasterCopy, ends.Master);
        if (queued == 0) return [];
        Check(ends, queued);
        if (dryRun) return [];
        byte[] output = TakeAndPutBack(ends);
        lock (Captured) Captured.GetOrCreateValue(objects)[pairRef] = output;
        return output;
    }

    /// <summary>The engine's copies of a pair's ends and what they are in the tree, for messages.</summary>
    public sealed record PairEnds(int MasterCopy, int SlaveCopy, (int Pid, int Fd) Master, (int Pid, int Fd) Slave, string What, int Index, IReadOnlyCollection<int> Tree)
    {
        public string Name => $"/dev/pts/{Index}";
    }

    private static void Check(PairEnds ends, int queued)
    {
        string unread = $"has {queued} bytes its slave wrote that the master (fd {ends.Master.Fd} of process {ends.Master.Pid}) has not read";
        if (queued >= LineDisciplineLimit)
            throw Refused(ends, $"{unread}: the master's line discipline buffer is full ({LineDisciplineLimit} bytes), and what waits beyond it in the pty's buffers is not counted, so it cannot be saved exactly; checkpoint again once the master's reader caught up");
        int discipline;
        Ioctl(ends.MasterCopy, PseudoTerminals.TIOCGETD, &discipline, ends.Master, "TIOCGETD");
        if (discipline != 0) throw Refused(ends, $"{unread}, and its master uses line discipline {discipline}: only N_TTY (0) is read back");
        int packet;
        Ioctl(ends.MasterCopy, PseudoTerminals.TIOCGPKT, &packet, ends.Master, "TIOCGPKT");
        if (packet != 0 && (Poll(ends.MasterCopy, POLLPRI, ends.Master) & POLLPRI) != 0)
            throw Refused(ends, $"{unread}, and a packet-mode status byte (TIOCPKT) is pending on the master: reading the output would consume it");
        if ((Poll(ends.SlaveCopy, POLLOUT, ends.Slave) & POLLOUT) == 0)
            throw Refused(ends, $"{unread}, and its output is stopped (^S, tcflow TCOOFF) or its buffers are full: the bytes could not be put back");
        foreach (var (pid, fd) in PseudoTerminals.Ends(ends.Tree, ends.Index))
            if ((ProcFdInfo.Read(pid, fd).Flags & O_ASYNC) != 0)
                throw Refused(ends, $"{unread}, and fd {fd} of process {pid}, an end of the pair, has O_ASYNC: putting the bytes back would send it SIGIO");
        if (PseudoTerminals.OutsideHolder(ends.Tree, ends.Index) is { } holder)
            throw Refused(ends, $"{unread}, and process {holder.Pid} ('{ProcessNames.CommOf(holder.Pid)}'), which is not being checkpointed, holds an end of the pair (fd {holder.Fd}): it could read or write while the bytes are taken and put back");
    }

    private static byte[] TakeAndPutBack(PairEnds ends)
    {
        byte* termios = stackalloc byte[PseudoTerminals.Termios2Size];
        Ioctl(ends.MasterCopy, PseudoTerminals.TCGETS2, termios, ends.Master, "TCGETS2");
        byte[] original = new ReadOnlySpan<byte>(termios, PseudoTerminals.Termios2Size).ToArray();
        int packet, off = 0, on = 1;
        Ioctl(ends.MasterCopy, PseudoTerminals.TIOCGPKT, &packet, ends.Master, "TIOCGPKT");
        if (packet != 0) Ioctl(ends.MasterCopy, PseudoTerminals.TIOCPKT, &off, ends.Master, "TIOCPKT 0");
        var output = new List<byte>();
        int putBack = 0;
        try
        {
            ClearOutputProcessing(ends, termios);
            Take(ends, output);
            Write(ends, output.ToArray(), ref putBack);
            return output.ToArray();
        }
        catch (Exception e) when (putBack < output.Count && e is not LostOutputException)
        {
            // Bytes are out of the target's pair: put back what is left before reporting.
            try { Write(ends, output.ToArray(), ref putBack); }
            catch (Exception again) { throw new LostOutputException(ends, output.Count - putBack, again); }
            throw;
        }
        finally
        {
            fixed (byte* saved = original)
                Ioctl(ends.MasterCopy, PseudoTerminals.TCSETS2, saved, ends.Master, "TCSETS2 (the recorded termios back)");
            if (packet != 0) Ioctl(ends.MasterCopy, PseudoTerminals.TIOCPKT, &on, ends.Master, "TIOCPKT 1");
        }
    }

    private static void ClearOutputProcessing(PairEnds ends, byte* termios)
    {
        uint* flags = (uint*)termios;
        if ((flags[1] & OPOST) == 0) return;
        flags[1] &= ~OPOST;
        Ioctl(ends.MasterCopy, PseudoTerminals.TCSETS2, termios, ends.Master, "TCSETS2 (OPOST cleared)");
        Ioctl(ends.MasterCopy, PseudoTerminals.TCGETS2, termios, ends.Master, "TCGETS2");
        if ((flags[1] & OPOST) != 0)
            throw Refused(ends, "keeps OPOST set (locked termios, TIOCSLCKTRMIOS): its unread output cannot be put back unprocessed");
    }

    private static void Take(PairEnds ends, List<byte> taken)
    {
        while ((Poll(ends.MasterCopy, POLLIN, ends.Master) & POLLIN) != 0)
        {
            int queued = Queued(ends.MasterCopy, ends.Master);
            if (queued == 0) break; // readable for another reason (the slave side hung up)
            var chunk = new byte[queued];
            nint got;
            fixed (byte* bytes = chunk) got = read(ends.MasterCopy, bytes, (nuint)queued);
            if (got < 0) throw new SyscallException("read", Marshal.GetLastPInvokeError(), ends.Master.Pid, $"a copy of fd {ends.Master.Fd} (the master of {ends.Name})");
            if (got == 0) break;
            taken.AddRange(chunk.AsSpan(0, (int)got));
            if (taken.Count > TerminalOutputRecord.MaximumLength)
                throw new IOException($"{ends.What}: the pseudo-terminal {ends.Name} held more than {TerminalOutputRecord.MaximumLength} bytes of unread output");
        }
    }

    // The bytes back through the slave, unprocessed (OPOST is off), O_NONBLOCK for the while so that a
    // full buffer shows instead of blocking the engine with the tree frozen.
    private static void Write(PairEnds ends, byte[] data, ref int done)
    {
        int flags = fcntl(ends.SlaveCopy, F_GETFL, 0);
        if (flags < 0) throw new SyscallException("fcntl(F_GETFL)", Marshal.GetLastPInvokeError(), ends.Slave.Pid, $"a copy of fd {ends.Slave.Fd}");
        bool blocking = (flags & O_NONBLOCK) == 0;
        if (blocking && fcntl(ends.SlaveCopy, F_SETFL, flags | (int)O_NONBLOCK) != 0)
            throw new SyscallException("fcntl(F_SETFL, O_NONBLOCK)", Marshal.GetLastPInvokeError(), ends.Slave.Pid, $"a copy of fd {ends.Slave.Fd}");
        try
        {
            int stalls = 0;
            while (done < data.Length)
            {
                nint written;
                fixed (byte* bytes = data) written = write(ends.SlaveCopy, bytes + done, (nuint)(data.Length - done));
                int errno = written < 0 ? Marshal.GetLastPInvokeError() : 0;
                if (written > 0) { done += (int)written; stalls = 0; continue; }
                if (written < 0 && errno != EAGAIN && errno != EINTR)
                    throw new SyscallException("write", errno, ends.Slave.Pid, $"a copy of fd {ends.Slave.Fd} (putting {data.Length - done} bytes of unread output back)");
                if (++stalls > 50) throw new IOException($"{ends.What}: the pseudo-terminal {ends.Name} took {done} of the {data.Length} bytes of unread output put back, and no more for 5 seconds");
                Poll(ends.SlaveCopy, POLLOUT, ends.Slave, 100);
            }
        }
        finally
        {
            if (blocking) fcntl(ends.SlaveCopy, F_SETFL, flags);
        }
    }

    /// <summary>Restore: the unread output written into a new pair through a slave opened from its parked master.</summary>
    public static void PutBack(SyscallInjector syscalls, ScratchArea scratch, long master, TerminalRecord pair, byte[] output, string what)
    {
        const ulong O_RDWR = 2, O_NOCTTY = 0x100;
        byte[] raw = PseudoTerminals.Termios2(pair);
        uint outputFlags = BitConverter.ToUInt32(raw, 4) & ~OPOST;
        BitConverter.TryWriteBytes(raw.AsSpan(4), outputFlags);
        scratch.Reset();
        syscalls.Call($"ioctl(TCSETS2, OPOST cleared) of {what}", SYS_ioctl, (ulong)master, PseudoTerminals.TCSETS2, scratch.Put(raw));
        long slave = syscalls.Call($"ioctl(TIOCGPTPEER) of {what} (to put its unread output back)", SYS_ioctl, (ulong)master, PseudoTerminals.TIOCGPTPEER, O_RDWR | O_NOCTTY | O_NONBLOCK);
        try
        {
            int done = 0, stalls = 0;
            while (done < output.Length)
            {
                scratch.Reset();
                int length = output.Length - done;
                long written = syscalls.CallRaw(SYS_write, (ulong)slave, scratch.Put(output.AsSpan(done, length)), (ulong)length);
                if (written > 0) { done += (int)written; stalls = 0; continue; }
                if (written != -EAGAIN) throw new SyscallException($"write of {length} bytes of unread output into {what}", (int)-written, syscalls.Pid, $"fd {slave}");
                if (++stalls > 500) throw new IOException($"{what}: the new pair took {done} of the {output.Length} bytes of unread output, and no more for 5 seconds");
                Thread.Sleep(10); // the kernel's worker moves the pty's buffers into the master's queue
            }
            scratch.Reset();
            syscalls.Call($"ioctl(TCSETS2) of {what}", SYS_ioctl, (ulong)master, PseudoTerminals.TCSETS2, scratch.Put(PseudoTerminals.Termios2(pair)));
        }
        finally
        {
            syscalls.CallRaw(SYS_close, (ulong)slave);
        }
    }

    private static int Queued(int copy, (int Pid, int Fd) holder)
    {
        int value;
        Ioctl(copy, PseudoTerminals.FIONREAD, &value, holder, "FIONREAD");
        return value;
    }

    internal static short Poll(int copy, short events, (int Pid, int Fd) holder, int timeout = 0)
    {
        var poll = new Native.PollFd { Fd = copy, Events = events };
        if (Native.poll(&poll, 1, timeout) < 0)
            throw new SyscallException("poll", Marshal.GetLastPInvokeError(), holder.Pid, $"a copy of fd {holder.Fd}");
        return poll.ReturnedEvents;
    }

    private static void Ioctl(int copy, ulong request, void* argument, (int Pid, int Fd) holder, string name)
    {
        if (Native.ioctl(copy, request, argument) != 0)
            throw new SyscallException($"ioctl({name})", Native.LastErrno, holder.Pid, $"a copy of fd {holder.Fd}");
    }

    private static CheckpointRefusedException Refused(PairEnds ends, string problem) =>
        new($"{ends.What}: the pseudo-terminal {ends.Name} {problem}");

    private sealed class LostOutputException(PairEnds ends, int count, Exception cause)
        : IOException($"{ends.What}: {count} bytes of unread output of the pseudo-terminal {ends.Name} were taken from its master and could not be put back: {cause.Message}", cause);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint read(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint write(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(int fd, int command, int argument);
}
