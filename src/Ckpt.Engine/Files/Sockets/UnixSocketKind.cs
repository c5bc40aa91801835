using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SocketNative;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files.Sockets;

/// <summary>
/// AF_UNIX sockets (stream, datagram, seqpacket) of one process. Checkpoint: the engine's duplicate of
/// the socket (<see cref="TargetSocket"/>) for type, address and options, unix_diag for state, peer,
/// backlog, pending connections and shutdown. What is restored:
/// - an unconnected socket, maybe bound to a path or an abstract name, and a listening one (bind +
///   listen with the recorded backlog). A stale socket file at the path is unlinked first, never
///   another kind of file; a socket whose file had been unlinked is bound and its file unlinked again;
/// - both ends of a connected pair held by the process (socketpair(2), each end bound again to its own
///   name if it had one), with the data queued in each direction (<see cref="SocketQueuePeek"/>: read
///   without consuming it), then the shutdown state.
/// - a listening socket with connections not yet accepted whose clients are sockets of the tree, and those
///   clients (<see cref="UnixPendingConnections"/>).
/// Refused by name: a connection to a socket outside the process (naming the peer and who holds it),
/// a connection accepted from a listener (its address is the listener's too), a pending connection whose
/// client is outside the tree or has sent data, datagrams queued on a socket that is not a pair's end, descriptors in
/// flight (SCM_RIGHTS) that <see cref="InFlightFiles"/> cannot save, a path relative to a directory.
/// Descriptors in flight in a pair's queue are saved with the message that carries them (<see cref="InFlightFiles"/>);
/// such a pair's queues and shutdown state are restored once every process has its descriptors (<see cref="InFlightFilesRestore"/>).
/// </summary>
public sealed class UnixSocketKind : IDescriptorKind
{
    public bool Matches(DescriptorInfo fd) => TargetSocket.FamilyOf(fd) == AF_UNIX;

    public IInspectedFile Inspect(DescriptorInfo fd, int objRef)
    {
        using TargetSocket socket = TargetSocket.Open(fd);
        socket.RequireSameNetworkNamespace();
        if (socket.Type is not (SOCK_STREAM or SOCK_DGRAM or SOCK_SEQPACKET))
            throw new CheckpointRefusedException($"{socket.Name} is a unix socket of type {socket.Type}: unsupported");
        UnixSocketInfo info = UnixDiag.Find(fd.Stat.Inode, fd.Pid)
            ?? throw new CheckpointRefusedException($"{socket.Name}: unix_diag does not know socket inode {fd.Stat.Inode}");
        var record = new SocketRecord
        {
            Family = SocketFamily.Unix, SocketType = (SocketType)socket.Type, Shutdown = (SocketShutdown)(info.Shutdown & 3),
            PeekOffset = GetInt(socket.Handle, SOL_SOCKET, SO_PEEK_OFF, fd.Pid, "SO_PEEK_OFF"),
        };
        byte[] local = socket.LocalAddress();
        string description = $"{socket.Name} (unix {record.SocketType.ToString().ToLowerInvariant()} socket inode {fd.Stat.Inode}{(local.Length > 2 ? " " + TargetSocket.Format(AF_UNIX, local) : "")})";
        if (local.Length > 2) record = Bound(record, local, info, description);
        List<byte[]> queue = [];
        List<InFlightFiles.Message> inFlight = [];
        UnixPendingConnectionRecord? pending = null;
        if (info.State == UnixSocketInfo.Listen)
        {
            if (info.ReceiveQueue > 0) UnixPendingConnections.RequireClientsInTree(fd, info, record, description);
            (record.State, record.Backlog) = (SocketState.Listening, (int)info.SendQueue);
        }
        else if (info.PeerInode == 0 && info.State == UnixSocketInfo.Established && record.SocketType != SocketType.Datagram
                 && UnixPendingConnections.Inspect(fd, info, description) is { } waiting)
        {
            (record.State, pending) = (SocketState.PendingConnection, waiting);
        }
        else if (info.PeerInode != 0 || info.State == UnixSocketInfo.Established)
        {
            RequirePairEnd(fd, info, local, description);
            (record.State, record.PeerInode) = (SocketState.Connected, info.PeerInode);
            if (!fd.DryRun)
            {
                queue = SocketQueuePeek.Read(socket, record.Shutdown.HasFlag(SocketShutdown.Receive), fd.InFlight, out inFlight);
                if (record.SocketType != SocketType.Datagram && (ulong)queue.Sum(m => (long)m.Length) != info.ReceiveQueue)
                    throw new IOException($"{description}: peeked {queue.Sum(m => (long)m.Length)} queued bytes, unix_diag counts {info.ReceiveQueue}");
            }
        }
        else
        {
            if (info.State != UnixSocketInfo.Closed)
                throw new CheckpointRefusedException($"{description} is in state {info.State}: unsupported");
            record.State = SocketState.Unconnected;
            if (record.SocketType == SocketType.Datagram && !fd.DryRun && SocketQueuePeek.Read(socket, receiveShutdown: true).Count > 0)
                throw new CheckpointRefusedException($"{description} has datagrams from other sockets queued: unsupported (their senders' addresses are not restored)");
        }
        record = SocketOptionValues.Read(socket.Handle, AF_UNIX, 0, fd.Pid, record);
        return socket.Inspected(objRef, FileKind.UnixSocket, record, queue) with { Pending = pending, InFlight = inFlight };
    }

