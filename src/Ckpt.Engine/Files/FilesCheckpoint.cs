using System.Text;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Checkpoint.Audit;
using Ckpt.Engine.Linux;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Files;

/// <summary>
/// The descriptor table from /proc/PID/fd (+ fdinfo for position, flags and a kind's state, stat for
/// identity). Each descriptor is handed to the first <see cref="DescriptorKinds"/> entry that matches
/// it; one no kind matches is refused, naming the fd and what it is. <see cref="Inspect"/> runs before
/// anything is written so a refusal leaves no half image; <see cref="Write"/> writes FILE_TABLE and its
/// entries (each file object, as its kind writes it, before its first descriptor), then the locks held
/// through them (<see cref="FileLocks"/>).
/// </summary>
public sealed class FilesCheckpoint
{
    private const uint O_CLOEXEC = 0x80000;
    private readonly List<Entry> _entries = [];
    private readonly List<FileLockRecord> _locks = [];

    /// <param name="FirstUse">the file object goes before this descriptor; later sharers write only the objref</param>
    private sealed record Entry(IInspectedFile File, FileDescriptorRecord Descriptor, bool FirstUse);

    public static FilesCheckpoint Inspect(int pid, ObjectTable objRefs) => Inspect(pid, objRefs, new FileDescriptions());

    /// <param name="descriptions">the file descriptions of the processes inspected before this one: a
    /// descriptor of one of them (inherited through fork, passed over a socket) becomes a use of its object</param>
    /// <param name="dryRun">the audit before the freeze: every kind's refusal, without reading what can be
    /// read once only (<see cref="DescriptorInfo.DryRun"/>); internet sockets are only matched (their
    /// connection state is read while the target is frozen)</param>
    public static FilesCheckpoint Inspect(int pid, ObjectTable objRefs, FileDescriptions descriptions, bool dryRun = false)
    {
        var table = new FilesCheckpoint();
        // GetFileSystemEntries, not GetFiles: a directory's descriptor is a link to a directory,
        // which GetFiles leaves out (it follows the link), and the fd would silently vanish.
        var fds = ProcText.ListNumbers($"/proc/{pid}/fd").Order();
        foreach (int fd in fds)
        {
            string target = new FileInfo($"/proc/{pid}/fd/{fd}").LinkTarget ?? "";
            Native.Stat stat = Native.StatOrThrow($"/proc/{pid}/fd/{fd}", pid);
            var info = new DescriptorInfo(pid, fd, target, stat, ProcFdInfo.Read(pid, fd)) { Objects = objRefs, TreePids = descriptions.TreePids, DryRun = dryRun, TcpConnections = descriptions.TcpConnections, InFlight = new Sockets.InFlightFiles(pid, table, descriptions, objRefs) };
            DescriptorAudit.Check(info);
            IDescriptorKind kind = DescriptorKinds.ForCheckpoint(info);
            var descriptor = new FileDescriptorRecord { Fd = fd, CloseOnExec = (info.FdInfo.Flags & O_CLOEXEC) != 0 ? 1 : 0 };
            if (table.SharedWith(pid, fd, stat) is { } sibling)
            {
                table._entries.Add(sibling with { Descriptor = descriptor with { FileObjRef = sibling.File.File.ObjRef }, FirstUse = false });
                continue;
            }
            if (descriptions.SharedWith(pid, fd, stat) is { } elsewhere)
            {
                table._entries.Add(new Entry(elsewhere, descriptor with { FileObjRef = elsewhere.File.ObjRef }, FirstUse: false));
                continue;
            }
            if (dryRun && kind is Sockets.InetSocketKind) continue;
            int objRef = objRefs.Next();
            IInspectedFile inspected = kind.Inspect(info, objRef);
            if (kind is UnlinkedFileKind) objRefs.UnlinkedFiles.AddDescriptor(info, inspected);
            table._entries.Add(new Entry(inspected, descriptor with { FileObjRef = objRef }, FirstUse: true));
            descriptions.Add(pid, fd, inspected);
            table._locks.AddRange(FileLocks.Inspect(info, objRef)); // a dup shows the same locks: first use only
        }
        return table;
    }

    // Descriptors made by dup() share one open file description, and with it the offset, the status
    // flags and a kind's state (an eventfd's counter): kcmp(KCMP_FILE) tells, so they become one
    // file object, restored once and dup'ed. (All eventfds share one anonymous inode: kcmp decides.)
    private Entry? SharedWith(int pid, int fd, in Native.Stat stat)
    {
        foreach (Entry earlier in _entries)
        {
            if (!earlier.FirstUse || earlier.File.File.Device != stat.Device || earlier.File.File.Inode != stat.Inode) continue;
            int order = Native.kcmp(pid, pid, Native.KCMP_FILE, earlier.Descriptor.Fd, fd);
            if (order < 0) throw new SyscallException("kcmp(KCMP_FILE)", Native.LastErrno, pid, $"fd {earlier.Descriptor.Fd} and fd {fd}");
            if (order == 0) return earlier;
        }
        return null;
    }

