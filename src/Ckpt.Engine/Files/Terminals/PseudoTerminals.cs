using System.Runtime.InteropServices;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Files.Terminals;

/// <summary>
/// What the terminal kinds share: how a master (/dev/ptmx, character device 5:2) and a slave
/// (/dev/pts/N, majors 136-143 of the devpts mounted on /dev/pts) are recognised, where the other
/// end of a pair is in the tree, and the pair's state read at checkpoint time from the engine's own
/// copies of the target's descriptors (pidfd_getfd): ioctls that read and change nothing.
/// </summary>
public static unsafe class PseudoTerminals
{
    public const ulong TCGETS2 = 0x802C542A, TCSETS2 = 0x402C542B, TIOCGWINSZ = 0x5413, TIOCSWINSZ = 0x5414,
        TIOCGPTN = 0x80045430, TIOCSPTLCK = 0x40045431, TIOCGPTLCK = 0x80045439, TIOCGPKT = 0x80045438, TIOCPKT = 0x5420,
        TIOCGPTPEER = 0x5441, TIOCSCTTY = 0x540E, TIOCSPGRP = 0x5410, TIOCGSID = 0x5429, FIONREAD = 0x541B,
        TIOCGETD = 0x5424, TIOCGEXCL = 0x80045440;
    public const int Termios2Size = 44, WinsizeSize = 8;
    private const int ENOTTY = 25;

    public static (ulong Major, ulong Minor) DeviceNumbers(ulong rawDevice) =>
        (((rawDevice >> 8) & 0xfff) | ((rawDevice >> 32) & ~0xfffUL), (rawDevice & 0xff) | ((rawDevice >> 12) & ~0xffUL));

    /// <summary>/dev/ptmx: every open of it is a new pair.</summary>
    public static bool IsMaster(in Native.Stat stat) =>
        (stat.Mode & 0xF000) == 0x2000 && DeviceNumbers(stat.RawDevice) == (5, 2);

    /// <summary>N of /dev/pts/N for a Unix98 pty slave (majors 136-143), else null.</summary>
    public static int? SlaveIndex(ulong rawDevice)
    {
        var (major, minor) = DeviceNumbers(rawDevice);
        return major is >= 136 and <= 143 ? (int)((major - 136) * 256 + minor) : null;
    }

    public static int? SlaveIndex(in Native.Stat stat) => (stat.Mode & 0xF000) == 0x2000 ? SlaveIndex(stat.RawDevice) : null;

    /// <summary>The devpts instance the engine sees at /dev/pts: slaves of another one (a container's) are not ours to pair.</summary>
    public static ulong? DevptsDevice() => Native.stat("/dev/pts", out Native.Stat s) == 0 ? s.Device : null;

    /// <summary>The master of pair <paramref name="index"/> in the processes given: a process and one of its descriptors.</summary>
    public static (int Pid, int Fd)? FindMaster(IEnumerable<int> pids, int index)
    {
        foreach (int pid in pids)
            foreach (var (fd, target) in Descriptors(pid))
            {
                if (target is not ("/dev/ptmx" or "/dev/pts/ptmx")) continue;
                try
                {
                    if (ProcFdInfo.Read(pid, fd).Fields.TryGetValue("tty-index", out string? n) && n == index.ToString(System.Globalization.CultureInfo.InvariantCulture))
                        return (pid, fd);
                }
                catch (IOException) { } // closed meanwhile (only before the freeze)
            }
        return null;
    }

    /// <summary>The descriptors of slave <paramref name="index"/> in the processes given.</summary>
    public static List<(int Pid, int Fd)> FindSlaves(IEnumerable<int> pids, int index)
    {
        string path = $"/dev/pts/{index}";
        return pids.SelectMany(pid => Descriptors(pid).Where(d => d.Target == path).Select(d => (pid, d.Fd))).ToList();
    }

