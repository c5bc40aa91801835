using System.Runtime.InteropServices;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files.Terminals;

/// <summary>
/// The restore of terminals, across the tree. A process gets a controlling terminal only by
/// inheriting it at fork or, as a session leader, with TIOCSCTTY; so the pairs exist before any
/// process but the root is made:
/// 1. right after the root is created (<see cref="CreatePairs"/>): per pair, /dev/ptmx opened in the
///    root (with the engine's credentials, like the rest of creation; the slave node is then given the
///    recorded owner and mode) until it gets the recorded index (<see cref="OpenAtIndex"/>: programs
///    such as tmux keep their terminals' names; another index when that one is in use), unlocked, the recorded termios (TCSETS2) and window size set, its unread
///    output written back through a slave with OPOST cleared (<see cref="UnreadOutput.PutBack"/>), packet
///    mode set, and the master parked above every recorded descriptor, without close-on-exec, so every
///    process forked from then on inherits it;
/// 2. each session leader whose controlling terminal is a pair, right after its setsid() and before
///    it forks (<see cref="AcquireControllingTerminal"/>): the slave opened from the inherited master
///    (TIOCGPTPEER, O_NOCTTY) and TIOCSCTTY; the session's other processes inherit the terminal;
/// 3. once every process group exists (<see cref="SetForegroundGroups"/>): TIOCSPGRP from each leader;
/// 4. files stage: a master's descriptors get the root's parked master (pidfd_getfd: the same open file
///    description), a slave's descriptors a slave opened from it (TIOCGPTPEER); the inherited copies of
///    the parked masters are closed with the other inherited descriptors, the root's are kept;
/// 5. after the files stage (<see cref="Finish"/>): a recorded lock put back (TIOCSPTLCK), the root's
///    parked masters closed.
/// A terminal outside the image (the user's) becomes <see cref="RestorePlan.ShellTerminal"/>: the tree
/// joins the session `ckpt restore` runs in, whose controlling terminal that must be, and a root that was
/// in the terminal's foreground group is put there again.
/// </summary>
public sealed partial class TerminalsRestore
{
    private const ulong O_ACCMODE = 3, O_RDWR = 2, O_NOCTTY = 0x100, O_NONBLOCK = 0x800, F_DUPFD = 0;
    private const ulong AT_FDCWD = unchecked((ulong)-100);
    private readonly RestorePlan _plan;
    private readonly Dictionary<int, (TerminalImage Pair, FileImage Master)> _pairs;
    private readonly Dictionary<int, long> _parked = []; // pair objref -> the master's fd in the root
    private int _rootPid;

    public TerminalsRestore(RestorePlan plan)
    {
        _plan = plan;
        _pairs = plan.Processes.SelectMany(p => p.FileTable.Files.Values)
            .Where(f => f.Record.Kind == FileKind.PtyMaster && f.Terminal is not null)
            .DistinctBy(f => f.Terminal!.ObjRef)
            .ToDictionary(f => f.Terminal!.ObjRef, f => (f.Terminal!, f));
    }

    /// <summary>The descriptors of <paramref name="pid"/> the restore made and keeps until <see cref="Finish"/>.</summary>
    public IReadOnlyCollection<long> KeptIn(int pid) => pid == _rootPid ? _parked.Values : [];

    // ---- validation, before any process exists ----

