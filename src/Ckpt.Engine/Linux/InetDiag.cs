using System.Buffers.Binary;
using static Ckpt.Engine.Linux.SocketNative;

namespace Ckpt.Engine.Linux;

/// <summary>
/// inet_diag (net/ipv4/inet_diag.c, as `ss -t` uses it) through <see cref="SockDiag"/>, for what no
/// socket option tells: whether an established TCP connection was shut down for reading
/// (shutdown(SHUT_RD) leaves it ESTABLISHED; SHUT_WR moves it to FIN_WAIT1, which TCP_INFO shows), and
/// which socket is a connection's other end when it is on this machine (NetworkLock: peers in the tree).
/// </summary>
public static class InetDiag
{
    private const int INET_DIAG_SHUTDOWN = 8, TCP_ESTABLISHED = 1, InetDiagMessageSize = 72;

    /// <summary>sk_shutdown (1 receive, 2 send) of the established TCP socket with these addresses (sockaddr_in or sockaddr_in6 bytes); null when none is found.</summary>
    public static int? TcpShutdown(int family, byte[] local, byte[] peer, int pid)
    {
        byte[]? body = Query(family, local, peer, pid);
        if (body is null) return null;
        foreach ((int kind, byte[] value) in SockDiag.Attributes(body, InetDiagMessageSize))
            if (kind == INET_DIAG_SHUTDOWN && value.Length >= 1) return value[0];
        return 0;
    }

    /// <summary>The inode of the established TCP socket with these addresses (idiag_inode); null when none is found.</summary>
    public static ulong? TcpInode(int family, byte[] local, byte[] peer, int pid) =>
        Query(family, local, peer, pid) is { Length: >= InetDiagMessageSize } body ? BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(68)) : null;

    private static byte[]? Query(int family, byte[] local, byte[] peer, int pid)
    {
        // inet_diag_req_v2 {family, protocol, ext, pad, states, inet_diag_sockid {sport, dport (big endian),
        // src[4], dst[4] (u32 words, network order), if, cookie[2]}}
        var request = new byte[56];
        request[0] = (byte)family;
        request[1] = IPPROTO_TCP;
        BinaryPrimitives.WriteUInt32LittleEndian(request.AsSpan(4), 1u << TCP_ESTABLISHED);
        local.AsSpan(2, 2).CopyTo(request.AsSpan(8));   // sin_port / sin6_port: already big endian
        peer.AsSpan(2, 2).CopyTo(request.AsSpan(10));
        int addressAt = family == AF_INET ? 4 : 8, addressLength = family == AF_INET ? 4 : 16;
        local.AsSpan(addressAt, addressLength).CopyTo(request.AsSpan(12));
        peer.AsSpan(addressAt, addressLength).CopyTo(request.AsSpan(28));
        BinaryPrimitives.WriteUInt64LittleEndian(request.AsSpan(48), ulong.MaxValue); // INET_DIAG_NOCOOKIE x2
        return SockDiag.Query(request, pid, "a TCP connection");
    }
}
