using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SocketNative;

namespace Ckpt.Engine.Files.Sockets;

/// <summary>
/// TCP and UDP sockets, IPv4 and IPv6. Checkpoint: the engine's duplicate of the socket for address,
/// peer and options; TCP_INFO for the TCP state, and for a listener its backlog (tcpi_sacked) and the
/// connections waiting to be accepted (tcpi_unacked). Restored: a TCP socket that is listening (bind +
/// listen on the same address and port, options first) or not yet connected (bound or not); a UDP
/// socket bound and connected as it was; an established TCP connection with --tcp-established
/// (<see cref="TcpConnectionCheckpoint"/>, <see cref="TcpConnectionRestore"/>: TCP_REPAIR). Refused by name:
/// an established connection without --tcp-established and a connection in any other state (naming both
/// addresses), a listener with connections waiting to be accepted (they would be lost). A UDP socket's
/// queued datagrams are saved with their sources and sent again (<see cref="UdpDatagramQueue"/>), or refused
/// by name when their source cannot be bound at restore.
/// </summary>
public sealed class InetSocketKind : IDescriptorKind
{
    private const int TCP_ESTABLISHED = 1, TCP_LISTEN = 10, TCP_CLOSE = 7;

    public bool Matches(DescriptorInfo fd) => TargetSocket.FamilyOf(fd) is AF_INET or AF_INET6;

    public IInspectedFile Inspect(DescriptorInfo fd, int objRef)
    {
        using TargetSocket socket = TargetSocket.Open(fd);
        socket.RequireSameNetworkNamespace();
        bool tcp = socket.Type == SOCK_STREAM && socket.Protocol == IPPROTO_TCP, udp = socket.Type == SOCK_DGRAM && socket.Protocol == IPPROTO_UDP;
        string family = socket.Family == AF_INET ? "IPv4" : "IPv6";
        if (!tcp && !udp)
            throw new CheckpointRefusedException($"{socket.Name} is an {family} socket of type {socket.Type}, protocol {socket.Protocol}: only TCP and UDP are supported");
        byte[] local = socket.LocalAddress(), peer = socket.PeerAddress();
        string description = $"{socket.Name} ({family} {(tcp ? "TCP" : "UDP")} {TargetSocket.Format(socket.Family, local)}{(peer.Length > 0 ? " -> " + TargetSocket.Format(socket.Family, peer) : "")})";
        var record = new SocketRecord { Family = (SocketFamily)socket.Family, SocketType = (SocketType)socket.Type, Protocol = socket.Protocol };
        if (!IsUnbound(local)) TargetSocket.SetAddress(ref record, peer: false, local);
        // Before the TCP state: repair mode makes SO_REUSEADDR read as set.
        record = SocketOptionValues.Read(socket.Handle, socket.Family, socket.Protocol, fd.Pid, record);
        TcpConnectionImage? connection = null;
        if (tcp) (record, connection) = TcpState(socket, record, local, peer, description, fd, objRef);
        else
        {
            record.State = peer.Length > 0 ? SocketState.Connected : SocketState.Unconnected;
            if (peer.Length > 0) TargetSocket.SetAddress(ref record, peer: true, peer);
            // The audit's pass reads no queue: a peek marks a zero-length datagram, which a second peek at an offset would skip.
            if (!fd.DryRun)
            {
                (List<byte[]> queue, List<UdpDatagramRecord> datagrams) = UdpDatagramQueue.Inspect(socket, local, description, fd);
                if (queue.Count > 0) return socket.Inspected(objRef, FileKind.InetSocket, record, queue) with { Datagrams = datagrams };
            }
        }
        return socket.Inspected(objRef, FileKind.InetSocket, record, [], connection);
    }

