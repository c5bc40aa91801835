using System.Runtime.CompilerServices;
using System.Text;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files;

/// <summary>
/// Named pipes (FIFOs) opened by processes of the tree: each open end is a file object (its own open file
/// description: read, write or read-write, O_NONBLOCK, O_DIRECT) whose FILE path is the FIFO's; the FIFO's
/// buffer is one object of the object table (ObjectType.Fifo, keyed by device and inode) that every end
/// refers to, written with the first end as a PIPE_BUF record: the size and the bytes buffered, copied
/// without being consumed as for a pipe (<see cref="PipeKind.CopyBufferedBytes"/>). Unlike a pipe's, a
/// FIFO's ends need not all be there: a reader with no writer is a FIFO as any other.
/// Refused at checkpoint, naming it: a FIFO no longer at its path (replaced; a deleted one is
/// <see cref="DeletedFifoKind"/>'s), one that a process
/// outside the tree has open (after a --kill it would keep the kernel's buffer, and the restore would add the
/// saved bytes to it), O_ASYNC.
/// Restore: validated before anything exists: the path must still be a FIFO (lstat) and nobody may have it
/// open (its buffer must be empty, so the saved bytes are all it holds); then, injected with the process's
/// credentials, each end is opened by path (O_NOFOLLOW, O_NONBLOCK so that an end never waits for its other
/// side) while a helper read-write descriptor of the FIFO is open (a writer opened with no reader would get
/// ENXIO); the first end of a FIFO in this restore sizes it (F_SETPIPE_SZ) and writes the saved bytes into
/// it; the helper is closed (the ends keep the buffer alive) and the end gets its recorded flags.
/// </summary>
public sealed class FifoKind : IDescriptorKind
{
    private const uint O_ACCMODE = 3, O_RDWR = 2, O_NONBLOCK = 0x800, O_ASYNC = 0x2000, O_DIRECT = 0x4000, O_NOFOLLOW = 0x20000, O_CLOEXEC = 0x80000;
    private const int F_SETFL = 4;
    private const ulong AT_FDCWD = unchecked((ulong)-100);

    public bool Matches(DescriptorInfo fd) => fd.StatKind == FileKind.Pipe && !fd.Target.StartsWith("pipe:[", StringComparison.Ordinal);

    // ---- checkpoint ----

    public IInspectedFile Inspect(DescriptorInfo fd, int objRef)
    {
        string what = $"fd {fd.Fd} of process {fd.Pid} (FIFO {fd.Target})";
        if (Native.stat(fd.Target, out Native.Stat atPath) != 0 || atPath.Device != fd.Stat.Device || atPath.Inode != fd.Stat.Inode)
            throw new CheckpointRefusedException($"{what} is no longer at its path (renamed or replaced by another file, or out of the engine's view): a FIFO is restored by its path, unsupported");
        return InspectEnd(fd, objRef, FileKind.Fifo, what);
    }

    /// <summary>An end of a named or deleted FIFO: its FILE record, and the FIFO's buffer object.</summary>
    internal static IInspectedFile InspectEnd(DescriptorInfo fd, int objRef, FileKind kind, string what)
    {
        if ((fd.FdInfo.Flags & O_ASYNC) != 0)
            throw new CheckpointRefusedException($"{what} has O_ASYNC (signal-driven I/O): unsupported");
        if (OutsideHolder(fd.Target, fd.Stat, fd.TreePids ?? [fd.Pid]) is { } holder)
            throw new CheckpointRefusedException($"{what} is also open in process {holder} ('{ProcessNames.CommOf(holder)}'), which is not being checkpointed: unsupported");
        var (size, data) = PipeKind.CopyBufferedBytes(fd);
        ObjectTable objects = fd.Objects ?? throw new InvalidOperationException("a FIFO end needs the checkpoint's object table");
        int fifoRef = objects.RefOf(ObjectType.Fifo, Identity(fd.Stat));
        var buffer = new PipeBufferRecord { PipeObjRef = fifoRef, PipeSize = size, DataLength = (uint)data.Length };
        return new PipeKind.InspectedEnd(OpenFileRecords.Record(objRef, kind, fd.Stat, fd.Target, fd.FdInfo.Flags, 0), fd.Target, ObjectType.Fifo, buffer, data, objects);
    }

    // One key per FIFO, apart from pipefs inodes (another object type) and from FIFOs of other devices.
    private static long Identity(in Native.Stat stat) => (long)(stat.Device * 0x9E3779B97F4A7C15ul ^ stat.Inode);

