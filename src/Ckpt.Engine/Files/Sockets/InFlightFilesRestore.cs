using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files.Sockets;

/// <summary>
/// Restore side of descriptors in flight (<see cref="InFlightFiles"/>): a unix pair whose queue (either direction)
/// carries descriptors gets its queues and shutdown state here, once every process of the tree has its descriptors,
/// instead of when the pair is made (<see cref="UnixSocketKind"/>). Each queued message is sent again, oldest first,
/// from the pair's other end, one sendmsg per message (per stream segment), its files in an SCM_RIGHTS control message
/// in their recorded order, so the receiver's recvmsg gets the same bytes, boundaries and working descriptors. A file
/// a process of the tree holds is that very open file description (taken from where it was placed, with pidfd_getfd
/// from another process); a file only in flight is made by its kind in the sending process, after the credentials
/// stage, so it is opened with the restored process's credentials and checked as that kind checks a descriptor
/// (a path file must still be the recorded file; a pipe end is opened from the end the tree holds). The descriptors
/// this stage made in a process are closed once every queue is sent: after that only the queues hold those files.
/// </summary>
public static class InFlightFilesRestore
{
    private const ulong PROT_READ_WRITE = 3, MAP_PRIVATE_ANONYMOUS = 0x22;
    private const long SYS_sendmsg = 46;

    /// <summary>A pair whose queues and shutdown wait for <see cref="SendAll"/>.</summary>
    public static bool Deferred(SocketImage end, SocketImage otherEnd) => end.InFlight.Count > 0 || otherEnd.InFlight.Count > 0;

    /// <summary>
    /// Before any process exists: each file in flight is one its kind can make here. A socket in flight is a descriptor
    /// of some table (the image model allows no other), validated there: not again here, where two sockets carrying
    /// each other would validate each other without end.
    /// </summary>
    public static void Validate(FileImage socket, int fd, RestorePlan plan)
    {
        foreach (FileImage file in socket.Socket!.InFlight.Values.SelectMany(files => files).Distinct().Where(f => f.Socket is null))
            DescriptorKinds.ForRestore(file, fd).Validate(file, fd, plan);
    }

    public static void SendAll(TreeRestoreContext tree)
    {
        var files = tree.Processes.SelectMany(p => p.Plan.Files.Values).DistinctBy(f => f.Record.ObjRef).ToList();
        var deferred = new List<(RestoreContext Process, FileImage Socket, int Fd)>();
        var made = new Dictionary<int, (int Pid, int Fd)>(); // objects only in flight (and their pipes), made by this stage
        foreach (FileImage receiver in files.Where(f => f.Socket is { Record.PeerInode: not 0 }))
        {
            FileImage sender = files.First(f => f.Socket is not null && f.Record.Inode == receiver.Socket!.Record.PeerInode); // the model checked the pair
            if (!Deferred(receiver.Socket!, sender.Socket!)) continue;
            (int pid, int senderFd) = tree.PlacedFiles[sender.Record.ObjRef];
            (int receiverPid, int receiverFd) = tree.PlacedFiles[receiver.Record.ObjRef];
            if (receiverPid != pid)
                throw new InvalidOperationException($"the ends of unix pair fd {receiverFd}/{senderFd} were made in processes {receiverPid} and {pid}");
            RestoreContext process = tree.ByPid[pid];
            SendQueue(tree, process, receiver, senderFd, receiverFd, made);
            deferred.Add((process, receiver, receiverFd));
        }
        // Every queue is in: now the ends may refuse more data.
        foreach ((RestoreContext process, FileImage socket, int fd) in deferred)
            InjectedSocketCalls.Shutdown(process.Leader, fd, fd, socket.Socket!.Record.Shutdown);
        foreach ((int objRef, (int pid, int fd)) in made.DistinctBy(m => m.Value))
            tree.ByPid[pid].Leader.Call($"close of the descriptor made for file objref {objRef} in flight", SYS_close, (ulong)fd);
    }

    private static void SendQueue(TreeRestoreContext tree, RestoreContext process, FileImage receiver, int senderFd, int receiverFd, Dictionary<int, (int Pid, int Fd)> made)
    {
        SocketImage socket = receiver.Socket!;
        if (socket.Queue.Count == 0) return;
        SyscallInjector syscalls = process.Leader;
        ulong size = ((ulong)Math.Max(socket.Queue.Max(m => m.Length), 1) + 4095) & ~4095UL;
        long buffer = syscalls.Call($"mmap of {size} bytes for the queue of fd {receiverFd}", SYS_mmap, 0, size, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS, ulong.MaxValue, 0);
        try
        {
            for (int i = 0; i < socket.Queue.Count; i++)
            {
                var fetched = new List<long>();
                IReadOnlyList<FileImage> carried = socket.InFlight.TryGetValue(i, out var list) ? list : [];
                var fds = carried.Select(file => DescriptorOf(tree, process, file, receiverFd, made, fetched)).ToList();
                ProcessMemory.Write(syscalls.Pid, (ulong)buffer, socket.Queue[i]);
                SendMessage(syscalls, process.Scratch, senderFd, receiverFd, (ulong)buffer, socket.Queue[i].Length, i, fds);
                foreach (long fd in fetched) syscalls.Call($"close of fetched fd {fd} (sent in flight to fd {receiverFd})", SYS_close, (ulong)fd);
            }
        }
        finally { syscalls.Call($"munmap of the queue buffer of fd {receiverFd}", SYS_munmap, (ulong)buffer, size); }
    }

