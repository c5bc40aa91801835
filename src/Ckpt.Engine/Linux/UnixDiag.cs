using System.Buffers.Binary;
using static Ckpt.Engine.Linux.SocketNative;

namespace Ckpt.Engine.Linux;

/// <summary>What the kernel's unix_diag tells about one unix socket (by inode).</summary>
/// <param name="State">sk_state: 1 TCP_ESTABLISHED (connected), 7 TCP_CLOSE (unconnected), 10 TCP_LISTEN</param>
/// <param name="Name">sun_path bytes as bound (abstract: a leading 0), empty when unbound</param>
/// <param name="BoundFileInode">inode of the file a path socket was bound to (0: none)</param>
/// <param name="PeerInode">inode of the connected peer (0: none, or a peer already closed)</param>
/// <param name="ReceiveQueue">listening: connections not yet accepted; stream/seqpacket: bytes queued; datagram: the first message's length</param>
/// <param name="SendQueue">listening: the backlog; otherwise bytes sent and not yet read (sk_wmem_alloc)</param>
/// <param name="Shutdown">sk_shutdown: 1 receive, 2 send</param>
public sealed record UnixSocketInfo(ulong Inode, int Type, int State, byte[] Name, ulong BoundFileInode, ulong BoundFileDevice,
    ulong PeerInode, uint ReceiveQueue, uint SendQueue, int Shutdown)
{
    public const int Established = 1, Closed = 7, Listen = 10;
}

/// <summary>
/// A NETLINK_SOCK_DIAG client for unix sockets (net/unix/diag.c, as `ss -x` and CRIU use it): one
/// request by inode with UDIAG_SHOW_NAME|VFS|PEER|RQLEN; the answer carries the shutdown state too.
/// It sees the engine's network namespace, so the caller checks the target is in the same one.
/// </summary>
public static unsafe class UnixDiag
{
    private const int NETLINK_SOCK_DIAG = 4, SOCK_DIAG_BY_FAMILY = 20, NLMSG_ERROR = 2, NLMSG_DONE = 3, NLM_F_REQUEST = 1;
    private const uint UDIAG_SHOW_NAME = 1, UDIAG_SHOW_VFS = 2, UDIAG_SHOW_PEER = 4, UDIAG_SHOW_RQLEN = 0x10;
    private const int UNIX_DIAG_NAME = 0, UNIX_DIAG_VFS = 1, UNIX_DIAG_PEER = 2, UNIX_DIAG_RQLEN = 4, UNIX_DIAG_SHUTDOWN = 6;

    /// <summary>The socket with this inode, or null when the kernel knows no unix socket by it (ENOENT).</summary>
    public static UnixSocketInfo? Find(ulong inode, int pid)
    {
        int netlink = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        if (netlink < 0) throw new SyscallException("socket(AF_NETLINK, NETLINK_SOCK_DIAG)", Native.LastErrno, pid);
        try
        {
            Send(netlink, inode, pid);
            return Receive(netlink, inode, pid);
        }
        finally { Native.close(netlink); }
    }

    private static void Send(int netlink, ulong inode, int pid)
    {
        // nlmsghdr {len, type, flags, seq, pid} + unix_diag_req {family, protocol, pad, states, ino, show, cookie[2]}
        byte* request = stackalloc byte[16 + 24];
        new Span<byte>(request, 40).Clear();
        var span = new Span<byte>(request, 40);
        BinaryPrimitives.WriteUInt32LittleEndian(span, 40);
        BinaryPrimitives.WriteUInt16LittleEndian(span[4..], SOCK_DIAG_BY_FAMILY);
        BinaryPrimitives.WriteUInt16LittleEndian(span[6..], NLM_F_REQUEST);
        BinaryPrimitives.WriteUInt32LittleEndian(span[8..], 1);
        span[16] = AF_UNIX;
        BinaryPrimitives.WriteUInt32LittleEndian(span[20..], uint.MaxValue);           // every state
        BinaryPrimitives.WriteUInt32LittleEndian(span[24..], (uint)inode);
        BinaryPrimitives.WriteUInt32LittleEndian(span[28..], UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN);
        BinaryPrimitives.WriteUInt64LittleEndian(span[32..], ulong.MaxValue);          // INET_DIAG_NOCOOKIE x2
        byte* kernel = stackalloc byte[12]; // sockaddr_nl {AF_NETLINK, pad, pid 0, groups 0}
        new Span<byte>(kernel, 12).Clear();
        kernel[0] = AF_NETLINK;
        if (sendto(netlink, request, 40, 0, kernel, 12) != 40)
            throw new SyscallException("sendto(NETLINK_SOCK_DIAG)", Native.LastErrno, pid);
    }