    /// <summary>The bound address; a path must be absolute, and its file is checked to still be this socket's.</summary>
    private static SocketRecord Bound(SocketRecord record, byte[] local, UnixSocketInfo info, string description)
    {
        TargetSocket.SetAddress(ref record, peer: false, local);
        if (local[2] == 0) return record; // abstract
        if (local[2] != (byte)'/')
            throw new CheckpointRefusedException($"{description} is bound to a path relative to the directory it was bound in: unsupported");
        string path = TargetSocket.Format(AF_UNIX, local);
        bool present = Native.stat(path, out Native.Stat stat) == 0 && stat.Inode == info.BoundFileInode && (stat.Mode & 0xF000) == 0xC000;
        if (!present) record.Options |= SocketOptions.BoundFileDeleted;
        else record.BoundFileMode = stat.Mode & 0xFFF;
        return record;
    }

    /// <summary>
    /// A connected socket is restored only as one end of a pair both of whose ends the process holds
    /// (socketpair, or a connect between two of its sockets), neither carrying an address it shares
    /// with another socket (an accepted connection has its listener's: binding it again would fail).
    /// An end's own name (an explicit bind, or the abstract name SO_PASSCRED autobinds) is bound again.
    /// </summary>
    private static void RequirePairEnd(DescriptorInfo fd, UnixSocketInfo info, byte[] local, string description)
    {
        if (info.PeerInode == 0)
            throw new CheckpointRefusedException($"{description} is connected to a socket that was closed: unsupported");
        UnixSocketInfo? peer = UnixDiag.Find(info.PeerInode, fd.Pid);
        string peerName = peer is { Name.Length: > 0 } ? TargetSocket.Format(AF_UNIX, [1, 0, .. peer.Name]) : "";
        string peerText = peerName.Length > 0 ? " " + peerName : "";
        if (!SocketOwners.Holds(fd.Pid, info.PeerInode))
            throw new CheckpointRefusedException($"{description} is connected to unix socket inode {info.PeerInode}{peerText}{SocketOwners.Describe(info.PeerInode)}, outside the checkpointed process: unsupported");
        if (peer is null || peer.PeerInode != info.Inode)
            throw new CheckpointRefusedException($"{description} is connected to socket inode {info.PeerInode}{peerText} of the same process, which is not connected back to it: unsupported");
        foreach (string name in new[] { local.Length > 2 ? TargetSocket.Format(AF_UNIX, local) : "", peerName })
            if (name.Length > 0 && SocketsNamed(name) > 1)
                throw new CheckpointRefusedException($"{description} is connected to socket inode {info.PeerInode}{peerText} of the same process, and {name} is the address of more than one socket (a connection accepted from a listener): unsupported");
    }

