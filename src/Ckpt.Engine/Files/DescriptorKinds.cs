using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Files;

/// <summary>What /proc says about one descriptor of the target: what the kinds match and inspect.</summary>
public sealed record DescriptorInfo(int Pid, int Fd, string Target, Native.Stat Stat, ProcFdInfo FdInfo)
{
    /// <summary>The kind st_mode gives; anonymous inodes (eventfd, epoll, ...) are <see cref="FileKind.Other"/>.</summary>
    public FileKind StatKind => Target.StartsWith("anon_inode:", StringComparison.Ordinal) ? FileKind.Other : OpenFileRecords.KindOf(Stat.Mode);

    /// <summary>The checkpoint's object table, for objects a file object refers to (a pipe end's pipe).</summary>
    public ObjectTable? Objects { get; init; }

    /// <summary>Every live process of the checkpointed tree (this one included), for objects with a
    /// part in another process (a pipe's other end); null when only this process is checkpointed.</summary>
    public IReadOnlyCollection<int>? TreePids { get; init; }

    /// <summary>
    /// The audit's pass before the freeze: a kind refuses what it would refuse, but reads nothing it can
    /// read only once. A socket's queue is one: peeking marks a zero-length datagram as peeked
    /// (skb_set_peeked), and every later peek at an offset (SO_PEEK_OFF) skips it, so a second pass
    /// would lose it.
    /// </summary>
    public bool DryRun { get; init; }
    /// <summary>How a socket's queue saves the descriptors in flight it holds (SCM_RIGHTS); null where there is no table to compare them with.</summary>
    public Sockets.InFlightFiles? InFlight { get; init; }
    /// <summary>Established TCP connections: saved with TCP_REPAIR (--tcp-established) and held in repair mode until the checkpoint ends; null: refused.</summary>
    public Sockets.TcpConnectionCheckpoint? TcpConnections { get; init; }
}

/// <summary>A file object inspected at checkpoint time, ready to be written on its first use.</summary>
public interface IInspectedFile
{
    FileRecord File { get; }

    /// <summary>The FILE record (with its path) and whatever records its kind puts after it.</summary>
    void Write(ImageWriter writer);
}

/// <summary>
/// One kind of descriptor (CRIU's file_desc_ops): how a checkpoint recognises and inspects it, and
/// how a restore recognises, validates and recreates it. Sharing (dup'ed descriptors are one file
/// object, found by kcmp), placement at the recorded fd number and close-on-exec are the
/// orchestration's (<see cref="FilesCheckpoint"/>, <see cref="FilesRestore"/>), which never names a kind.
/// </summary>
public interface IDescriptorKind
{
    /// <summary>Checkpoint: is this descriptor of the target one of this kind.</summary>
    bool Matches(DescriptorInfo fd);

    /// <summary>Checkpoint, before anything is written: read the object's state, or refuse (<see cref="CheckpointRefusedException"/>).</summary>
    IInspectedFile Inspect(DescriptorInfo fd, int objRef);

    /// <summary>
    /// Checkpoint: whether a file of this kind that travels in flight in a unix socket's queue (SCM_RIGHTS), held by no
    /// descriptor of the tree, can be inspected from the engine's copy of it (<see cref="Sockets.InFlightFiles"/>) and
    /// opened on its own by a restore: only when its whole state is the open file description's.
    /// </summary>
    bool SavedInFlight => false;

    /// <summary>Restore: is this file object of the image one of this kind.</summary>
    bool Restores(FileImage file);

    /// <summary>Restore, before any process exists: refuse (<see cref="RestoreRefusedException"/>) what cannot be recreated here.</summary>
    void Validate(FileImage file, int fd);

    /// <summary>As <see cref="Validate(FileImage, int)"/>, for kinds that check the file against the image's credentials.</summary>
    void Validate(FileImage file, int fd, RestorePlan plan) => Validate(file, fd);

    /// <summary>Restore, injected into the new task: create the object; returns the descriptor it got (any number).</summary>
    long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd);

    /// <summary>
    /// Restore, injected: as <see cref="Open(SyscallInjector, ScratchArea, FileImage, int)"/>, for kinds that
    /// look at the table's other file objects or make them too (a socketpair's ends: <see cref="FileCreation.Park"/>).
    /// </summary>
    long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd, FileCreation creation) => Open(syscalls, scratch, file, fd);

    /// <summary>Restore, once the object is at its recorded fd: state that belongs to the open file (a position).</summary>
    void Placed(SyscallInjector syscalls, FileImage file, int fd) { }

    /// <summary>Restore, once every descriptor is placed: state that refers to other descriptors (an epoll's interest list).</summary>
    void Finish(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd) { }

    /// <summary>The descriptors whose <see cref="Finish"/> must come before this object's (the epolls an epoll watches).</summary>
    IEnumerable<int> FinishAfter(FileImage file) => [];
}

/// <summary>The table of descriptor kinds: adding a kind means one file under Files/ and one line here.</summary>
public static class DescriptorKinds
{
    public static readonly IReadOnlyList<IDescriptorKind> All =
    [
        new Terminals.PtyMasterKind(), new Terminals.PtySlaveKind(), new Terminals.OutsideTerminalKind(), // before PathFileKind: terminals are character devices
        new PathFileKind(), new EventfdKind(), new PipeKind(), new EpollKind(), new SignalfdKind(), new TimerfdKind(),
        new InotifyKind(), new MemfdKind(), new DeletedFileKind(), new Sockets.UnixSocketKind(), new Sockets.InetSocketKind(),
        new DeletedFifoKind(), // before FifoKind: a FIFO with no name left
        new FifoKind(),
    ];

    private const string Supported = "files (deleted ones too), directories, devices, memfds, pipes, named pipes (FIFOs), eventfds, epolls, signalfds, timerfds, inotify instances, unix sockets and TCP/UDP sockets";

    public static IDescriptorKind ForCheckpoint(DescriptorInfo fd) =>
        All.FirstOrDefault(k => k.Matches(fd))
        ?? throw new CheckpointRefusedException(fd.Target == "anon_inode:[userfaultfd]"
            // A lazy restore's page server is still filling the process (Memory/LazyMemory.cs): its pages are not all there.
            ? $"fd {fd.Fd} of process {fd.Pid} is a userfaultfd: a lazy restore is still filling this process's memory (or the process uses userfaultfd itself); checkpoint it once the page server has exited"
            : $"fd {fd.Fd} of process {fd.Pid} is a {Describe(fd.StatKind)} ({fd.Target}): only {Supported} are supported");

    public static IDescriptorKind ForRestore(FileImage file, int fd) =>
        All.FirstOrDefault(k => k.Restores(file))
        ?? throw new RestoreRefusedException($"fd {fd} is a {file.Record.Kind} ({file.Path}): only {Supported} are restored");

    private static string Describe(FileKind kind) => kind switch
    {
        FileKind.Pipe => "named pipe (FIFO)",
        FileKind.Socket => "socket",
        FileKind.Other => "special file (inotify, fanotify, userfaultfd or similar)",
        _ => kind.ToString().ToLowerInvariant(),
    };
}
