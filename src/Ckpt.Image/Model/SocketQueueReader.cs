using System.Buffers.Binary;
using Ckpt.Image.Records;

namespace Ckpt.Image.Model;

/// <summary>
/// The image model's reading of the records that tie a socket to another one: a UDP datagram's source
/// and sender (UDP_DATAGRAM) and a unix client's place in a listener's accept queue
/// (UNIX_PENDING_CONNECTION); and, once every process is read, the check that each names a socket of
/// the image that can play its part (the restore sends from, and connects to, these sockets).
/// </summary>
internal static class SocketQueueReader
{
    public static unsafe UdpDatagramRecord ReadDatagram(ImageReader reader, SocketRecord socket)
    {
        var datagram = reader.Read<UdpDatagramRecord>();
        string what = $"datagram of socket objref {socket.ObjRef}";
        if (datagram.ObjRef != socket.ObjRef)
            throw SocketImageReader.Error(reader, RecordType.UdpDatagram, $"has objref {datagram.ObjRef}, its SOCKET record {socket.ObjRef}");
        if (datagram.Length > UdpDatagramRecord.MaxLength)
            throw SocketImageReader.Error(reader, RecordType.UdpDatagram, $"{what} holds {datagram.Length} bytes (at most {UdpDatagramRecord.MaxLength})");
        uint expected = socket.Family == SocketFamily.Inet ? (uint)SocketAddress.InetLength : SocketAddress.Inet6Length;
        if (datagram.SourceAddressLength != expected)
            throw SocketImageReader.Error(reader, RecordType.UdpDatagram, $"{what} has a source address of {datagram.SourceAddressLength} bytes, a {socket.Family} address has {expected}");
        string? problem = SocketImageReader.AddressProblem("source", socket.Family, datagram.SourceAddressLength, datagram.SourceAddress);
        if (problem is null && BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(datagram.SourceAddress + 2, 2)) == 0)
            problem = "source port is 0";
        if (problem is not null)
            throw SocketImageReader.Error(reader, RecordType.UdpDatagram, $"{what}: {problem}");
        return datagram;
    }

    public static UnixPendingConnectionRecord ReadPendingConnection(ImageReader reader, FileRecord file, SocketRecord socket)
    {
        reader.ThrowIfFailedCheckpoint();
        if (reader.PeekType() is { } other && other != RecordType.UnixPendingConnection)
            throw SocketImageReader.Error(reader, other, $"found where the UNIX_PENDING_CONNECTION record of socket objref {socket.ObjRef} belongs");
        var pending = reader.Read<UnixPendingConnectionRecord>();
        if (pending.ObjRef != socket.ObjRef)
            throw SocketImageReader.Error(reader, RecordType.UnixPendingConnection, $"has objref {pending.ObjRef}, its SOCKET record {socket.ObjRef}");
        if (pending.ListenerInode == 0 || pending.ListenerInode == file.Inode || pending.Position >= ImageLimits.MaxDescriptors)
            throw SocketImageReader.Error(reader, RecordType.UnixPendingConnection, $"socket objref {socket.ObjRef}: listener inode {pending.ListenerInode} is none or its own, or position {pending.Position} is above {ImageLimits.MaxDescriptors}");
        return pending;
    }

    /// <summary>
    /// (Errors name the SOCKET record of the socket at fault: the client, the listener, the receiver.)
    /// Every pending connection names a listening unix socket of the image, of the client's type, bound to a
    /// name it can be reached by (not a deleted file), and each listener's clients (at most its backlog + 1)
    /// hold positions 0..n-1;
    /// every datagram's sender is a UDP socket of the image of the receiver's family, bound to its source port.
    /// </summary>
    public static void CheckTree(IReadOnlyList<ProcessImage> processes)
    {
        var byInode = new Dictionary<ulong, FileImage>();
        foreach (FileImage file in processes.SelectMany(p => p.FileTable.Files.Values).Distinct())
            if (file.Socket is not null) byInode.TryAdd(file.Record.Inode, file);
        var positions = new Dictionary<ulong, List<uint>>();
        foreach (FileImage file in byInode.Values)
        {
            SocketImage socket = file.Socket!;
            if (socket.PendingConnection is { } pending)
            {
                CheckListener(byInode, socket, pending);
                if (!positions.TryGetValue(pending.ListenerInode, out var list)) positions[pending.ListenerInode] = list = [];
                list.Add(pending.Position);
            }
            for (int i = 0; i < socket.Datagrams.Count; i++)
                CheckSender(byInode, socket, socket.Datagrams[i], i);
        }
        foreach ((ulong listener, List<uint> list) in positions)
        {
            // A unix listener queues at most backlog + 1 connections; one more connect would block the restore.
            SocketImage listening = byInode[listener].Socket!;
            if (list.Count > (long)listening.Record.Backlog + 1)
                throw new ImageFormatException(RecordType.Socket, listening.Offset, $"listener inode {listener} has {list.Count} pending connections, more than its backlog {listening.Record.Backlog} + 1");
            list.Sort();
            for (int i = 0; i < list.Count; i++)
                if (list[i] != i)
                    throw new ImageFormatException(RecordType.Socket, byInode[listener].Socket!.Offset,
                        $"the {list.Count} pending connections of listener inode {listener} hold positions {string.Join(", ", list)}, not 0 to {list.Count - 1}");
        }
    }

    private static void CheckListener(Dictionary<ulong, FileImage> byInode, SocketImage client, UnixPendingConnectionRecord pending)
    {
        SocketRecord? listener = byInode.TryGetValue(pending.ListenerInode, out FileImage? file) ? file.Socket!.Record : null;
        if (listener is not { Family: SocketFamily.Unix, State: SocketState.Listening } l || l.SocketType != client.Record.SocketType
            || l.LocalAddressLength <= 2 || l.Options.HasFlag(SocketOptions.BoundFileDeleted))
            throw new ImageFormatException(RecordType.Socket, client.Offset,
                $"socket objref {client.Record.ObjRef}: listener inode {pending.ListenerInode} is not a listening unix {client.Record.SocketType} socket of the image bound to a name it can be reached by");
    }

    private static unsafe void CheckSender(Dictionary<ulong, FileImage> byInode, SocketImage receiver, UdpDatagramRecord datagram, int index)
    {
        if (datagram.SenderInode == 0) return;
        SocketRecord? sender = byInode.TryGetValue(datagram.SenderInode, out FileImage? file) ? file.Socket!.Record : null;
        bool fits = sender is { Protocol: SocketAddress.IPPROTO_UDP } s && s.Family == receiver.Record.Family && s.LocalAddressLength == datagram.SourceAddressLength
            && s.LocalAddress[2] == datagram.SourceAddress[2] && s.LocalAddress[3] == datagram.SourceAddress[3];
        if (!fits)
            throw new ImageFormatException(RecordType.Socket, receiver.Offset,
                $"datagram {index + 1} of socket objref {receiver.Record.ObjRef} from {receiver.SourceOf(index)}: sender inode {datagram.SenderInode} is not a UDP socket of the image of the same family bound to its port");
    }
}