    public static void Validate(RestorePlan plan)
    {
        var uids = plan.Processes.SelectMany(p => new[] { p.Credentials.Uid, p.Credentials.Euid, p.Credentials.Suid, p.Credentials.Fsuid }).ToHashSet();
        var gids = plan.Processes.SelectMany(p => new[] { p.Credentials.Gid, p.Credentials.Egid, p.Credentials.Sgid, p.Credentials.Fsgid }.Concat(p.Groups)).ToHashSet();
        uint? devptsGid = DevptsGid();
        var pairs = plan.Processes.SelectMany(p => p.FileTable.Files.Values).Select(f => f.Terminal).OfType<TerminalImage>().DistinctBy(t => t.ObjRef).ToList();
        if (pairs.Count > 0 && (Native.stat("/dev/ptmx", out Native.Stat ptmx) != 0 || !PseudoTerminals.IsMaster(ptmx) || PseudoTerminals.DevptsDevice() is null))
            throw new RestoreRefusedException("the image holds pseudo-terminal pairs, but /dev/ptmx or /dev/pts is missing here");
        foreach (TerminalImage pair in pairs)
        {
            TerminalRecord t = pair.Record;
            if (!uids.Contains(t.SlaveUid) || !(gids.Contains(t.SlaveGid) || t.SlaveGid == devptsGid))
                throw new RestoreRefusedException($"pseudo-terminal /dev/pts/{t.Index} was owned by uid {t.SlaveUid} gid {t.SlaveGid}, which are not among the image's credentials (nor devpts's group): refused");
        }
        foreach (ProcessImage process in plan.Processes)
        {
            if (process.Signal.ControllingTerminal is not { Outside: true } outside) continue;
            string what = $"process {process.Pid}'s controlling terminal {outside.Name} belonged to no process of the image (the user's terminal)";
            if (plan.ShellTerminal is null)
                throw new RestoreRefusedException($"{what}: restore with --shell-terminal (Restore-Process -ShellTerminal) to give it the terminal the restore runs on");
            if (process.Task.Sid == process.Pid || plan.Processes.Any(p => p.Pid == process.Task.Sid))
                throw new RestoreRefusedException($"{what}, and its session's leader {process.Task.Sid} is in the image: a restored session cannot take the terminal of the session the restore runs in");
            ulong own = (ulong)ProcStat.Read(Environment.ProcessId).Field(7);
            Native.Stat shell = Native.StatOrThrow(plan.ShellTerminal, Environment.ProcessId);
            if (own == 0 || own != shell.RawDevice)
                throw new RestoreRefusedException($"{what}: --shell-terminal gives it {plan.ShellTerminal}, but that is not the controlling terminal of the restore's session (the restored processes join that session): run ckpt restore in the foreground of that terminal");
        }
    }

    // devpts's gid= mount option: the group a new slave node gets (tty).
    private static uint? DevptsGid()
    {
        foreach (string line in File.ReadLines("/proc/self/mounts"))
        {
            string[] fields = line.Split(' ');
            if (fields.Length < 4 || fields[1] != "/dev/pts" || fields[2] != "devpts") continue;
            string? option = fields[3].Split(',').FirstOrDefault(o => o.StartsWith("gid=", StringComparison.Ordinal));
            return option is null ? null : uint.Parse(option[4..], System.Globalization.CultureInfo.InvariantCulture);
        }
        return null;
    }

    // ---- creation ----

    /// <summary>Step 1, in the root (after its setsid, before it forks): every pair of the image, parked.</summary>
    public void CreatePairs(RestoreContext root)
    {
        _rootPid = root.Plan.Pid;
        if (_pairs.Count == 0) return;
        int floor = _plan.Processes.SelectMany(p => p.FileTable.Descriptors).Select(d => d.Fd).DefaultIfEmpty(-1).Max() + 1;
        SyscallInjector syscalls = root.Leader;
        ScratchArea scratch = root.Scratch;
        var extras = new List<long>();
        // Lowest recorded index first: /dev/ptmx hands out the lowest free index, so each pair's extra opens only take indices below its own.
        foreach (var (objRef, (pair, master)) in _pairs.OrderBy(p => p.Value.Pair.Record.Index))
        {
            scratch.Reset();
            TerminalRecord t = pair.Record;
            string what = $"pseudo-terminal pair /dev/pts/{t.Index}";
            ulong flags = master.Record.OpenFlags & (O_ACCMODE | O_NONBLOCK) | O_NOCTTY;
            long opened = OpenAtIndex(syscalls, scratch, flags, t.Index, what, extras);
            long parked = syscalls.Call($"fcntl(F_DUPFD, {floor}) of the new master for {what}", SYS_fcntl, (ulong)opened, F_DUPFD, (ulong)floor);
            syscalls.Call("close of the new master's first fd", SYS_close, (ulong)opened);
            _parked[objRef] = parked;
            Ioctl(syscalls, parked, PseudoTerminals.TIOCSPTLCK, scratch.PutStruct(0), what, "TIOCSPTLCK 0");
            Ioctl(syscalls, parked, PseudoTerminals.TCSETS2, scratch.Put(PseudoTerminals.Termios2(t)), what, "TCSETS2");
            Ioctl(syscalls, parked, PseudoTerminals.TIOCSWINSZ, scratch.Put(PseudoTerminals.Winsize(t)), what, "TIOCSWINSZ");
            if (pair.UnreadOutput.Length > 0) UnreadOutput.PutBack(syscalls, scratch, parked, t, pair.UnreadOutput, what);
            scratch.Reset();
            if (t.Flags.HasFlag(TerminalFlags.PacketMode)) Ioctl(syscalls, parked, PseudoTerminals.TIOCPKT, scratch.PutStruct(1), what, "TIOCPKT 1");
            ulong index = scratch.PutStruct(0);
            Ioctl(syscalls, parked, PseudoTerminals.TIOCGPTN, index, what, "TIOCGPTN");
            int now = BitConverter.ToInt32(ProcessMemory.ReadExact(syscalls.Pid, index, sizeof(int)));
            SetOwner($"/dev/pts/{now}", t, what);
        }
        foreach (long extra in extras) syscalls.Call("close of a pseudo-terminal opened to reach a recorded index", SYS_close, (ulong)extra);
    }

