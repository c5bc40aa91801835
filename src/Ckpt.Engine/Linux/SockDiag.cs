using System.Buffers.Binary;
using static Ckpt.Engine.Linux.SocketNative;

namespace Ckpt.Engine.Linux;

/// <summary>
/// One NETLINK_SOCK_DIAG exchange (the kernel's sock_diag, as `ss` uses it): a SOCK_DIAG_BY_FAMILY
/// request for one socket, and the body of its answer (the family's diag message and its attributes).
/// It sees the engine's network namespace, so callers check the target is in the same one.
/// </summary>
internal static unsafe class SockDiag
{
    private const int NETLINK_SOCK_DIAG = 4, SOCK_DIAG_BY_FAMILY = 20, NLMSG_ERROR = 2, NLMSG_DONE = 3, NLM_F_REQUEST = 1, NLM_F_DUMP = 0x300, ENOENT = 2;

    /// <summary>Sends <paramref name="request"/> (the family's request struct) and returns the answer's body; null when the kernel knows no such socket (ENOENT).</summary>
    public static byte[]? Query(ReadOnlySpan<byte> request, int pid, string what)
    {
        int netlink = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        if (netlink < 0) throw new SyscallException("socket(AF_NETLINK, NETLINK_SOCK_DIAG)", Native.LastErrno, pid);
        try
        {
            Send(netlink, request, pid);
            return Receive(netlink, pid, what);
        }
        finally { Native.close(netlink); }
    }

    /// <summary>Sends <paramref name="request"/> as a dump (every socket its states and family select) and returns each answer's body.</summary>
    public static List<byte[]> Dump(ReadOnlySpan<byte> request, int pid, string what)
    {
        int netlink = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        if (netlink < 0) throw new SyscallException("socket(AF_NETLINK, NETLINK_SOCK_DIAG)", Native.LastErrno, pid);
        try
        {
            Send(netlink, request, pid, NLM_F_REQUEST | NLM_F_DUMP);
            var bodies = new List<byte[]>();
            var buffer = new byte[32768];
            while (true)
            {
                nint length;
                fixed (byte* data = buffer) length = recv(netlink, data, (nuint)buffer.Length, 0);
                if (length < 16) throw new SyscallException($"recv(NETLINK_SOCK_DIAG) dumping {what}", length < 0 ? Native.LastErrno : Errno.EIO, pid);
                for (int at = 0; at + 16 <= length;)
                {
                    int messageLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(at));
                    ushort type = BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(at + 4));
                    if (messageLength < 16 || at + messageLength > length) throw new IOException($"sock_diag dump of {what}: a netlink message of {messageLength} bytes at {at} of {length}");
                    if (type == NLMSG_DONE) return bodies;
                    if (type == NLMSG_ERROR) throw new SyscallException($"sock_diag dump of {what}", -BinaryPrimitives.ReadInt32LittleEndian(buffer.AsSpan(at + 16)), pid);
                    if (type == SOCK_DIAG_BY_FAMILY) bodies.Add(buffer.AsSpan(at + 16, messageLength - 16).ToArray());
                    at += (messageLength + 3) & ~3;
                }
            }
        }
        finally { Native.close(netlink); }
    }

    private static void Send(int netlink, ReadOnlySpan<byte> request, int pid, int flags = NLM_F_REQUEST)
    {
        // nlmsghdr {len, type, flags, seq, pid} then the request
        var message = new byte[16 + request.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(message, (uint)message.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(4), SOCK_DIAG_BY_FAMILY);
        BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(6), (ushort)flags);
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(8), 1);
        request.CopyTo(message.AsSpan(16));
        byte* kernel = stackalloc byte[12]; // sockaddr_nl {AF_NETLINK, pad, pid 0, groups 0}
        new Span<byte>(kernel, 12).Clear();
        kernel[0] = AF_NETLINK;
        fixed (byte* data = message)
        {
            if (sendto(netlink, data, (nuint)message.Length, 0, kernel, 12) != message.Length)
                throw new SyscallException("sendto(NETLINK_SOCK_DIAG)", Native.LastErrno, pid);
        }
    }

    private static byte[]? Receive(int netlink, int pid, string what)
    {
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
                throw new SyscallException($"sock_diag of {what}", error, pid);
            }
            if (type != SOCK_DIAG_BY_FAMILY || messageLength < 32)
                throw new IOException($"sock_diag of {what}: unexpected netlink message type {type} of {messageLength} bytes");
            return message[16..messageLength].ToArray();
        }
    }

    /// <summary>Each attribute {u16 len, u16 type, data, padded to 4} from <paramref name="at"/> on.</summary>
    public static IEnumerable<(int Type, byte[] Value)> Attributes(byte[] body, int at)
    {
        while (at + 4 <= body.Length)
        {
            int length = BinaryPrimitives.ReadUInt16LittleEndian(body.AsSpan(at));
            int kind = BinaryPrimitives.ReadUInt16LittleEndian(body.AsSpan(at + 2));
            if (length < 4 || at + length > body.Length) yield break;
            yield return (kind, body.AsSpan(at + 4, length - 4).ToArray());
            at += (length + 3) & ~3;
        }
    }
}
