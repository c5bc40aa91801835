using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SocketNative;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files.Sockets;

/// <summary>
/// The datagrams queued on a UDP socket (IPv4 and IPv6), with where each came from.
/// Checkpoint: MSG_PEEK with SO_PEEK_OFF (UDP has it, like unix sockets) on the engine's duplicate reads
/// each datagram whole, with its source address, without consuming it; the socket's peek offset is put
/// back. A restore must send each again from its source address, so the checkpoint decides, before the
/// target is touched, which socket will: a UDP socket of the tree bound to the source (it is restored
/// bound there), or else a temporary socket bound to the source; any other holder of the source port
/// (a socket outside the tree) and a source address that is not this host's (binding it would need
/// IP_FREEBIND/IP_TRANSPARENT, CAP_NET_ADMIN: a restore grants no privilege) are refused by name.
/// Restore, once every process has its descriptors: the datagrams go, in order, from the receiving process
/// (a tree sender is fetched there with pidfd_getfd, a temporary one made there), each waited for in the
/// receive queue before the next; then a connected socket connects (a UDP connect after the datagrams
/// keeps those from other sources), and a datagram the kernel dropped fails the restore.
/// </summary>
public static unsafe class UdpDatagramQueue
{
    private const int MaxDatagram = 65536, EADDRNOTAVAIL = 99;

    /// <summary>Checkpoint: the queue (payloads, and one UDP_DATAGRAM record each, source and sender), oldest first.</summary>
    public static (List<byte[]> Queue, List<UdpDatagramRecord> Datagrams) Inspect(TargetSocket socket, byte[] local, string description, DescriptorInfo fd)
    {
        int original = GetInt(socket.Handle, SOL_SOCKET, SO_PEEK_OFF, socket.Pid, "SO_PEEK_OFF");
        if (original != -1)
            throw new CheckpointRefusedException($"{description} reads with a peek offset (SO_PEEK_OFF {original}): unsupported");
        SetInt(socket.Handle, SOL_SOCKET, SO_PEEK_OFF, 0, socket.Pid, "SO_PEEK_OFF");
        List<(byte[] Payload, byte[] Source)> peeked;
        try { peeked = PeekAll(socket, description); }
        finally { SetInt(socket.Handle, SOL_SOCKET, SO_PEEK_OFF, original, socket.Pid, "SO_PEEK_OFF"); }
        var datagrams = new List<UdpDatagramRecord>();
        for (int i = 0; i < peeked.Count; i++)
        {
            byte[] source = peeked[i].Source;
            var record = new UdpDatagramRecord { SourceAddressLength = (uint)source.Length };
            new Span<byte>(record.SourceAddress, UdpDatagramRecord.MaxSourceAddressLength).Clear();
            source.CopyTo(new Span<byte>(record.SourceAddress, UdpDatagramRecord.MaxSourceAddressLength));
            record.SenderInode = SenderOf(fd, socket.Family, source, local, $"{description}: queued datagram {i + 1} of {peeked.Count}, from {TargetSocket.Format(socket.Family, source)},");
            datagrams.Add(record);
        }
        return (peeked.Select(p => p.Payload).ToList(), datagrams);
    }

    private static List<(byte[], byte[])> PeekAll(TargetSocket socket, string description)
    {
        var queue = new List<(byte[], byte[])>();
        var buffer = new byte[MaxDatagram];
        byte* source = stackalloc byte[UdpDatagramRecord.MaxSourceAddressLength];
        while (true)
        {
            nint length;
            int flags;
            uint sourceLength;
            fixed (byte* data = buffer)
            {
                var iov = new Native.Iovec { Base = (nint)data, Length = (nuint)buffer.Length };
                var message = new MessageHeader { Name = source, NameLength = UdpDatagramRecord.MaxSourceAddressLength, Iov = &iov, IovLength = 1 };
                length = recvmsg(socket.Handle, &message, MSG_PEEK | MSG_DONTWAIT);
                (flags, sourceLength) = (message.Flags, message.NameLength);
            }
            if (length < 0)
            {
                int errno = Native.LastErrno;
                if (errno == Errno.EAGAIN) return queue;
                throw new SyscallException("recvmsg(MSG_PEEK) of the engine's duplicate", errno, socket.Pid, socket.Name);
            }
            if ((flags & MSG_TRUNC) != 0 || sourceLength != (socket.Family == AF_INET ? SocketAddress.InetLength : SocketAddress.Inet6Length))
                throw new IOException($"{description}: a queued datagram peeked truncated ({length} bytes) or with a {sourceLength}-byte source address");
            if (queue.Count == SocketQueueRecord.MaxQueuedMessages)
                throw new CheckpointRefusedException($"{description} has more than {SocketQueueRecord.MaxQueuedMessages} datagrams queued: unsupported");
            queue.Add((buffer.AsSpan(0, (int)length).ToArray(), new ReadOnlySpan<byte>(source, (int)sourceLength).ToArray()));
        }
    }