    private static (SocketRecord, TcpConnectionImage?) TcpState(TargetSocket socket, SocketRecord record, byte[] local, byte[] peer, string description, DescriptorInfo fd, int objRef)
    {
        TcpConnectionCheckpoint? connections = fd.TcpConnections;
        TcpInfo info = TcpInfo.Read(socket.Handle, socket.Pid, socket.Name);
        switch (info.State)
        {
            case TCP_ESTABLISHED:
                if (connections is not { Enabled: true })
                    throw new CheckpointRefusedException($"{description} is a TCP connection in state ESTABLISHED: saving it needs --tcp-established (TCP_REPAIR, and an nftables lock on a peer outside the tree)");
                // Shut down for reading, it is still ESTABLISHED; its reader gets end of file. Not saved: refused.
                if (InetDiag.TcpShutdown(socket.Family, local, peer, socket.Pid) is > 0 and var shutdown)
                    throw new CheckpointRefusedException($"{description} is a TCP connection shut down for {((shutdown & 1) != 0 ? "reading" : "writing")} (shutdown(2); sk_shutdown {shutdown} by inet_diag): unsupported");
                TargetSocket.SetAddress(ref record, peer: true, peer);
                record.State = SocketState.Established;
                record.ObjRef = objRef;
                return (record, connections.Inspect(socket, record, description, local, peer, fd.TreePids ?? [fd.Pid]));
            case TCP_LISTEN:
                if (info.Unacked > 0)
                    throw new CheckpointRefusedException($"{description} is listening with {info.Unacked} connection(s) waiting to be accepted: unsupported (they would be lost)");
                (record.State, record.Backlog) = (SocketState.Listening, (int)info.Sacked);
                return (record, null);
            case TCP_CLOSE:
                record.State = SocketState.Unconnected;
                return (record, null);
            default:
                throw new CheckpointRefusedException($"{description} is a TCP connection in state {StateName(info.State)}: unsupported (only ESTABLISHED connections are saved, with --tcp-established)");
        }
    }

    private static string StateName(int state) => state switch
    {
        1 => "ESTABLISHED", 2 => "SYN_SENT", 3 => "SYN_RECV", 4 => "FIN_WAIT1", 5 => "FIN_WAIT2", 6 => "TIME_WAIT",
        8 => "CLOSE_WAIT", 9 => "LAST_ACK", 11 => "CLOSING", _ => state.ToString(),
    };

    /// <summary>An address with port 0 is what getsockname says of a socket never bound.</summary>
    private static bool IsUnbound(byte[] address) => address.Length < 4 || (address[2] == 0 && address[3] == 0);

    public bool Restores(FileImage file) => file.Record.Kind == FileKind.InetSocket;

    public void Validate(FileImage file, int fd)
    {
        if (file.Socket is null) throw new RestoreRefusedException($"fd {fd} is an inet socket without its SOCKET record");
        if (file.Socket.Tcp is not null) TcpConnectionRestore.Validate(file, fd);
    }

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd, FileCreation creation) =>
        file.Socket!.Tcp is null ? Open(syscalls, scratch, file, fd)
        : (creation.TcpConnections ?? throw new InvalidOperationException("an established TCP connection is restored only with the tree's TcpConnectionRestore"))
            .Open(syscalls, scratch, file, fd);

    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd)
    {
        SocketImage socket = file.Socket!;
        long created = InjectedSocketCalls.Socket(syscalls, socket.Record, fd);
        SocketOptionValues.Apply(syscalls, scratch, created, fd, socket.Record);
        if (socket.Record.LocalAddressLength > 0) InjectedSocketCalls.Bind(syscalls, scratch, created, fd, socket);
        if (socket.Record.State == SocketState.Listening) InjectedSocketCalls.Listen(syscalls, created, fd, socket.Record);
        // With datagrams queued, it connects after they are sent again (UdpDatagramQueue.SendAll): a connected UDP socket takes only its peer's.
        if (socket.Record.State == SocketState.Connected && socket.Queue.Count == 0) InjectedSocketCalls.Connect(syscalls, scratch, created, fd, socket);
        InjectedSocketCalls.StatusFlags(syscalls, created, fd, file.Record);
        return created;
    }
}