    private static UnixSocketInfo? Receive(int netlink, ulong inode, int pid)
    {
        const int ENOENT = 2;
        var buffer = new byte[16384];
        fixed (byte* data = buffer)
        {
            nint length = recv(netlink, data, (nuint)buffer.Length, 0);
            if (length < 16) throw new SyscallException("recv(NETLINK_SOCK_DIAG)", length < 0 ? Native.LastErrno : Errno.EIO, pid);
            var message = new ReadOnlySpan<byte>(data, (int)length);
            int messageLength = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(message), (uint)length);
            ushort type = BinaryPrimitives.ReadUInt16LittleEndian(message[4..]);
            if (type == NLMSG_ERROR)
            {
                int error = -BinaryPrimitives.ReadInt32LittleEndian(message[16..]);
                if (error == ENOENT) return null;
                throw new SyscallException($"unix_diag of socket inode {inode}", error, pid);
            }
            if (type != SOCK_DIAG_BY_FAMILY || messageLength < 32)
                throw new IOException($"unix_diag of socket inode {inode}: unexpected netlink message type {type} of {messageLength} bytes");
            return Parse(message[16..messageLength]);
        }
    }

    private static UnixSocketInfo Parse(ReadOnlySpan<byte> body)
    {
        // unix_diag_msg {family, type, state, pad, ino, cookie[2]} then attributes {u16 len, u16 type, data, pad to 4}
        int type = body[1], state = body[2];
        ulong inode = BinaryPrimitives.ReadUInt32LittleEndian(body[4..]);
        byte[] name = [];
        ulong vfsInode = 0, vfsDevice = 0, peer = 0;
        uint receiveQueue = 0, sendQueue = 0;
        int shutdown = 0;
        for (int at = 16; at + 4 <= body.Length;)
        {
            int length = BinaryPrimitives.ReadUInt16LittleEndian(body[at..]);
            int kind = BinaryPrimitives.ReadUInt16LittleEndian(body[(at + 2)..]);
            if (length < 4 || at + length > body.Length) break;
            ReadOnlySpan<byte> value = body.Slice(at + 4, length - 4);
            switch (kind)
            {
                case UNIX_DIAG_NAME: name = value.ToArray(); break;
                case UNIX_DIAG_VFS when value.Length >= 8:
                    vfsInode = BinaryPrimitives.ReadUInt32LittleEndian(value);
                    vfsDevice = BinaryPrimitives.ReadUInt32LittleEndian(value[4..]);
                    break;
                case UNIX_DIAG_PEER when value.Length >= 4: peer = BinaryPrimitives.ReadUInt32LittleEndian(value); break;
                case UNIX_DIAG_RQLEN when value.Length >= 8:
                    receiveQueue = BinaryPrimitives.ReadUInt32LittleEndian(value);
                    sendQueue = BinaryPrimitives.ReadUInt32LittleEndian(value[4..]);
                    break;
                case UNIX_DIAG_SHUTDOWN when value.Length >= 1: shutdown = value[0]; break;
            }
            at += (length + 3) & ~3;
        }
        return new UnixSocketInfo(inode, type, state, name, vfsInode, vfsDevice, peer, receiveQueue, sendQueue, shutdown);
    }
}
