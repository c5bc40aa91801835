namespace Ckpt.Image.Records;

/// <summary>SocketRecord.Family: the address families CkptPS restores (values of AF_*).</summary>
public enum SocketFamily : ushort
{
    Unix = 1,       // AF_UNIX
    Inet = 2,       // AF_INET
    Inet6 = 10,     // AF_INET6
}

/// <summary>SocketRecord.Type: SOCK_* (without SOCK_NONBLOCK/SOCK_CLOEXEC, which are the FILE's and the descriptor's).</summary>
public enum SocketType : ushort
{
    Stream = 1,     // SOCK_STREAM
    Datagram = 2,   // SOCK_DGRAM
    SeqPacket = 5,  // SOCK_SEQPACKET
}

/// <summary>SocketRecord.State: what the restore has to make of a fresh socket.</summary>
public enum SocketState : uint
{
    Unconnected = 1,    // created, maybe bound (LocalAddress), neither listening nor connected
    Listening = 2,      // bound and listen(Backlog)
    Connected = 3,      // unix: one end of a pair in the image (PeerInode); UDP: connect(PeerAddress)
    Established = 4,    // TCP: a connection to PeerAddress, restored with TCP_REPAIR; TCP_CONNECTION follows
    PendingConnection = 5, // unix stream/seqpacket: connected to a listener of the image, not yet accepted; UNIX_PENDING_CONNECTION follows
}

/// <summary>SocketRecord.Shutdown: sk_shutdown as sock_diag reports it.</summary>
[Flags]
public enum SocketShutdown : uint
{
    None = 0,
    Receive = 1,    // RCV_SHUTDOWN: shutdown(SHUT_RD) here, or the peer's SHUT_WR
    Send = 2,       // SEND_SHUTDOWN: shutdown(SHUT_WR) here, or the peer's SHUT_RD
}

/// <summary>SocketRecord.Options: the boolean socket options a program sets, and facts about the address.</summary>
[Flags]
public enum SocketOptions : uint
{
    None = 0,
    ReuseAddress = 1 << 0,      // SO_REUSEADDR
    ReusePort = 1 << 1,         // SO_REUSEPORT
    KeepAlive = 1 << 2,         // SO_KEEPALIVE (KeepIdle/KeepInterval/KeepCount: TCP_KEEP*)
    PassCredentials = 1 << 3,   // SO_PASSCRED
    NoDelay = 1 << 4,           // TCP_NODELAY
    V6Only = 1 << 5,            // IPV6_V6ONLY
    BoundFileDeleted = 1 << 6,  // unix: the file the socket was bound to was unlinked (restore binds, then unlinks)
    All = (1 << 7) - 1,
}

/// <summary>
/// CkptPS: a socket, right after its FILE record (Kind = UnixSocket or InetSocket, same objref), and
/// followed by QueuedMessages SOCKET_QUEUE records (UDP: UDP_DATAGRAM records): the data waiting in
/// its receive queue.
/// Addresses are the sockaddr bytes getsockname/getpeername (unix: sock_diag's name) return;
/// a unix socket bound to an abstract name has sun_path[0] = 0. Option values are what
/// getsockopt returned (buffer sizes: the kernel's doubled value; restore asks for half of it).
/// One end of a unix socketpair names the other end by its socket inode (PeerInode, the Inode of the
/// other end's FILE record: the kernel's identity of the socket, as sock_diag reports it); both ends
/// are file objects of the same descriptor table and are restored together by socketpair(2).
/// </summary>
[ImageRecord(RecordType.Socket)]
public unsafe partial struct SocketRecord
{
    public const int MaxAddressLength = 128;   // sizeof(struct sockaddr_storage)

    public int ObjRef;
    public SocketFamily Family;
    public SocketType SocketType;
    public int Protocol;                // 0 for unix, IPPROTO_TCP 6 or IPPROTO_UDP 17
    public SocketState State;
    public int Backlog;                 // Listening: the listen(2) backlog (sk_max_ack_backlog)
    public SocketShutdown Shutdown;
    public SocketOptions Options;
    public int SendBuffer;              // SO_SNDBUF as getsockopt reports it
    public int ReceiveBuffer;           // SO_RCVBUF as getsockopt reports it
    public int PeekOffset;              // SO_PEEK_OFF (-1: off); unix only, 0 for inet
    public int KeepIdle;                // TCP_KEEPIDLE seconds (TCP only, else 0)
    public int KeepInterval;            // TCP_KEEPINTVL seconds
    public int KeepCount;               // TCP_KEEPCNT
    public long ReceiveTimeoutMicroseconds; // SO_RCVTIMEO (0: none)
    public long SendTimeoutMicroseconds;    // SO_SNDTIMEO (0: none)
    public uint QueuedMessages;         // SOCKET_QUEUE records that follow (stream: chunks; others: one per message)
    public uint LocalAddressLength;     // bytes of LocalAddress in use (0: unbound)
    public ulong QueuedBytes;           // the sum of their lengths
    public uint PeerAddressLength;      // bytes of PeerAddress in use (0: no peer address)
    public uint BoundFileMode;          // unix bound to a path whose file is there: its permission bits (at most 0777), chmod'ed after bind
    public ulong PeerInode;             // unix socketpair: the other end's socket inode (0: none)
    public fixed byte LocalAddress[128];
    public fixed byte PeerAddress[128];
}

