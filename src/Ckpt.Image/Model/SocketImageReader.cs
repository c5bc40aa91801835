using System.Buffers.Binary;
using Ckpt.Image.Records;

namespace Ckpt.Image.Model;

/// <summary>
/// The image model's reading of a socket file object: the SOCKET record that must follow a socket's
/// FILE record, then its SOCKET_QUEUE records; and, once a descriptor table is read, the check that
/// every socketpair end names an end of the same table that names it back. Every field is checked:
/// a restore creates sockets, binds addresses and sends the queued bytes from these values.
/// </summary>
internal static class SocketImageReader
{
    private const int AF_UNIX = 1, AF_INET = 2, AF_INET6 = 10;
    private const int SunPathOffset = 2, MaxUnixAddressLength = 110; // sizeof(sockaddr_un)

    public static bool IsSocket(FileKind kind) => kind is FileKind.UnixSocket or FileKind.InetSocket;

    public static SocketImage Read(ImageReader reader, FileRecord file, FileObjects files)
    {
        reader.ThrowIfFailedCheckpoint();
        if (reader.PeekType() is { } other && other != RecordType.Socket)
            throw Error(reader, other, $"found where the SOCKET record of socket file objref {file.ObjRef} belongs");
        var socket = reader.Read<SocketRecord>();
        long offset = reader.CurrentRecordOffset;
        Validate(reader, file, socket);
        bool udp = socket.Protocol == SocketAddress.IPPROTO_UDP;
        RecordType queueType = udp ? RecordType.UdpDatagram : RecordType.SocketQueue;
        var queue = new List<byte[]>((int)Math.Min(socket.QueuedMessages, 256));
        var datagrams = new List<UdpDatagramRecord>();
        var inFlight = new Dictionary<int, IReadOnlyList<FileImage>>();
        ulong total = 0, carried = 0;
        for (uint i = 0; i < socket.QueuedMessages; i++)
        {
            reader.ThrowIfFailedCheckpoint();
            if (reader.PeekType() is { } next && next != queueType)
                throw Error(reader, next, $"found where queued message {i + 1} of {socket.QueuedMessages} of socket objref {socket.ObjRef} belongs");
            uint length;
            if (udp)
            {
                UdpDatagramRecord datagram = SocketQueueReader.ReadDatagram(reader, socket);
                datagrams.Add(datagram);
                length = datagram.Length;
            }
            else
            {
                var message = reader.Read<SocketQueueRecord>();
                if (message.ObjRef != socket.ObjRef)
                    throw Error(reader, RecordType.SocketQueue, $"has objref {message.ObjRef}, its SOCKET record {socket.ObjRef}");
                if (message.Length > SocketQueueRecord.MaxMessageLength || (socket.SocketType == SocketType.Stream && (message.Length == 0 || message.Length > SocketQueueRecord.MaxStreamChunk)))
                    throw Error(reader, RecordType.SocketQueue, $"holds {message.Length} bytes: a stream chunk has 1 to {SocketQueueRecord.MaxStreamChunk}, a message at most {SocketQueueRecord.MaxMessageLength}");
                length = message.Length;
            }
            total += length;
            if (total > socket.QueuedBytes)
                throw Error(reader, queueType, $"brings the queue of socket objref {socket.ObjRef} to {total} bytes, its SOCKET record says {socket.QueuedBytes}");
            queue.Add(reader.ReadTrailingBytes());
            if (!udp && InFlightFilesReader.ReadIfPresent(reader, socket, i, files) is { } rights)
            {
                inFlight[(int)i] = rights;
                carried += (ulong)rights.Count;
                if (carried > ImageLimits.MaxDescriptors)
                    throw Error(reader, RecordType.SocketRights, $"brings the descriptors in flight of socket objref {socket.ObjRef} to {carried} (at most {ImageLimits.MaxDescriptors})");
            }
        }
        if (total != socket.QueuedBytes)
            throw new ImageFormatException(RecordType.Socket, offset, $"says {socket.QueuedBytes} queued bytes, its {socket.QueuedMessages} SOCKET_QUEUE records hold {total}");
        if (reader.PeekType() is RecordType.SocketQueue or RecordType.UdpDatagram)
            throw Error(reader, reader.PeekType(), $"one more than the {socket.QueuedMessages} queued messages socket objref {socket.ObjRef} announced");
        TcpConnectionImage? tcp = socket.State == SocketState.Established ? TcpConnectionReader.Read(reader, socket.ObjRef) : null;
        UnixPendingConnectionRecord? pending = socket.State == SocketState.PendingConnection ? SocketQueueReader.ReadPendingConnection(reader, file, socket) : null;
        return new SocketImage(socket, queue, offset) { Tcp = tcp, PendingConnection = pending, Datagrams = datagrams, InFlight = inFlight };
    }

