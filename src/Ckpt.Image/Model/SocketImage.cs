using System.Buffers.Binary;
using System.Net;
using System.Text;
using Ckpt.Image.Records;

namespace Ckpt.Image.Model;

/// <summary>
/// A socket file object's SOCKET record and its receive queue (oldest message first), with the
/// SOCKET record's image offset (for errors found after it was read, such as a pair that does not match).
/// </summary>
public sealed record SocketImage(SocketRecord Record, IReadOnlyList<byte[]> Queue, long Offset)
{
    /// <summary>An established TCP connection (State = Established): its TCP_CONNECTION record and queues.</summary>
    public TcpConnectionImage? Tcp { get; init; }

    /// <summary>A unix client whose connection waits in a listener's accept queue (State = PendingConnection).</summary>
    public UnixPendingConnectionRecord? PendingConnection { get; init; }

    /// <summary>
    /// A unix socket's descriptors in flight (SCM_RIGHTS), by the index in <see cref="Queue"/> of the message that
    /// carries them: the file objects, in the order recvmsg installs them.
    /// </summary>
    public IReadOnlyDictionary<int, IReadOnlyList<FileImage>> InFlight { get; init; } = new Dictionary<int, IReadOnlyList<FileImage>>();

    /// <summary>A UDP socket's queued datagrams' records (sources, senders), one per entry of <see cref="Queue"/>.</summary>
    public IReadOnlyList<UdpDatagramRecord> Datagrams { get; init; } = [];

    /// <summary>Where each datagram came from, as text ("127.0.0.1:5000").</summary>
    public unsafe string SourceOf(int datagram)
    {
        UdpDatagramRecord record = Datagrams[datagram];
        return SocketAddress.Format(Record.Family, new ReadOnlySpan<byte>(record.SourceAddress, (int)Math.Min(record.SourceAddressLength, UdpDatagramRecord.MaxSourceAddressLength)));
    }

    public unsafe string LocalAddress
    {
        get
        {
            SocketRecord record = Record;
            return SocketAddress.Format(record.Family, new ReadOnlySpan<byte>(record.LocalAddress, (int)Math.Min(record.LocalAddressLength, SocketRecord.MaxAddressLength)));
        }
    }

    public unsafe string PeerAddress
    {
        get
        {
            SocketRecord record = Record;
            return SocketAddress.Format(record.Family, new ReadOnlySpan<byte>(record.PeerAddress, (int)Math.Min(record.PeerAddressLength, SocketRecord.MaxAddressLength)));
        }
    }

    /// <summary>"unix stream", "inet6 udp", ...: how `ckpt show` and refusals name the socket.</summary>
    public string Description => Record.Family == SocketFamily.Unix
        ? $"unix {Record.SocketType.ToString().ToLowerInvariant()}"
        : $"{Record.Family.ToString().ToLowerInvariant()} {(Record.Protocol == SocketAddress.IPPROTO_TCP ? "tcp" : "udp")}";
}

/// <summary>An established TCP connection's TCP_CONNECTION record and the bytes of its two queues, oldest first.</summary>
public sealed record TcpConnectionImage(TcpConnectionRecord Record, byte[] ReceiveQueue, byte[] SendQueue, long Offset)
{
    /// <summary>The part of the send queue the peer may have received (restored in repair mode, as sent and unacknowledged).</summary>
    public ReadOnlySpan<byte> SentQueue => SendQueue.AsSpan(0, SendQueue.Length - (int)Record.UnsentBytes);

    /// <summary>The tail of the send queue never sent (sent normally once the connection leaves repair mode).</summary>
    public ReadOnlySpan<byte> UnsentQueue => SendQueue.AsSpan(SendQueue.Length - (int)Record.UnsentBytes);
}

/// <summary>sockaddr bytes as text: "/run/app.sock", "@abstract", "127.0.0.1:8080", "[::1]:8080", "" (none).</summary>
public static class SocketAddress
{
    public const int IPPROTO_TCP = 6, IPPROTO_UDP = 17;
    public const int InetLength = 16, Inet6Length = 28;   // sizeof(sockaddr_in), sizeof(sockaddr_in6)

    public static string Format(SocketFamily family, ReadOnlySpan<byte> address)
    {
        if (address.Length <= 2) return "";
        switch (family)
        {
            case SocketFamily.Unix:
                ReadOnlySpan<byte> path = address[2..];
                if (path[0] == 0) return "@" + Encoding.UTF8.GetString(path[1..]).Replace("\0", "\\0");
                int end = path.IndexOf((byte)0);
                return Encoding.UTF8.GetString(end < 0 ? path : path[..end]);
            case SocketFamily.Inet when address.Length >= InetLength:
                return $"{new IPAddress(address.Slice(4, 4))}:{BinaryPrimitives.ReadUInt16BigEndian(address[2..])}";
            case SocketFamily.Inet6 when address.Length >= Inet6Length:
                return $"[{new IPAddress(address.Slice(8, 16))}]:{BinaryPrimitives.ReadUInt16BigEndian(address[2..])}";
            default:
                return Convert.ToHexString(address);
        }
    }
}