    /// <summary>A process outside <paramref name="tree"/> with a descriptor of this FIFO, if any.</summary>
    private static int? OutsideHolder(string path, Native.Stat fifo, IReadOnlyCollection<int> tree)
    {
        foreach (string process in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(process), out int pid) || tree.Contains(pid) || pid == Environment.ProcessId) continue;
            if (HoldsFifo(pid, path, fifo)) return pid;
        }
        return null;
    }

    private static bool HoldsFifo(int pid, string path, Native.Stat fifo)
    {
        try
        {
            foreach (string entry in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
                if (new FileInfo(entry).LinkTarget == path && Native.stat(entry, out Native.Stat held) == 0 && held.Device == fifo.Device && held.Inode == fifo.Inode)
                    return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // gone meanwhile, or not ours to see
        return false;
    }

    // ---- restore ----

    public bool Restores(FileImage file) => file.Record.Kind == FileKind.Fifo;

    public void Validate(FileImage file, int fd)
    {
        if (file.Fifo is null)
            throw new RestoreRefusedException($"fd {fd} is a FIFO end without its buffer (PIPE_BUF record)");
        uint? mode = FileIdentity.ModeOfLink(file.Path);
        if (mode is null)
            throw new RestoreRefusedException($"fd {fd}: the FIFO {file.Path} is missing (create it with mkfifo to restore)");
        if ((mode & RestoreValidation.S_IFMT) != RestoreValidation.S_IFIFO)
            throw new RestoreRefusedException($"fd {fd}: {file.Path} was a FIFO and is {RestoreValidation.KindOfMode(mode.Value)} now");
        if (Native.stat(file.Path, out Native.Stat fifo) == 0 && OutsideHolder(file.Path, fifo, []) is { } holder)
            throw new RestoreRefusedException($"fd {fd}: the FIFO {file.Path} is open in process {holder} ('{ProcessNames.CommOf(holder)}'): its buffer would mix with the saved bytes");
    }

    // The FIFO buffers this restore has refilled: one model per restore, so the mark dies with it.
    private static readonly ConditionalWeakTable<PipeImage, object> Refilled = [];

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd) =>
        OpenWithHelper(syscalls, scratch, file, fd, file.Path);

    /// <summary>
    /// An end of the FIFO at <paramref name="path"/> (its name, or /proc/PID/fd/N of an end placed already),
    /// opened while a read-write helper descriptor of it is open; the first open of the FIFO in this
    /// restore sizes it and writes the saved bytes into it.
    /// </summary>
    internal static long OpenWithHelper(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd, string path)
    {
        PipeImage fifo = file.Fifo!;
        uint noFollow = path.StartsWith("/proc/", StringComparison.Ordinal) ? 0 : O_NOFOLLOW; // a /proc/PID/fd link is followed by design
        scratch.Reset();
        long helper = syscalls.Call($"open of the FIFO {path} (read-write helper) for fd {fd}", SYS_openat, AT_FDCWD, scratch.PutString(path), O_RDWR | O_NONBLOCK | noFollow | O_CLOEXEC, 0);
        try
        {
            if (!Refilled.TryGetValue(fifo, out _))
            {
                long resized = syscalls.Call($"fcntl(F_SETPIPE_SZ, {fifo.Record.PipeSize}) of the FIFO {file.Path}", SYS_fcntl, (ulong)helper, (ulong)PipeKind.F_SETPIPE_SIZE, fifo.Record.PipeSize);
                if (resized != fifo.Record.PipeSize) throw new IOException($"FIFO {file.Path}: asked for {fifo.Record.PipeSize} bytes, the kernel made {resized}");
                PipeKind.Refill(syscalls, scratch, (ulong)helper, fifo.Data, fd);
                Refilled.Add(fifo, fifo);
            }
            scratch.Reset();
            return syscalls.Call($"open of the FIFO {path} for fd {fd}", SYS_openat, AT_FDCWD, scratch.PutString(path), (file.Record.OpenFlags & O_ACCMODE) | O_NONBLOCK | noFollow, 0);
        }
        finally
        {
            syscalls.Call($"close of the FIFO helper for fd {fd}", SYS_close, (ulong)helper);
        }
    }

    public void Placed(SyscallInjector syscalls, FileImage file, int fd)
    {
        ulong flags = file.Record.OpenFlags & (O_NONBLOCK | O_DIRECT);
        syscalls.Call($"fcntl(F_SETFL, 0x{flags:x}) of FIFO fd {fd}", SYS_fcntl, (ulong)fd, F_SETFL, flags);
    }
}