    private static void Validate(ImageReader reader, FileRecord file, SocketRecord socket)
    {
        string problem = Problem(file, socket);
        if (problem.Length != 0) throw Error(reader, RecordType.Socket, $"socket objref {socket.ObjRef}: {problem}");
    }

    private static unsafe string Problem(FileRecord file, SocketRecord s)
    {
        if (s.ObjRef != file.ObjRef) return $"has objref {s.ObjRef}, its FILE record {file.ObjRef}";
        bool unix = s.Family == SocketFamily.Unix;
        if (unix != (file.Kind == FileKind.UnixSocket) || (!unix && s.Family is not (SocketFamily.Inet or SocketFamily.Inet6)))
            return $"family {(ushort)s.Family} does not belong to a FILE of kind {file.Kind}";
        if (unix ? s.Protocol != 0 || s.SocketType is not (SocketType.Stream or SocketType.Datagram or SocketType.SeqPacket)
                 : !(s.SocketType == SocketType.Stream && s.Protocol == SocketAddress.IPPROTO_TCP) && !(s.SocketType == SocketType.Datagram && s.Protocol == SocketAddress.IPPROTO_UDP))
            return $"type {(ushort)s.SocketType} with protocol {s.Protocol} is not a {s.Family} socket CkptPS restores";
        if (s.State is not (SocketState.Unconnected or SocketState.Listening or SocketState.Connected or SocketState.Established or SocketState.PendingConnection))
            return $"state {(uint)s.State} is not a socket state";
        if (s.State == SocketState.PendingConnection && (!unix || s.SocketType == SocketType.Datagram || s.PeerInode != 0 || s.PeerAddressLength != 0 || s.QueuedMessages != 0 || s.Shutdown != 0))
            return "is a pending connection, but not a unix stream or seqpacket client without peer inode, peer address, queued data or shutdown state";
        if (s.State == SocketState.Established && (unix || s.Protocol != SocketAddress.IPPROTO_TCP || s.LocalAddressLength < 4 || s.PeerAddressLength < 4
            || s.LocalAddress[2] == 0 && s.LocalAddress[3] == 0 || s.PeerAddress[2] == 0 && s.PeerAddress[3] == 0 || s.Shutdown != 0))
            return "is an established connection, but not a TCP socket with a local and a peer address and port, or it has a shutdown state";
        if (s.State == SocketState.Listening && (s.SocketType == SocketType.Datagram || s.LocalAddressLength == 0 || s.PeerInode != 0 || s.PeerAddressLength != 0))
            return "is listening but is a datagram socket, unbound or connected";
        if (s.Backlog < 0 || (s.Backlog != 0 && s.State != SocketState.Listening))
            return $"backlog {s.Backlog} on a socket that is {s.State}";
        if (s.PeerInode == file.Inode || (s.PeerInode != 0 && (!unix || s.State != SocketState.Connected)))
            return $"peer inode {s.PeerInode} is not the other end of a unix socketpair";
        if (s.State == SocketState.Connected && (unix ? s.PeerInode == 0 || s.PeerAddressLength != 0 : s.Protocol != SocketAddress.IPPROTO_UDP || s.PeerAddressLength == 0))
            return "is connected, but neither a unix socketpair end nor a UDP socket with a peer address";
        if (s.State is not (SocketState.Connected or SocketState.Established) && s.PeerAddressLength != 0)
            return $"has a peer address but is {s.State}";
        if (((uint)s.Shutdown & ~3u) != 0 || (s.Options & ~SocketOptions.All) != 0)
            return $"shutdown 0x{(uint)s.Shutdown:x} or options 0x{(uint)s.Options:x} has unknown bits";
        if (s.SendBuffer < 0 || s.ReceiveBuffer < 0 || s.PeekOffset < -1 || (!unix && s.PeekOffset != 0) || s.KeepIdle < 0 || s.KeepInterval < 0 || s.KeepCount < 0
            || s.ReceiveTimeoutMicroseconds < 0 || s.SendTimeoutMicroseconds < 0)
            return "has a negative buffer size, peek offset, keepalive value or timeout";
        if ((s.QueuedMessages != 0 || s.QueuedBytes != 0) && s.PeerInode == 0 && s.Protocol != SocketAddress.IPPROTO_UDP)
            return "has queued data but is neither a socketpair end nor a UDP socket (only those queues are restored)";
        if (s.QueuedMessages > SocketQueueRecord.MaxQueuedMessages || s.QueuedBytes > SocketQueueRecord.MaxQueuedBytes)
            return $"queues {s.QueuedMessages} messages of {s.QueuedBytes} bytes (at most {SocketQueueRecord.MaxQueuedMessages} and {SocketQueueRecord.MaxQueuedBytes})";
        if (s.Options.HasFlag(SocketOptions.BoundFileDeleted) && (!unix || !IsPathAddress(s)))
            return "says its bound file was deleted, but is not bound to a unix path";
        if (s.BoundFileMode > 0x1FF || (s.BoundFileMode != 0 && (!unix || !IsPathAddress(s) || s.Options.HasFlag(SocketOptions.BoundFileDeleted))))
            return $"bound file mode 0{Convert.ToString(s.BoundFileMode, 8)} is above 0777 or belongs to no bound socket file";
        return AddressProblem("local", s.Family, s.LocalAddressLength, s.LocalAddress)
            ?? AddressProblem("peer", s.Family, s.PeerAddressLength, s.PeerAddress) ?? "";
    }

