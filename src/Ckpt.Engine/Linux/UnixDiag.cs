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
/// <param name="PendingClients">listening: for each connection in the accept queue, oldest first, the inode of
/// its client socket (the peer of the kernel's not yet accepted "embryo" socket; 0: a client already closed)</param>
public sealed record UnixSocketInfo(ulong Inode, int Type, int State, byte[] Name, ulong BoundFileInode, ulong BoundFileDevice,
    ulong PeerInode, uint ReceiveQueue, uint SendQueue, int Shutdown, IReadOnlyList<ulong> PendingClients)
{
    public const int Established = 1, Closed = 7, Listen = 10;
}

/// <summary>
/// unix_diag (net/unix/diag.c, as `ss -x` and CRIU use it) through <see cref="SockDiag"/>: one request
/// by inode with UDIAG_SHOW_NAME|VFS|PEER|RQLEN|ICONS; the answer carries the shutdown state too.
/// A client whose connection waits in a listener's accept queue is connected to the kernel's "embryo"
/// socket, which has no inode yet: its peer reads as 0, and only the listener's UNIX_DIAG_ICONS (the
/// embryos' peers, oldest first) tells which listener it waits on (<see cref="ListenerOf"/>).
/// </summary>
public static class UnixDiag
{
    private const uint UDIAG_SHOW_NAME = 1, UDIAG_SHOW_VFS = 2, UDIAG_SHOW_PEER = 4, UDIAG_SHOW_ICONS = 8, UDIAG_SHOW_RQLEN = 0x10;
    private const int UNIX_DIAG_NAME = 0, UNIX_DIAG_VFS = 1, UNIX_DIAG_PEER = 2, UNIX_DIAG_ICONS = 3, UNIX_DIAG_RQLEN = 4, UNIX_DIAG_SHUTDOWN = 6;
    private const uint Everything = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN;

    /// <summary>The socket with this inode, or null when the kernel knows no unix socket by it (ENOENT).</summary>
    public static UnixSocketInfo? Find(ulong inode, int pid)
    {
        byte[]? body = SockDiag.Query(Request(uint.MaxValue, inode), pid, $"unix socket inode {inode}");
        return body is null ? null : Parse(body);
    }

    /// <summary>The listening socket (of this network namespace) whose accept queue holds a connection of client <paramref name="clientInode"/>, and its place there.</summary>
    public static (UnixSocketInfo Listener, int Position)? ListenerOf(ulong clientInode, int pid)
    {
        foreach (byte[] body in SockDiag.Dump(Request(1u << UnixSocketInfo.Listen, 0), pid, "listening unix sockets"))
        {
            UnixSocketInfo listener = Parse(body);
            int position = listener.PendingClients.ToList().IndexOf(clientInode);
            if (position >= 0) return (listener, position);
        }
        return null;
    }

    // unix_diag_req {family, protocol, pad, states, ino, show, cookie[2]}
    private static byte[] Request(uint states, ulong inode)
    {
        var request = new byte[24];
        request[0] = AF_UNIX;
        BinaryPrimitives.WriteUInt32LittleEndian(request.AsSpan(4), states);
        BinaryPrimitives.WriteUInt32LittleEndian(request.AsSpan(8), (uint)inode);
        BinaryPrimitives.WriteUInt32LittleEndian(request.AsSpan(12), Everything);
        BinaryPrimitives.WriteUInt64LittleEndian(request.AsSpan(16), ulong.MaxValue);          // INET_DIAG_NOCOOKIE x2
        return request;
    }

    private static UnixSocketInfo Parse(byte[] body)
    {
        // unix_diag_msg {family, type, state, pad, ino, cookie[2]} then attributes
        int type = body[1], state = body[2];
        ulong inode = BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(4));
        byte[] name = [];
        ulong vfsInode = 0, vfsDevice = 0, peer = 0;
        uint receiveQueue = 0, sendQueue = 0;
        int shutdown = 0;
        var pending = new List<ulong>();
        foreach ((int kind, byte[] value) in SockDiag.Attributes(body, 16))
        {
            switch (kind)
            {
                case UNIX_DIAG_NAME: name = value; break;
                case UNIX_DIAG_VFS when value.Length >= 8:
                    vfsInode = BinaryPrimitives.ReadUInt32LittleEndian(value);
                    vfsDevice = BinaryPrimitives.ReadUInt32LittleEndian(value.AsSpan(4));
                    break;
                case UNIX_DIAG_PEER when value.Length >= 4: peer = BinaryPrimitives.ReadUInt32LittleEndian(value); break;
                case UNIX_DIAG_RQLEN when value.Length >= 8:
                    receiveQueue = BinaryPrimitives.ReadUInt32LittleEndian(value);
                    sendQueue = BinaryPrimitives.ReadUInt32LittleEndian(value.AsSpan(4));
                    break;
                case UNIX_DIAG_SHUTDOWN when value.Length >= 1: shutdown = value[0]; break;
                case UNIX_DIAG_ICONS:
                    for (int at = 0; at + 4 <= value.Length; at += 4) pending.Add(BinaryPrimitives.ReadUInt32LittleEndian(value.AsSpan(at)));
                    break;
            }
        }
        return new UnixSocketInfo(inode, type, state, name, vfsInode, vfsDevice, peer, receiveQueue, sendQueue, shutdown, pending);
    }
}