    /// <summary>How many unix sockets of this network namespace have this address (/proc/net/unix writes abstract names with '@').</summary>
    private static int SocketsNamed(string name) =>
        File.ReadLines("/proc/net/unix").Skip(1).Count(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries) is { Length: >= 8 } fields && fields[7] == name);

    public bool Restores(FileImage file) => file.Record.Kind == FileKind.UnixSocket;

    public void Validate(FileImage file, int fd)
    {
        SocketImage socket = file.Socket ?? throw new RestoreRefusedException($"fd {fd} is a unix socket without its SOCKET record");
        if (socket.Record.LocalAddressLength <= 2 || socket.LocalAddress.StartsWith('@')) return;
        string path = socket.LocalAddress;
        string? directory = Path.GetDirectoryName(path);
        if (directory is null || !Directory.Exists(directory))
            throw new RestoreRefusedException($"fd {fd}: unix socket {path} cannot be bound here: its directory does not exist");
        bool exists = lstat(path, out Native.Stat stat) == 0;
        if (exists && (stat.Mode & 0xF000) != 0xC000)
            throw new RestoreRefusedException($"fd {fd}: unix socket {path} cannot be bound here: {path} is a file that is not a socket, which is never removed");
        if (exists && socket.Record.Options.HasFlag(SocketOptions.BoundFileDeleted))
            throw new RestoreRefusedException($"fd {fd}: unix socket {path} had its file deleted at checkpoint, and a socket file of someone else is there now: refused");
        if (exists && SocketsNamed(path) > 0)
            throw new RestoreRefusedException($"fd {fd}: unix socket {path} is in use by a running socket (/proc/net/unix): refused");
    }

    public void Validate(FileImage file, int fd, RestorePlan plan)
    {
        Validate(file, fd);
        InFlightFilesRestore.Validate(file, fd, plan);
    }

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd) =>
        throw new InvalidOperationException("a unix socket is opened with its descriptor table's FileCreation");

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd, FileCreation creation)
    {
        SocketImage socket = file.Socket!;
        if (socket.Record.PeerInode != 0) return OpenPair(syscalls, scratch, file, fd, creation);
        long created = InjectedSocketCalls.Socket(syscalls, socket.Record, fd);
        SocketOptionValues.Apply(syscalls, scratch, created, fd, socket.Record);
        if (socket.Record.LocalAddressLength > 2) BindUnix(syscalls, scratch, created, fd, socket);
        if (socket.Record.State == SocketState.Listening) InjectedSocketCalls.Listen(syscalls, created, fd, socket.Record);
        // A pending connection's client connects once every listener of the tree exists (UnixPendingConnections.ConnectAll).
        InjectedSocketCalls.PeekOffset(syscalls, scratch, created, fd, socket.Record);
        InjectedSocketCalls.Shutdown(syscalls, created, fd, socket.Record.Shutdown);
        InjectedSocketCalls.StatusFlags(syscalls, created, fd, file.Record);
        return created;
    }

    private static void BindUnix(SyscallInjector syscalls, ScratchArea scratch, long created, int fd, SocketImage socket)
    {
        string name = socket.LocalAddress;
        bool path = !name.StartsWith('@');
        if (path && lstat(name, out Native.Stat stat) == 0 && (stat.Mode & 0xF000) == 0xC000) // validated: a stale socket file
        {
            scratch.Reset();
            syscalls.Call($"unlink of the stale socket file {name} for fd {fd}", SYS_unlink, scratch.PutString(name));
        }
        InjectedSocketCalls.Bind(syscalls, scratch, created, fd, socket);
        if (!path) return;
        scratch.Reset();
        if (socket.Record.Options.HasFlag(SocketOptions.BoundFileDeleted))
            syscalls.Call($"unlink of {name} (deleted at checkpoint) for fd {fd}", SYS_unlink, scratch.PutString(name));
        else
            syscalls.Call($"chmod({name}, 0{Convert.ToString(socket.Record.BoundFileMode, 8)}) for fd {fd}", SYS_chmod, scratch.PutString(name), socket.Record.BoundFileMode);
    }

    /// <summary>Both ends at once: this one is returned, the other parked until its descriptor is placed.</summary>
    private static long OpenPair(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd, FileCreation creation)
    {
        SocketImage mine = file.Socket!;
        FileImage peerFile = creation.Files.Values.First(f => f.Socket is not null && f.Record.Inode == mine.Record.PeerInode);
        SocketImage peer = peerFile.Socket!;
        scratch.Reset();
        ulong ends = scratch.Reserve(8);
        syscalls.Call($"socketpair(AF_UNIX, {mine.Record.SocketType}) for fd {fd}", SYS_socketpair, AF_UNIX, (ulong)mine.Record.SocketType, 0, ends);
        byte[] fds = ProcessMemory.ReadExact(syscalls.Pid, ends, 8);
        long here = BitConverter.ToInt32(fds, 0), there = BitConverter.ToInt32(fds, 4);
        SocketOptionValues.Apply(syscalls, scratch, here, fd, mine.Record);
        SocketOptionValues.Apply(syscalls, scratch, there, fd, peer.Record);
        if (mine.Record.LocalAddressLength > 2) BindUnix(syscalls, scratch, here, fd, mine);
        if (peer.Record.LocalAddressLength > 2) BindUnix(syscalls, scratch, there, fd, peer);
        // Queues that carry descriptors in flight wait until every file of the tree exists, and the shutdown with them.
        bool deferred = InFlightFilesRestore.Deferred(mine, peer);
        if (!deferred)
        {
            InjectedSocketCalls.SendQueue(syscalls, there, fd, mine.Queue);
            InjectedSocketCalls.SendQueue(syscalls, here, fd, peer.Queue);
        }
        foreach ((long end, SocketImage socket, FileImage endFile) in new[] { (here, mine, file), (there, peer, peerFile) })
        {
            InjectedSocketCalls.PeekOffset(syscalls, scratch, end, fd, socket.Record);
            if (!deferred) InjectedSocketCalls.Shutdown(syscalls, end, fd, socket.Record.Shutdown);
            InjectedSocketCalls.StatusFlags(syscalls, end, fd, endFile.Record);
        }
        creation.Park(peer.Record.ObjRef, there);
        return here;
    }
}