    private static unsafe bool IsPathAddress(SocketRecord s) => s.LocalAddressLength > SunPathOffset && s.LocalAddress[SunPathOffset] == (byte)'/';

    internal static unsafe string? AddressProblem(string which, SocketFamily family, uint length, byte* address)
    {
        if (length == 0) return null;
        if (length > SocketRecord.MaxAddressLength) return $"{which} address length {length} is above {SocketRecord.MaxAddressLength}";
        var bytes = new ReadOnlySpan<byte>(address, (int)length);
        if (BinaryPrimitives.ReadUInt16LittleEndian(bytes) != (ushort)family)
            return $"{which} address is of family {BinaryPrimitives.ReadUInt16LittleEndian(bytes)}, the socket's {(ushort)family}";
        switch (family)
        {
            case SocketFamily.Unix:
                if (length <= SunPathOffset || length > MaxUnixAddressLength) return $"{which} unix address of {length} bytes (3 to {MaxUnixAddressLength})";
                if (bytes[SunPathOffset] == 0) return null; // abstract: any bytes
                ReadOnlySpan<byte> path = bytes[SunPathOffset..];
                int end = path.IndexOf((byte)0);
                if (path[0] != (byte)'/' || (end >= 0 && end != path.Length - 1)) return $"{which} unix path is not absolute or has a NUL inside";
                return null;
            case SocketFamily.Inet:
                return length == SocketAddress.InetLength ? null : $"{which} IPv4 address of {length} bytes";
            default:
                return length == SocketAddress.Inet6Length ? null : $"{which} IPv6 address of {length} bytes";
        }
    }

    /// <summary>The queues of this process's sockets that name sockets of other processes of the tree.</summary>
    public static void CheckTree(IReadOnlyList<ProcessImage> processes) => SocketQueueReader.CheckTree(processes);

    /// <summary>
    /// Socket file objects have distinct inodes (one socket is one file object), and every socketpair
    /// end names, by inode, a unix socket of the same type in the same descriptor table that names it back.
    /// </summary>
    public static void CheckPairs(IReadOnlyDictionary<int, FileImage> files)
    {
        var byInode = new Dictionary<ulong, SocketImage>();
        foreach (FileImage file in files.Values)
            if (file.Socket is { } socket && !byInode.TryAdd(file.Record.Inode, socket))
                throw new ImageFormatException(RecordType.Socket, socket.Offset, $"socket objref {socket.Record.ObjRef}: socket inode {file.Record.Inode} is already file objref {byInode[file.Record.Inode].Record.ObjRef}");
        foreach ((ulong inode, SocketImage socket) in byInode)
        {
            if (socket.Record.PeerInode == 0) continue;
            if (!byInode.TryGetValue(socket.Record.PeerInode, out SocketImage? other)
                || other.Record.PeerInode != inode || other.Record.SocketType != socket.Record.SocketType || other.Record.Family != SocketFamily.Unix)
                throw new ImageFormatException(RecordType.Socket, socket.Offset,
                    $"socket objref {socket.Record.ObjRef}: its peer inode {socket.Record.PeerInode} is not a unix {socket.Record.SocketType} socket of the same descriptor table naming it back");
        }
    }

    internal static ImageFormatException Error(ImageReader reader, RecordType? record, string problem) => new(record, reader.CurrentRecordOffset, problem);
}