    private static IEnumerable<(int Fd, string Target)> Descriptors(int pid)
    {
        string[] entries;
        try { entries = Directory.GetFileSystemEntries($"/proc/{pid}/fd"); }
        catch (IOException) { yield break; } // exited (only before the freeze can that happen)
        foreach (string entry in entries)
        {
            string? target;
            try { target = new FileInfo(entry).LinkTarget; }
            catch (IOException) { continue; }
            if (target is not null) yield return (int.Parse(Path.GetFileName(entry)), target);
        }
    }

    /// <summary>Every end of pair <paramref name="index"/> in the processes given: masters and slaves.</summary>
    public static IEnumerable<(int Pid, int Fd)> Ends(IEnumerable<int> pids, int index) =>
        pids.SelectMany(pid => Descriptors(pid).Where(d => IsEnd(pid, d, index)).Select(d => (pid, d.Fd)));

    /// <summary>A process outside <paramref name="tree"/> (and not the engine) holding an end of pair <paramref name="index"/>, if any.</summary>
    public static (int Pid, int Fd)? OutsideHolder(IReadOnlyCollection<int> tree, int index)
    {
        foreach (string process in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(process), out int pid) || tree.Contains(pid) || pid == Environment.ProcessId) continue;
            try
            {
                foreach (var end in Descriptors(pid))
                    if (IsEnd(pid, end, index)) return (pid, end.Fd);
            }
            catch (UnauthorizedAccessException) { } // not ours to see: it cannot hold our pair's ends either
        }
        return null;
    }

    private static bool IsEnd(int pid, (int Fd, string Target) descriptor, int index)
    {
        if (descriptor.Target == $"/dev/pts/{index}") return true;
        if (descriptor.Target is not ("/dev/ptmx" or "/dev/pts/ptmx")) return false;
        try { return ProcFdInfo.Read(pid, descriptor.Fd).Fields.TryGetValue("tty-index", out string? n) && n == index.ToString(System.Globalization.CultureInfo.InvariantCulture); }
        catch (IOException) { return false; } // closed meanwhile
    }

    /// <summary>
    /// The pair's state, from a copy of its master and of one slave end: termios, window size, packet
    /// mode, lock, the slave node's owner and mode, and its unread output (<see cref="UnreadOutput"/>:
    /// taken and put back while the tree is frozen; checked only in the <paramref name="dryRun"/>).
    /// Refused: unread input (the slave's line discipline processed it: <see cref="UnreadOutput"/>), a
    /// line discipline other than N_TTY, exclusive mode (TIOCEXCL). <paramref name="what"/> names the
    /// descriptor inspected, for messages.
    /// </summary>
    public static (TerminalRecord Pair, byte[] Output) ReadPair(int objRef, int index, (int Pid, int Fd) master, (int Pid, int Fd) slave, string what,
        ObjectTable objects, IReadOnlyCollection<int> tree, bool dryRun)
    {
        int masterCopy = SocketNative.DuplicateFrom(master.Pid, master.Fd);
        int slaveCopy = -1;
        try
        {
            slaveCopy = SocketNative.DuplicateFrom(slave.Pid, slave.Fd);
            string name = $"/dev/pts/{index}";
            var record = new TerminalRecord { TerminalObjRef = objRef, Index = index };
            byte* termios = stackalloc byte[Termios2Size];
            Ioctl(masterCopy, TCGETS2, termios, master, "TCGETS2");
            ReadTermios(termios, ref record);
            ushort* size = stackalloc ushort[4];
            Ioctl(masterCopy, TIOCGWINSZ, size, master, "TIOCGWINSZ");
            (record.Rows, record.Columns, record.XPixels, record.YPixels) = (size[0], size[1], size[2], size[3]);
            int value;
            Ioctl(masterCopy, TIOCGPKT, &value, master, "TIOCGPKT");
            if (value != 0) record.Flags |= TerminalFlags.PacketMode;
            Ioctl(masterCopy, TIOCGPTLCK, &value, master, "TIOCGPTLCK");
            if (value != 0) record.Flags |= TerminalFlags.Locked;
            Ioctl(slaveCopy, TIOCGETD, &value, slave, "TIOCGETD");
            if (value != 0) throw Refused(what, name, $"uses line discipline {value}: only N_TTY (0) is restored");
            Ioctl(slaveCopy, TIOCGEXCL, &value, slave, "TIOCGEXCL");
            if (value != 0) throw Refused(what, name, "is in exclusive mode (TIOCEXCL): not saved");
            UnreadOutput.Poll(slaveCopy, 1 /* POLLIN */, slave); // waits for the pty's flip-buffer worker toward the slave
            Ioctl(slaveCopy, FIONREAD, &value, slave, "FIONREAD");
            if (value != 0) throw Refused(what, name, $"has {value} bytes of input the slave's reader (fd {slave.Fd} of process {slave.Pid}) has not read; the slave's line discipline has processed them (line editing, canonical line boundaries, echo), and writing them again through the master would process them twice, so a pair is checkpointed only without unread input: checkpoint again once the input is read");
            Native.Stat node = Native.StatOrThrow(name, slave.Pid);
            (record.SlaveUid, record.SlaveGid, record.SlaveMode) = (node.Uid, node.Gid, node.Mode & 0x1ff);
            byte[] output = UnreadOutput.Capture(new UnreadOutput.PairEnds(masterCopy, slaveCopy, master, slave, what, index, tree), objects, objRef, dryRun);
            return (record, output);
        }
        finally
        {
            Native.close(masterCopy);
            if (slaveCopy >= 0) Native.close(slaveCopy);
        }
    }

    /// <summary>The session whose controlling terminal the pair's slave is (TIOCGSID on the master), 0 when none.</summary>
    public static int SessionOf(int masterCopy, (int Pid, int Fd) master)
    {
        int sid;
        if (Native.ioctl(masterCopy, TIOCGSID, &sid) == 0) return sid;
        if (Native.LastErrno == ENOTTY) return 0;
        throw new SyscallException("ioctl(TIOCGSID)", Native.LastErrno, master.Pid, $"a copy of fd {master.Fd}");
    }

    private static void ReadTermios(byte* termios, ref TerminalRecord record)
    {
        uint* flags = (uint*)termios;
        (record.InputFlags, record.OutputFlags, record.ControlFlags, record.LocalFlags) = (flags[0], flags[1], flags[2], flags[3]);
        record.LineDiscipline = termios[16];
        for (int i = 0; i < TerminalRecord.ControlCharacterCount; i++) record.ControlCharacters[i] = termios[17 + i];
        record.InputSpeed = *(uint*)(termios + 36);
        record.OutputSpeed = *(uint*)(termios + 40);
    }

    /// <summary>struct termios2 as TCSETS2 takes it.</summary>
    public static byte[] Termios2(in TerminalRecord record)
    {
        var bytes = new byte[Termios2Size];
        fixed (byte* termios = bytes)
        {
            uint* flags = (uint*)termios;
            (flags[0], flags[1], flags[2], flags[3]) = (record.InputFlags, record.OutputFlags, record.ControlFlags, record.LocalFlags);
            termios[16] = record.LineDiscipline;
            TerminalRecord copy = record;
            for (int i = 0; i < TerminalRecord.ControlCharacterCount; i++) termios[17 + i] = copy.ControlCharacters[i];
            *(uint*)(termios + 36) = record.InputSpeed;
            *(uint*)(termios + 40) = record.OutputSpeed;
        }
        return bytes;
    }

    public static byte[] Winsize(in TerminalRecord record)
    {
        var bytes = new byte[WinsizeSize];
        Span<ushort> size = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
        (size[0], size[1], size[2], size[3]) = (record.Rows, record.Columns, record.XPixels, record.YPixels);
        return bytes;
    }

    private static void Ioctl(int copy, ulong request, void* argument, (int Pid, int Fd) holder, string name)
    {
        if (Native.ioctl(copy, request, argument) != 0)
            throw new SyscallException($"ioctl({name})", Native.LastErrno, holder.Pid, $"a copy of fd {holder.Fd}");
    }

    private static CheckpointRefusedException Refused(string what, string name, string problem) =>
        new($"{what}: the pseudo-terminal {name} {problem}");
}
