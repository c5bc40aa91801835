using System.Text;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SocketNative;

namespace Ckpt.Engine.Files.Sockets;

/// <summary>
/// Checkpoint side: the target's socket duplicated into the engine with pidfd_getfd (the target is
/// frozen and ours to trace), so getsockopt, getsockname and MSG_PEEK reads work on the very socket
/// without anything injected; closing the duplicate leaves the target's descriptor as it was.
/// </summary>
public sealed class TargetSocket : IDisposable
{
    public int Handle { get; }
    public DescriptorInfo Descriptor { get; }
    public int Pid => Descriptor.Pid;
    public int Family { get; }
    public int Type { get; }
    public int Protocol { get; }

    private TargetSocket(DescriptorInfo descriptor)
    {
        Descriptor = descriptor;
        Handle = DuplicateFrom(descriptor.Pid, descriptor.Fd);
        Family = GetInt(Handle, SOL_SOCKET, SO_DOMAIN, Pid, "SO_DOMAIN");
        Type = GetInt(Handle, SOL_SOCKET, SO_TYPE, Pid, "SO_TYPE");
        Protocol = GetInt(Handle, SOL_SOCKET, SO_PROTOCOL, Pid, "SO_PROTOCOL");
    }

    public static TargetSocket Open(DescriptorInfo descriptor) => new(descriptor);

    /// <summary>The socket's address family, for a kind's Matches (0 for anything that is not a socket).</summary>
    public static int FamilyOf(DescriptorInfo descriptor)
    {
        if (descriptor.StatKind != FileKind.Socket) return 0;
        using var socket = Open(descriptor);
        return socket.Family;
    }

    /// <summary>"fd 5 of process 123": how refusals name the socket.</summary>
    public string Name => $"fd {Descriptor.Fd} of process {Pid}";

    /// <summary>sock_diag and the engine's own sockets see the engine's network namespace: the target must share it.</summary>
    public void RequireSameNetworkNamespace()
    {
        string theirs = new FileInfo($"/proc/{Pid}/ns/net").LinkTarget ?? "", ours = new FileInfo("/proc/self/ns/net").LinkTarget ?? "";
        if (theirs != ours)
            throw new CheckpointRefusedException($"{Name} is a socket in another network namespace ({theirs}; the engine is in {ours}): unsupported");
    }

    public byte[] LocalAddress() => Address(Handle, peer: false, Pid);
    public byte[] PeerAddress() => Address(Handle, peer: true, Pid);

    /// <summary>The FILE record of the socket (path "socket:[inode]") and the SOCKET record after it, with its queue.</summary>
    public InspectedSocket Inspected(int objRef, FileKind kind, SocketRecord socket, IReadOnlyList<byte[]> queue, TcpConnectionImage? tcp = null)
    {
        socket.ObjRef = objRef;
        socket.QueuedMessages = (uint)queue.Count;
        socket.QueuedBytes = (ulong)queue.Sum(m => (long)m.Length);
        FileRecord file = OpenFileRecords.Record(objRef, kind, Descriptor.Stat, Descriptor.Target, Descriptor.FdInfo.Flags, 0);
        return new InspectedSocket(file, Descriptor.Target, socket, queue, tcp);
    }

    public void Dispose() => Native.close(Handle);

    /// <summary>A socket's records: FILE, SOCKET, its queue (SOCKET_QUEUE, or UDP_DATAGRAM when <see cref="Datagrams"/> says where each came from), then TCP_CONNECTION or UNIX_PENDING_CONNECTION.</summary>
    public sealed record InspectedSocket(FileRecord File, string Path, SocketRecord Socket, IReadOnlyList<byte[]> Queue, TcpConnectionImage? Tcp) : IInspectedFile
    {
        public UnixPendingConnectionRecord? Pending { get; init; }
        public IReadOnlyList<UdpDatagramRecord>? Datagrams { get; init; }

        /// <summary>The queued messages that carry descriptors in flight (unix: SOCKET_RIGHTS after their SOCKET_QUEUE).</summary>
        public IReadOnlyList<InFlightFiles.Message> InFlight { get; init; } = [];

        public void Write(ImageWriter writer)
        {
            writer.Write(File, Encoding.UTF8.GetBytes(Path));
            writer.Write(Socket);
            var carried = InFlight.ToDictionary(m => m.Index);
            for (int i = 0; i < Queue.Count; i++)
            {
                if (Datagrams is null) writer.Write(new SocketQueueRecord { ObjRef = Socket.ObjRef, Length = (uint)Queue[i].Length }, Queue[i]);
                else writer.Write(Datagrams[i] with { ObjRef = Socket.ObjRef, Length = (uint)Queue[i].Length }, Queue[i]);
                if (carried.TryGetValue(i, out InFlightFiles.Message? message)) InFlightFiles.Write(writer, Socket.ObjRef, message);
            }
            if (Tcp is not null) WriteTcp(writer, Tcp);
            if (Pending is { } pending) writer.Write(pending with { ObjRef = Socket.ObjRef });
        }

        /// <summary>TCP_CONNECTION, then the receive queue's chunks, then the send queue's.</summary>
        private static void WriteTcp(ImageWriter writer, TcpConnectionImage tcp)
        {
            writer.Write(tcp.Record);
            foreach ((TcpQueue queue, byte[] bytes) in new[] { (TcpQueue.Receive, tcp.ReceiveQueue), (TcpQueue.Send, tcp.SendQueue) })
                for (int at = 0; at < bytes.Length; at += TcpConnectionRecord.MaxChunk)
                {
                    int length = Math.Min(TcpConnectionRecord.MaxChunk, bytes.Length - at);
                    writer.Write(new TcpQueueDataRecord { ObjRef = tcp.Record.ObjRef, Queue = queue, Length = (uint)length }, bytes.AsSpan(at, length));
                }
        }
    }

    /// <summary>Copies sockaddr bytes into a record's fixed address field.</summary>
    public static unsafe void SetAddress(ref SocketRecord record, bool peer, ReadOnlySpan<byte> address)
    {
        if (address.Length > SocketRecord.MaxAddressLength) throw new ArgumentException("socket address longer than sockaddr_storage");
        fixed (byte* local = record.LocalAddress, remote = record.PeerAddress)
            address.CopyTo(new Span<byte>(peer ? remote : local, SocketRecord.MaxAddressLength));
        if (peer) record.PeerAddressLength = (uint)address.Length;
        else record.LocalAddressLength = (uint)address.Length;
    }

    public static string Format(int family, ReadOnlySpan<byte> address) => SocketAddress.Format((SocketFamily)family, address);
}