    /// <summary>Upper bound of the /dev/ptmx opens made to reach one recorded index (the kernel's default pty max is 4096).</summary>
    private const int MaxOpensForIndex = 4096;

    /// <summary>
    /// A new master whose slave has <paramref name="index"/> when that index is free: /dev/ptmx gives the lowest free
    /// index, so opening it again until the index comes reaches it, every lower free index held meanwhile
    /// (<paramref name="extras"/>, closed once every pair is made). When the index is in use (another terminal took it
    /// since the checkpoint) the first index above it that comes is kept: the pair works, under another name.
    /// </summary>
    private static long OpenAtIndex(SyscallInjector syscalls, ScratchArea scratch, ulong flags, int index, string what, List<long> extras)
    {
        for (int attempt = 0; ; attempt++)
        {
            scratch.Reset();
            long opened = syscalls.Call($"open of /dev/ptmx for {what}", SYS_openat, AT_FDCWD, scratch.PutString("/dev/ptmx"), flags, 0);
            ulong got = scratch.PutStruct(0);
            Ioctl(syscalls, opened, PseudoTerminals.TIOCGPTN, got, what, "TIOCGPTN");
            int now = BitConverter.ToInt32(ProcessMemory.ReadExact(syscalls.Pid, got, sizeof(int)));
            if (now >= index || attempt >= MaxOpensForIndex) return opened;
            extras.Add(opened);
        }
    }

    // The node a pair's open made belongs to whoever opened it (the engine's user here): the recorded
    // owner and mode, validated to be among the image's credentials.
    private static void SetOwner(string node, TerminalRecord t, string what)
    {
        Native.Stat now = Native.StatOrThrow(node, Environment.ProcessId);
        if ((now.Uid != t.SlaveUid || now.Gid != t.SlaveGid) && chown(node, t.SlaveUid, t.SlaveGid) != 0)
            throw new SyscallException($"chown({t.SlaveUid}, {t.SlaveGid})", Native.LastErrno, Environment.ProcessId, $"{node}, the new slave of {what}");
        if ((now.Mode & 0x1ff) != t.SlaveMode && chmod(node, t.SlaveMode) != 0)
            throw new SyscallException($"chmod(0{Convert.ToString(t.SlaveMode, 8)})", Native.LastErrno, Environment.ProcessId, $"{node}, the new slave of {what}");
    }

    /// <summary>Step 2, in a process that has just become a session leader (setsid) and has forked nothing yet.</summary>
    public void AcquireControllingTerminal(SyscallInjector leader, int pid)
    {
        ProcessImage? image = _plan.Processes.FirstOrDefault(p => p.Pid == pid);
        if (image?.Signal.ControllingTerminal is not { Outside: false } terminal || image.Task.Sid != pid) return;
        long master = _parked[terminal.Record.TerminalObjRef];
        long slave = leader.Call($"ioctl(TIOCGPTPEER) for the controlling terminal of session {pid} (it was {terminal.Name})", SYS_ioctl, (ulong)master, PseudoTerminals.TIOCGPTPEER, O_RDWR | O_NOCTTY);
        try
        {
            leader.Call($"ioctl(TIOCSCTTY) of session {pid}'s terminal (it was {terminal.Name})", SYS_ioctl, (ulong)slave, PseudoTerminals.TIOCSCTTY, 0);
        }
        finally
        {
            leader.CallRaw(SYS_close, (ulong)slave);
        }
    }