/// <summary>
/// CkptPS: one message of a socket's receive queue, oldest first, its bytes trailing. For a datagram
/// or seqpacket socket one record is one message (boundaries kept, a zero-length message included);
/// for a stream socket a chunk of at most MaxStreamChunk bytes (boundaries mean nothing there).
/// </summary>
[ImageRecord(RecordType.SocketQueue)]
public partial struct SocketQueueRecord
{
    public const int MaxStreamChunk = 64 * 1024;
    public const int MaxMessageLength = ImageLimits.MaxBufferLength;     // 1 MiB (unix datagrams are bounded by SO_SNDBUF)
    public const ulong MaxQueuedBytes = 64 * 1024 * 1024;                 // per socket: the model holds the queue in memory
    public const uint MaxQueuedMessages = 1 << 20;

    public int ObjRef;                  // the socket's (its FILE's) objref
    [TrailingBytes] public uint Length;
}

/// <summary>
/// CkptPS: a unix stream or seqpacket client (SOCKET State = PendingConnection) whose connection waits in
/// a listener's accept queue: the kernel made the listener's end (an "embryo" socket, no descriptor yet)
/// and queued it; accept(2) would return it. Follows the client's SOCKET record (which queues nothing:
/// data sent into a pending connection cannot be read without accepting it, so such a client is refused).
/// A restore makes the listener (bound and listening) and the client socket, and once every process has
/// its descriptors, connects each listener's clients in Position order from their own processes, so
/// accept(2) returns the connections in the original order and each carries its client's credentials.
/// </summary>
[ImageRecord(RecordType.UnixPendingConnection)]
public partial struct UnixPendingConnectionRecord
{
    public int ObjRef;                  // the client socket's (its FILE's) objref
    public uint Position;               // place in the listener's accept queue, 0 = the oldest (accepted first)
    public ulong ListenerInode;         // the listening unix socket's inode: the Inode of a FILE record of this image
}

/// <summary>
/// CkptPS: one datagram of a UDP socket's receive queue, oldest first, its bytes trailing, with the address
/// it came from (what recvfrom(2) returns with it). A restore sends it again to the restored socket from
/// that address: through the image's own UDP socket bound there (SenderInode), or else from a temporary
/// socket of the receiving process bound to the source address (a local address the restoring user can
/// bind: the checkpoint refuses any other source).
/// </summary>
[ImageRecord(RecordType.UdpDatagram)]
public unsafe partial struct UdpDatagramRecord
{
    public const int MaxLength = 65535;             // a UDP datagram's payload is below 64 KiB
    public const int MaxSourceAddressLength = 28;   // sizeof(sockaddr_in6)

    public int ObjRef;                  // the receiving socket's (its FILE's) objref
    public uint SourceAddressLength;    // 16 (sockaddr_in) or 28 (sockaddr_in6), the receiving socket's family
    public ulong SenderInode;           // the image's UDP socket bound to the source address that sends it (0: a temporary socket)
    public fixed byte SourceAddress[28]; // sockaddr_in or sockaddr_in6 as recvfrom returned it
    [TrailingBytes] public uint Length;
}

/// <summary>
/// CkptPS: the descriptors in flight (SCM_RIGHTS) that the unix SOCKET_QUEUE message right before it carries,
/// in the order recvmsg(2) will install them. DescriptorCount IN_FLIGHT_FILE records follow, each after its
/// file object's FILE record when this is that object's first use. On a stream socket the message is the
/// segment the descriptors are attached to (the kernel's skb: a read that reaches it stops at its end and
/// returns the descriptors); the chunks before it carry none. A restore sends the message again with an
/// SCM_RIGHTS control message holding the restored files.
/// </summary>
[ImageRecord(RecordType.SocketRights)]
public partial struct SocketRightsRecord
{
    public const int MaxDescriptors = 253;          // SCM_MAX_FD: the most one message can carry

    public int ObjRef;                  // the receiving socket's (its FILE's) objref
    public uint DescriptorCount;        // 1 to MaxDescriptors IN_FLIGHT_FILE records follow
}

/// <summary>
/// CkptPS: one descriptor in flight of the SOCKET_RIGHTS before it. FileObjRef names a file object: one a
/// descriptor table or an earlier message of the image holds too (the same open file description: offset,
/// flags, a pipe's other end), or one only in flight, defined by the FILE record right before this one (then only
/// a path file, a pipe end or an eventfd: kinds the engine can save from its own copy of the descriptor).
/// </summary>
[ImageRecord(RecordType.InFlightFile)]
public partial struct InFlightFileRecord
{
    public int SocketObjRef;            // the receiving socket's objref (the SOCKET_RIGHTS record's)
    public int FileObjRef;              // the file object the descriptor is
}
