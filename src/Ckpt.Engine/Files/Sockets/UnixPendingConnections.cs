using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SocketNative;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files.Sockets;

/// <summary>
/// Unix connections waiting in a listener's accept queue, not yet accepted. connect(2) on a unix stream or
/// seqpacket socket makes the server's end at once (an "embryo" socket with no descriptor and no inode yet)
/// and queues it on the listener; the client is connected to it. unix_diag tells the listener's queue
/// (UNIX_DIAG_ICONS: each embryo's client inode, oldest first), and the client's peer reads as inode 0.
/// Checkpoint: the listener is saved as listening; each client, which must belong to a process of the tree,
/// as a socket in state PendingConnection with its place in the queue (UNIX_PENDING_CONNECTION).
/// Data the client already sent sits in the embryo's receive queue, which no descriptor reaches: it cannot
/// be peeked without accept(2), which would take the connection out of the queue, so such a client is
/// refused (the client's send buffer accounting, sk_wmem_alloc, tells that there is some).
/// Restore: the listener is bound and listening and the client is a fresh socket (bound again to its own
/// name if it had one) after the files stage; then <see cref="ConnectAll"/> connects each listener's clients
/// in their recorded order, each from its own process, so accept(2) returns the connections in that order
/// and SO_PEERCRED names the restored client.
/// </summary>
public static class UnixPendingConnections
{
    /// <summary>Checkpoint, for a listener: every queued connection's client is a socket of the tree, still open.</summary>
    public static void RequireClientsInTree(DescriptorInfo fd, UnixSocketInfo listener, SocketRecord record, string description)
    {
        if (listener.PendingClients.Count != listener.ReceiveQueue)
            throw new IOException($"{description}: unix_diag lists {listener.PendingClients.Count} pending connections, its queue length is {listener.ReceiveQueue}");
        string pending = $"{description} is listening with {listener.ReceiveQueue} connection(s) not yet accepted";
        if (record.Options.HasFlag(SocketOptions.BoundFileDeleted))
            throw new CheckpointRefusedException($"{pending}, and its file was deleted: unsupported (the restored clients could not reach it by name)");
        for (int i = 0; i < listener.PendingClients.Count; i++)
        {
            ulong client = listener.PendingClients[i];
            if (client == 0)
                throw new CheckpointRefusedException($"{pending}: the client of connection {i + 1} has closed its end: unsupported");
            if (!HeldInTree(fd, client))
                throw new CheckpointRefusedException($"{pending}: connection {i + 1} comes from unix socket inode {client}{SocketOwners.Describe(client)}, outside the checkpointed processes: unsupported");
        }
    }

    /// <summary>
    /// Checkpoint, for a connected stream or seqpacket socket whose peer has no inode: the connection it waits
    /// in, or null when no listener holds it (its peer has closed).
    /// </summary>
    public static UnixPendingConnectionRecord? Inspect(DescriptorInfo fd, UnixSocketInfo client, string description)
    {
        if (UnixDiag.ListenerOf(client.Inode, fd.Pid) is not var (listener, position)) return null;
        string name = listener.Name.Length > 0 ? " " + TargetSocket.Format(AF_UNIX, [1, 0, .. listener.Name]) : "";
        string waiting = $"{description} is connected to listening unix socket inode {listener.Inode}{name}, which has not accepted the connection yet";
        if (!HeldInTree(fd, listener.Inode))
            throw new CheckpointRefusedException($"{waiting}; the listener{SocketOwners.Describe(listener.Inode)} is outside the checkpointed processes: unsupported");
        if (client.SendQueue != 0)
            throw new CheckpointRefusedException($"{waiting}, and has sent it data ({client.SendQueue} bytes of buffer): unsupported (the data sits in the connection's server end, which cannot be read before accept(2) takes it out of the queue)");
        if (client.ReceiveQueue != 0 || client.Shutdown != 0)
            throw new CheckpointRefusedException($"{waiting}, and has {client.ReceiveQueue} bytes queued or shutdown state {client.Shutdown}: unsupported");
        return new UnixPendingConnectionRecord { Position = (uint)position, ListenerInode = listener.Inode };
    }

    private static bool HeldInTree(DescriptorInfo fd, ulong inode) => (fd.TreePids ?? [fd.Pid]).Any(pid => SocketOwners.Holds(pid, inode));

    /// <summary>
    /// Restore, once every process has its descriptors: each listener's pending clients connect to it, oldest
    /// first, by the listener's name, each injected into the client's own process.
    /// </summary>
    public static void ConnectAll(TreeRestoreContext tree)
    {
        var files = tree.Processes.SelectMany(p => p.Plan.Files.Values).DistinctBy(f => f.Record.ObjRef).ToList();
        var clients = files.Where(f => f.Socket?.PendingConnection is not null)
            .OrderBy(f => f.Socket!.PendingConnection!.Value.ListenerInode).ThenBy(f => f.Socket!.PendingConnection!.Value.Position);
        foreach (FileImage client in clients)
        {
            UnixPendingConnectionRecord pending = client.Socket!.PendingConnection!.Value;
            SocketImage listener = files.First(f => f.Socket is not null && f.Record.Inode == pending.ListenerInode).Socket!; // the image model checked it is there
            (int pid, int fd) = tree.PlacedFiles[client.Record.ObjRef];
            RestoreContext process = tree.ByPid[pid];
            Connect(process.Leader, process.Scratch, fd, listener, pending.Position);
        }
    }

    private static unsafe void Connect(SyscallInjector syscalls, ScratchArea scratch, int fd, SocketImage listener, uint position)
    {
        SocketRecord record = listener.Record;
        scratch.Reset();
        ulong address = scratch.Put(new ReadOnlySpan<byte>(record.LocalAddress, (int)record.LocalAddressLength));
        syscalls.Call($"connect of fd {fd} to {listener.LocalAddress} (pending connection {position + 1} of that listener)", SYS_connect, (ulong)fd, address, record.LocalAddressLength);
    }
}