    /// <summary>The file object of this table's (inspected so far) that is the open file description the engine's descriptor is (a descriptor in flight, <see cref="Sockets.InFlightFiles"/>).</summary>
    public IInspectedFile? SharedWithEngineCopy(int pid, int engineFd, in Native.Stat stat)
    {
        foreach (Entry earlier in _entries)
        {
            if (!earlier.FirstUse || earlier.File.File.Device != stat.Device || earlier.File.File.Inode != stat.Inode) continue;
            int order = Native.kcmp(pid, Environment.ProcessId, Native.KCMP_FILE, earlier.Descriptor.Fd, engineFd);
            if (order < 0) throw new SyscallException("kcmp(KCMP_FILE)", Native.LastErrno, pid, $"fd {earlier.Descriptor.Fd} and the engine's copy of a descriptor in flight");
            if (order == 0) return earlier.File;
        }
        return null;
    }

    public void Write(ImageWriter writer, int tableObjRef)
    {
        writer.Write(new FileTableRecord { ObjRef = tableObjRef, DescriptorCount = _entries.Count });
        foreach (Entry entry in _entries)
        {
            if (entry.FirstUse) entry.File.Write(writer);
            writer.Write(entry.Descriptor);
        }
        foreach (FileLockRecord fileLock in _locks) writer.Write(fileLock);
    }
}

/// <summary>
/// The open file descriptions of a tree, across its processes: a child shares every descriptor it
/// inherited with its parent (the same offset and status flags), which kcmp(KCMP_FILE) across the
/// two pids tells. Such a descriptor is one file object, written with the first process that has
/// it and referred to by objref from the others (a pipe shared by two processes is no different).
/// </summary>
public sealed class FileDescriptions : IDisposable
{
    private readonly List<(int Pid, int Fd, IInspectedFile File)> _first = [];

    public FileDescriptions() { }

    /// <param name="treePids">every live process of the tree, where a pipe's other end may be</param>
    public FileDescriptions(IEnumerable<int> treePids) => TreePids = treePids.ToList();

    public IReadOnlyCollection<int>? TreePids { get; }

    /// <summary>The checkpoint's established TCP connections (--tcp-established), held in repair mode; null: refused.</summary>
    public Sockets.TcpConnectionCheckpoint? TcpConnections { get; init; }

    /// <summary>The descriptors in flight the checkpoint's peeks installed in the engine (<see cref="Sockets.InFlightFiles"/>), closed with this object.</summary>
    public Sockets.EngineCopies EngineCopies { get; } = new();

    public void Add(int pid, int fd, IInspectedFile file) => _first.Add((pid, fd, file));

    /// <summary>The file object of an earlier process that is the same open file description, if any.</summary>
    /// <param name="sameProcessToo">compare with <paramref name="pid"/>'s own entries too (the engine's copies of descriptors in flight)</param>
    public IInspectedFile? SharedWith(int pid, int fd, in Native.Stat stat, bool sameProcessToo = false)
    {
        foreach (var (otherPid, otherFd, file) in _first)
        {
            if ((otherPid == pid && !sameProcessToo) || (otherPid == pid && otherFd == fd) || file.File.Device != stat.Device || file.File.Inode != stat.Inode) continue;
            int order = Native.kcmp(otherPid, pid, Native.KCMP_FILE, otherFd, fd);
            if (order < 0) throw new SyscallException("kcmp(KCMP_FILE)", Native.LastErrno, pid, $"fd {otherFd} of process {otherPid} and fd {fd}");
            if (order == 0) return file;
        }
        return null;
    }

    public void Dispose() => EngineCopies.Dispose();
}

/// <summary>FileRecord construction from stat(2), shared by descriptors and file mappings.</summary>
public static class OpenFileRecords
{
    public static FileKind KindOf(uint mode) => (mode & 0xF000) switch
    {
        0x8000 => FileKind.Regular,
        0x4000 => FileKind.Directory,
        0x2000 => FileKind.CharacterDevice,
        0x6000 => FileKind.BlockDevice,
        0x1000 => FileKind.Pipe,
        0xC000 => FileKind.Socket,
        0xA000 => FileKind.Symlink,
        _ => FileKind.Other,
    };

    public static FileRecord Record(int objRef, FileKind kind, in Native.Stat stat, string path, uint openFlags, long position) => new()
    {
        ObjRef = objRef, Kind = kind, OpenFlags = openFlags, Mode = stat.Mode, Position = position,
        Device = stat.Device, Inode = stat.Inode, RawDevice = stat.RawDevice, FileSize = stat.Size,
        MtimeNanoseconds = stat.ModifySeconds * 1_000_000_000 + stat.ModifyNanoseconds,
        PathLength = (uint)Encoding.UTF8.GetByteCount(path),
    };
}
