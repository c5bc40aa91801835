using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SocketNative;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files.Sockets;

/// <summary>Restore side: the socket calls injected into the new task, each failure naming the call and the fd.</summary>
public static class InjectedSocketCalls
{
    private const ulong F_GETFL = 3, F_SETFL = 4, O_NONBLOCK = 0x800;
    private const ulong PROT_READ_WRITE = 3, MAP_PRIVATE_ANONYMOUS = 0x22;

    public static long Socket(SyscallInjector syscalls, SocketRecord socket, int fd) =>
        syscalls.Call($"socket({socket.Family}, {socket.SocketType}, {socket.Protocol}) for fd {fd}", SYS_socket, (ulong)socket.Family, (ulong)socket.SocketType, (ulong)socket.Protocol);

    public static unsafe void Bind(SyscallInjector syscalls, ScratchArea scratch, long socketFd, int fd, SocketImage socket)
    {
        SocketRecord record = socket.Record;
        scratch.Reset();
        ulong address = scratch.Put(new ReadOnlySpan<byte>(record.LocalAddress, (int)record.LocalAddressLength));
        syscalls.Call($"bind of fd {fd} to {socket.LocalAddress}", SYS_bind, (ulong)socketFd, address, record.LocalAddressLength);
    }

    public static unsafe void Connect(SyscallInjector syscalls, ScratchArea scratch, long socketFd, int fd, SocketImage socket)
    {
        SocketRecord record = socket.Record;
        scratch.Reset();
        ulong address = scratch.Put(new ReadOnlySpan<byte>(record.PeerAddress, (int)record.PeerAddressLength));
        syscalls.Call($"connect of fd {fd} to {socket.PeerAddress}", SYS_connect, (ulong)socketFd, address, record.PeerAddressLength);
    }

    public static void Listen(SyscallInjector syscalls, long socketFd, int fd, SocketRecord socket) =>
        syscalls.Call($"listen({socket.Backlog}) of fd {fd}", SYS_listen, (ulong)socketFd, (ulong)socket.Backlog);

    public static void Shutdown(SyscallInjector syscalls, long socketFd, int fd, SocketShutdown shutdown)
    {
        if (shutdown.HasFlag(SocketShutdown.Send)) syscalls.Call($"shutdown(SHUT_WR) of fd {fd}", SYS_shutdown, (ulong)socketFd, SHUT_WR);
        if (shutdown.HasFlag(SocketShutdown.Receive)) syscalls.Call($"shutdown(SHUT_RD) of fd {fd}", SYS_shutdown, (ulong)socketFd, SHUT_RD);
    }

    /// <summary>O_NONBLOCK as the FILE record has it (a socket is created blocking).</summary>
    public static void StatusFlags(SyscallInjector syscalls, long socketFd, int fd, FileRecord file)
    {
        if ((file.OpenFlags & O_NONBLOCK) == 0) return;
        long status = syscalls.Call($"fcntl(F_GETFL) of fd {fd}", SYS_fcntl, (ulong)socketFd, F_GETFL);
        syscalls.Call($"fcntl(F_SETFL, O_NONBLOCK) of fd {fd}", SYS_fcntl, (ulong)socketFd, F_SETFL, (ulong)status | O_NONBLOCK);
    }

    /// <summary>
    /// Sends <paramref name="queue"/> from <paramref name="senderFd"/> so that it lands, in order, in the
    /// receive queue of the socket at its other end: one send per message (boundaries kept), all of a
    /// stream chunk. MSG_DONTWAIT: a queue that does not fit fails the restore instead of blocking it.
    /// The bytes go through an anonymous mapping of the task, removed afterwards.
    /// </summary>
    public static void SendQueue(SyscallInjector syscalls, long senderFd, int receiverFd, IReadOnlyList<byte[]> queue)
    {
        if (queue.Count == 0) return;
        ulong size = (ulong)Math.Max(queue.Max(m => m.Length), 1);
        size = (size + 4095) & ~4095UL;
        long buffer = syscalls.Call($"mmap of {size} bytes for the queue of fd {receiverFd}", SYS_mmap, 0, size, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS, ulong.MaxValue, 0);
        try
        {
            int index = 0;
            foreach (byte[] message in queue)
            {
                index++;
                ProcessMemory.Write(syscalls.Pid, (ulong)buffer, message);
                long sent = syscalls.Call($"send of queued message {index} ({message.Length} bytes) to fd {receiverFd}", SYS_sendto, (ulong)senderFd, (ulong)buffer, (ulong)message.Length, MSG_DONTWAIT, 0, 0);
                if (sent != message.Length)
                    throw new IOException($"fd {receiverFd}: queued message {index} of {message.Length} bytes was sent only {sent} bytes: its socket buffers are smaller here");
            }
        }
        finally { syscalls.Call($"munmap of the queue buffer of fd {receiverFd}", SYS_munmap, (ulong)buffer, size); }
    }

    /// <summary>SO_PEEK_OFF as recorded (-1, off, is a fresh socket's).</summary>
    public static void PeekOffset(SyscallInjector syscalls, ScratchArea scratch, long socketFd, int fd, SocketRecord socket)
    {
        if (socket.PeekOffset == -1) return;
        scratch.Reset();
        syscalls.Call($"setsockopt(SO_PEEK_OFF, {socket.PeekOffset}) of fd {fd}", SYS_setsockopt, (ulong)socketFd, SOL_SOCKET, SO_PEEK_OFF, scratch.PutStruct(socket.PeekOffset), sizeof(int));
    }
}