    /// <summary>The inode of the tree's socket that sends the datagram again, 0 for a temporary socket, or a refusal.</summary>
    private static ulong SenderOf(DescriptorInfo fd, int family, byte[] source, byte[] receiverLocal, string what)
    {
        byte[] ip = UdpTable.AddressOf(source);
        int port = source[2] << 8 | source[3];
        bool mapped = UdpTableEntry.IsMapped(ip);
        var holders = UdpTable.Read().Where(e => e.Port == port && (e.Address.AsSpan().SequenceEqual(ip) || e.Wildcard && (e.Family == AF_INET6 || mapped))).ToList();
        // The restore sends to the receiver's own address, or to the source's when the receiver is bound to every address.
        byte[] destination = UdpTable.AddressOf(receiverLocal);
        bool toSource = new UdpTableEntry(0, family, destination, 0).Wildcard || destination.AsSpan().SequenceEqual(ip);
        IEnumerable<int> tree = fd.TreePids ?? [fd.Pid];
        UdpTableEntry? sender = holders.Where(h => h.Family == family && tree.Any(pid => SocketOwners.Holds(pid, h.Inode)))
            .OrderBy(h => h.Wildcard).FirstOrDefault(h => !h.Wildcard || toSource);
        if (sender is not null) return sender.Inode;
        if (holders.Count > 0)
            throw new CheckpointRefusedException($"{what} cannot be sent again: its source port is bound by UDP socket inode {holders[0].Inode}{SocketOwners.Describe(holders[0].Inode)}, which the restore cannot send from: unsupported");
        RequireBindable(family, source, what);
        return 0;
    }

    // The restore binds a temporary socket there: it must be this host's address and free.
    private static void RequireBindable(int family, byte[] source, string what)
    {
        int probe = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
        if (probe < 0) throw new SyscallException("socket(SOCK_DGRAM) to probe a datagram's source", Native.LastErrno, 0);
        try
        {
            fixed (byte* address = source)
                if (bind(probe, address, (uint)source.Length) == 0) return;
            int errno = Native.LastErrno;
            throw new CheckpointRefusedException(errno == EADDRNOTAVAIL
                ? $"{what} cannot be sent again: its source is not an address of this host (binding it would need IP_FREEBIND or IP_TRANSPARENT, CAP_NET_ADMIN): unsupported"
                : $"{what} cannot be sent again: bind to its source failed with {Errno.Name(errno)}: unsupported");
        }
        finally { Native.close(probe); }
    }

    /// <summary>Restore, once every process has its descriptors: every UDP socket's datagrams, then its connect.</summary>
    public static void SendAll(TreeRestoreContext tree)
    {
        var files = tree.Processes.SelectMany(p => p.Plan.Files.Values).DistinctBy(f => f.Record.ObjRef).ToList();
        foreach (FileImage receiver in files.Where(f => f.Socket is { Datagrams.Count: > 0 }))
        {
            (int pid, int fd) = tree.PlacedFiles[receiver.Record.ObjRef];
            RestoreContext process = tree.ByPid[pid];
            SocketImage socket = receiver.Socket!;
            ulong inode = SocketInode(pid, fd);
            ulong buffer = (ulong)process.Leader.Call($"mmap of 64 KiB for the datagrams of fd {fd}", SYS_mmap, 0, MaxDatagram, 3, 0x22, ulong.MaxValue, 0);
            try
            {
                for (int i = 0; i < socket.Queue.Count; i++)
                    Send(process, tree, files, socket, fd, inode, i, buffer);
            }
            finally { process.Leader.Call($"munmap of the datagram buffer of fd {fd}", SYS_munmap, buffer, MaxDatagram); }
            if (socket.Record.State == SocketState.Connected) InjectedSocketCalls.Connect(process.Leader, process.Scratch, fd, fd, socket);
            if (UdpTable.Find(inode) is { Drops: > 0 } dropped)
                throw new IOException($"fd {fd} of process {pid}: {dropped.Drops} of its {socket.Queue.Count} queued datagrams were dropped (its receive buffer is full here)");
        }
    }