    /// <summary>Step 3, once every group exists: each terminal's foreground group, set by its session's leader.</summary>
    public void SetForegroundGroups(TreeRestoreContext tree)
    {
        foreach (ProcessImage process in _plan.Processes)
        {
            if (process.Signal.ControllingTerminal is not { } terminal || terminal.Record.ForegroundGroup == 0) continue;
            if (!tree.ByPid.TryGetValue(process.Pid, out RestoreContext? context)) continue;
            ScratchArea scratch = context.Scratch;
            scratch.Reset();
            if (!terminal.Outside && process.Task.Sid == process.Pid)
            {
                long slave = context.Leader.Call($"ioctl(TIOCGPTPEER) for session {process.Pid}'s terminal", SYS_ioctl, (ulong)_parked[terminal.Record.TerminalObjRef], PseudoTerminals.TIOCGPTPEER, O_RDWR | O_NOCTTY);
                try { Ioctl(context.Leader, slave, PseudoTerminals.TIOCSPGRP, scratch.PutStruct(terminal.Record.ForegroundGroup), $"session {process.Pid}'s terminal (it was {terminal.Name})", $"TIOCSPGRP {terminal.Record.ForegroundGroup}"); }
                finally { context.Leader.CallRaw(SYS_close, (ulong)slave); }
            }
            else if (terminal.Outside && process.Pid == _rootPid && terminal.Record.ForegroundGroup == process.Task.Pgid && process.Task.Pgid == process.Pid && _plan.ShellTerminal is { } shell)
            {
                // The root led the foreground job of the user's terminal: it leads it on the restore's terminal.
                long opened = context.Leader.Call($"open of {shell} (the shell terminal)", SYS_openat, AT_FDCWD, scratch.PutString(shell), O_RDWR | O_NOCTTY | O_NONBLOCK, 0);
                try { Ioctl(context.Leader, opened, PseudoTerminals.TIOCSPGRP, scratch.PutStruct(process.Pid), shell, $"TIOCSPGRP {process.Pid}"); }
                finally { context.Leader.CallRaw(SYS_close, (ulong)opened); }
            }
        }
    }

    // ---- files ----

    /// <summary>The objects FilesRestore and the kinds look up: each pair's objref -> the root's parked master.</summary>
    public void Publish(Dictionary<int, (int Pid, int Fd)> placed)
    {
        foreach (var (objRef, fd) in _parked) placed[objRef] = (_rootPid, (int)fd);
    }

    /// <summary>A copy of the pair's master in the process being restored (pidfd_getfd from the root).</summary>
    public static long FetchMaster(SyscallInjector syscalls, TerminalImage pair, IReadOnlyDictionary<int, (int Pid, int Fd)> placed, string what)
    {
        if (!placed.TryGetValue(pair.ObjRef, out var master))
            throw new InvalidOperationException($"{what}: the pair of /dev/pts/{pair.Record.Index} was not made");
        long pidfd = syscalls.Call($"pidfd_open({master.Pid}) for {what}", SYS_pidfd_open, (ulong)master.Pid, 0);
        try
        {
            return syscalls.Call($"pidfd_getfd of the new master of /dev/pts/{pair.Record.Index} for {what}", SYS_pidfd_getfd, (ulong)pidfd, (ulong)master.Fd, 0);
        }
        finally
        {
            syscalls.CallRaw(SYS_close, (ulong)pidfd);
        }
    }

    /// <summary>Step 5, after every process's files: the recorded locks, and the root's parked masters closed.</summary>
    public void Finish(RestoreContext root, Dictionary<int, (int Pid, int Fd)> placed)
    {
        foreach (var (objRef, parked) in _parked)
        {
            root.Scratch.Reset();
            if (_pairs[objRef].Pair.Record.Flags.HasFlag(TerminalFlags.Locked))
                Ioctl(root.Leader, parked, PseudoTerminals.TIOCSPTLCK, root.Scratch.PutStruct(1), $"pseudo-terminal pair /dev/pts/{_pairs[objRef].Pair.Record.Index}", "TIOCSPTLCK 1");
            root.Leader.Call("close of a new pseudo-terminal master the restore held", SYS_close, (ulong)parked);
            placed.Remove(objRef);
        }
        _parked.Clear();
    }

    private static void Ioctl(SyscallInjector syscalls, long fd, ulong request, ulong argument, string what, string name) =>
        syscalls.Call($"ioctl({name}) of {what}", SYS_ioctl, (ulong)fd, request, argument);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int chown(string path, uint owner, uint group);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int chmod(string path, uint mode);
}