    /// <summary>A descriptor of the sending process for a file in flight: where it was placed or made, else made now by its kind.</summary>
    private static long DescriptorOf(TreeRestoreContext tree, RestoreContext process, FileImage file, int receiverFd, Dictionary<int, (int Pid, int Fd)> made, List<long> fetched)
    {
        SyscallInjector syscalls = process.Leader;
        if (tree.PlacedFiles.TryGetValue(file.Record.ObjRef, out var holder) || made.TryGetValue(file.Record.ObjRef, out holder))
        {
            if (holder.Pid == syscalls.Pid) return holder.Fd;
            long copy = FilesRestore.FetchFrom(syscalls, holder.Pid, holder.Fd, file);
            fetched.Add(copy);
            return copy;
        }
        process.Scratch.Reset();
        IDescriptorKind kind = DescriptorKinds.ForRestore(file, receiverFd);
        long opened = file.Pipe is { } pipe && (tree.PlacedFiles.TryGetValue(pipe.Record.PipeObjRef, out var end) || made.TryGetValue(pipe.Record.PipeObjRef, out end))
            ? PipeKind.OpenOtherEnd(syscalls, process.Scratch, file, receiverFd, end)
            : kind.Open(syscalls, process.Scratch, file, receiverFd, new FileCreation(syscalls, process.Plan, FilesRestore.ParkingFloor(process.Plan), tree.PlacedFiles));
        kind.Placed(syscalls, file, (int)opened);
        made[file.Record.ObjRef] = (syscalls.Pid, (int)opened);
        if (file.Pipe is { } madePipe) made.TryAdd(madePipe.Record.PipeObjRef, (syscalls.Pid, (int)opened));
        return opened;
    }

    /// <summary>
    /// sendmsg of one queued message (its bytes already at <paramref name="data"/> in the task) with its descriptors in
    /// an SCM_RIGHTS control message. MSG_DONTWAIT: a queue that does not fit fails the restore instead of blocking it.
    /// </summary>
    private static void SendMessage(SyscallInjector syscalls, ScratchArea scratch, int senderFd, int receiverFd, ulong data, int length, int index, IReadOnlyList<long> fds)
    {
        scratch.Reset();
        ulong iov = scratch.Put([.. BitConverter.GetBytes(data), .. BitConverter.GetBytes((ulong)length)]);
        ulong control = 0, controlLength = 0;
        if (fds.Count > 0)
        {
            // struct cmsghdr {size_t cmsg_len; int cmsg_level; int cmsg_type;} then the descriptors, padded to 8 (CMSG_SPACE).
            controlLength = 16 + (((ulong)fds.Count * 4 + 7) & ~7UL);
            var bytes = new byte[controlLength];
            BitConverter.TryWriteBytes(bytes.AsSpan(0), 16UL + (ulong)fds.Count * 4);
            BitConverter.TryWriteBytes(bytes.AsSpan(8), Linux.SocketNative.SOL_SOCKET);
            BitConverter.TryWriteBytes(bytes.AsSpan(12), Linux.SocketNative.SCM_RIGHTS);
            for (int i = 0; i < fds.Count; i++) BitConverter.TryWriteBytes(bytes.AsSpan(16 + 4 * i), (int)fds[i]);
            control = scratch.Put(bytes);
        }
        // struct msghdr {void *name; socklen_t namelen; struct iovec *iov; size_t iovlen; void *control; size_t controllen; int flags;}
        var header = new byte[56];
        BitConverter.TryWriteBytes(header.AsSpan(16), iov);
        BitConverter.TryWriteBytes(header.AsSpan(24), 1UL);
        BitConverter.TryWriteBytes(header.AsSpan(32), control);
        BitConverter.TryWriteBytes(header.AsSpan(40), controlLength);
        long sent = syscalls.Call($"sendmsg of queued message {index + 1} ({length} bytes, {fds.Count} descriptors in flight) to fd {receiverFd}", SYS_sendmsg,
            (ulong)senderFd, scratch.Put(header), (ulong)Linux.SocketNative.MSG_DONTWAIT);
        if (sent != length)
            throw new IOException($"fd {receiverFd}: queued message {index + 1} of {length} bytes was sent only {sent} bytes: its socket buffers are smaller here");
    }
}