    private static void Send(RestoreContext process, TreeRestoreContext tree, List<FileImage> files, SocketImage socket, int fd, ulong inode, int index, ulong buffer)
    {
        SyscallInjector syscalls = process.Leader;
        UdpDatagramRecord datagram = socket.Datagrams[index];
        string what = $"queued datagram {index + 1} of fd {fd} (from {socket.SourceOf(index)})";
        long sender = datagram.SenderInode != 0 ? FetchSender(syscalls, tree, files, datagram.SenderInode, what) : TemporarySender(syscalls, process.Scratch, socket.Record.Family, datagram, what);
        try
        {
            ulong before = UdpTable.Find(inode)?.Drops ?? 0;
            long queuedBefore = QueueBytes(inode);
            ProcessMemory.Write(syscalls.Pid, buffer, socket.Queue[index]);
            process.Scratch.Reset();
            byte[] destination = Destination(socket, datagram);
            ulong address = process.Scratch.Put(destination);
            long sent = syscalls.Call($"sendto of {what}", SYS_sendto, (ulong)sender, buffer, (ulong)socket.Queue[index].Length, MSG_DONTWAIT, address, (ulong)destination.Length);
            if (sent != socket.Queue[index].Length) throw new IOException($"{what}: sent {sent} of {socket.Queue[index].Length} bytes");
            WaitQueued(inode, queuedBefore, before, what);
        }
        finally { syscalls.Call($"close of the sender of {what}", SYS_close, (ulong)sender); }
    }

    // The tree's socket bound to the source, restored in whichever process holds it: a copy here (pidfd_getfd).
    private static long FetchSender(SyscallInjector syscalls, TreeRestoreContext tree, List<FileImage> files, ulong senderInode, string what)
    {
        FileImage file = files.First(f => f.Socket is not null && f.Record.Inode == senderInode); // the image model checked it is there
        (int holderPid, int holderFd) = tree.PlacedFiles[file.Record.ObjRef];
        long pidfd = syscalls.Call($"pidfd_open({holderPid}) for the sender of {what}", SYS_pidfd_open, (ulong)holderPid, 0);
        try { return syscalls.Call($"pidfd_getfd of fd {holderFd} of process {holderPid}, the sender of {what}", SYS_pidfd_getfd, (ulong)pidfd, (ulong)holderFd, 0); }
        finally { syscalls.CallRaw(SYS_close, (ulong)pidfd); }
    }

    private static long TemporarySender(SyscallInjector syscalls, ScratchArea scratch, SocketFamily family, UdpDatagramRecord datagram, string what)
    {
        long sender = syscalls.Call($"socket(SOCK_DGRAM) to send {what}", SYS_socket, (ulong)family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
        scratch.Reset();
        ulong address = scratch.Put(new ReadOnlySpan<byte>(datagram.SourceAddress, (int)datagram.SourceAddressLength));
        try { syscalls.Call($"bind to the source address to send {what}", SYS_bind, (ulong)sender, address, datagram.SourceAddressLength); }
        catch { syscalls.CallRaw(SYS_close, (ulong)sender); throw; }
        return sender;
    }

    /// <summary>The receiver's own address; when it is bound to every address, the source's IP (a local address) with the receiver's port.</summary>
    private static byte[] Destination(SocketImage socket, UdpDatagramRecord datagram)
    {
        SocketRecord record = socket.Record;
        byte[] local = new ReadOnlySpan<byte>(record.LocalAddress, (int)record.LocalAddressLength).ToArray();
        if (!new UdpTableEntry(0, (int)record.Family, UdpTable.AddressOf(local), 0).Wildcard) return local;
        byte[] destination = new ReadOnlySpan<byte>(datagram.SourceAddress, (int)datagram.SourceAddressLength).ToArray();
        destination[2] = local[2];
        destination[3] = local[3];
        return destination;
    }

    // Loopback delivers through a per-CPU backlog: each datagram is waited for, so the next cannot pass it.
    private static void WaitQueued(ulong inode, long queuedBefore, ulong dropsBefore, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (QueueBytes(inode) == queuedBefore && (UdpTable.Find(inode)?.Drops ?? 0) == dropsBefore)
        {
            if (DateTime.UtcNow > deadline) throw new IOException($"{what} did not arrive in the restored socket's queue within 5 s");
            Thread.Sleep(1);
        }
    }

    private static long QueueBytes(ulong inode) => UdpTable.Find(inode)?.ReceiveQueue ?? -1;

    private static ulong SocketInode(int pid, int fd)
    {
        string link = new FileInfo($"/proc/{pid}/fd/{fd}").LinkTarget ?? "";
        return link.StartsWith("socket:[", StringComparison.Ordinal) ? ulong.Parse(link[8..^1]) : throw new IOException($"fd {fd} of process {pid} is {link}, not the restored socket");
    }
}
