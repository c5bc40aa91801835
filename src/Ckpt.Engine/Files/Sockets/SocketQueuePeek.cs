using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SocketNative;

namespace Ckpt.Engine.Files.Sockets;

/// <summary>
/// Reads a unix socket's receive queue without consuming it: MSG_PEEK with SO_PEEK_OFF set to 0 on the
/// engine's duplicate, so each peek continues where the previous one stopped (a datagram or seqpacket
/// peek returns one message, boundaries kept, a zero-length message included); the socket's own peek
/// offset is put back afterwards. The target is frozen meanwhile, so the queue cannot change.
/// Descriptors in flight (SCM_RIGHTS): a peek installs a new descriptor in the engine for each file the
/// message carries (the message stays queued, its files too). With <see cref="InFlightFiles"/> each becomes a
/// file object of the image (the engine's copies are closed when the checkpoint ends); without, they are closed
/// at once and the checkpoint refused. On a stream socket the descriptors belong to one segment (skb) and a read
/// stops at its end: a peek that returns them ends there too, and where the segment starts is found by peeking
/// single bytes (binary search: only the segment's bytes come with descriptors), so the segment is saved as its
/// own chunk and sent alone again at restore.
/// </summary>
public static unsafe class SocketQueuePeek
{
    private const int ControlLength = 4096;

    /// <summary>The queue; descriptors in flight refused.</summary>
    public static List<byte[]> Read(TargetSocket socket, bool receiveShutdown) => Read(socket, receiveShutdown, null, out _);

    /// <param name="inFlight">where descriptors in flight become file objects; null: refused</param>
    /// <param name="carried">the messages (by index in the queue returned) that carry descriptors</param>
    public static List<byte[]> Read(TargetSocket socket, bool receiveShutdown, InFlightFiles? inFlight, out List<InFlightFiles.Message> carried)
    {
        int original = GetInt(socket.Handle, SOL_SOCKET, SO_PEEK_OFF, socket.Pid, "SO_PEEK_OFF");
        SetInt(socket.Handle, SOL_SOCKET, SO_PEEK_OFF, 0, socket.Pid, "SO_PEEK_OFF");
        carried = [];
        try { return ReadAll(socket, receiveShutdown, inFlight, carried); }
        finally { SetInt(socket.Handle, SOL_SOCKET, SO_PEEK_OFF, original, socket.Pid, "SO_PEEK_OFF"); }
    }

    private static List<byte[]> ReadAll(TargetSocket socket, bool receiveShutdown, InFlightFiles? inFlight, List<InFlightFiles.Message> carried)
    {
        bool stream = socket.Type == SOCK_STREAM;
        var queue = new List<byte[]>();
        var buffer = new byte[stream ? SocketQueueRecord.MaxStreamChunk : SocketQueueRecord.MaxMessageLength + 1];
        var control = new byte[ControlLength];
        ulong total = 0;
        while (true)
        {
            nint length = Peek(socket, buffer, control, out int flags);
            if (length < 0)
            {
                int errno = Native.LastErrno;
                if (errno == Errno.EAGAIN) return queue;
                throw new SyscallException("recvmsg(MSG_PEEK) of the engine's duplicate", errno, socket.Pid, socket.Name);
            }
            List<int> fds = DescriptorsIn(control);
            if (inFlight is null) fds.ForEach(fd => Native.close(fd));
            else fds.ForEach(inFlight.Copies.Adopt);
            if ((flags & MSG_CTRUNC) != 0)
                throw new CheckpointRefusedException($"{socket.Name}: a queued message carries more descriptors in flight (SCM_RIGHTS) than the engine could receive (MSG_CTRUNC): unsupported");
            if (fds.Count > 0 && inFlight is null)
                throw new CheckpointRefusedException($"{socket.Name}: descriptors are in flight in its receive queue (SCM_RIGHTS, {fds.Count} of them): unsupported");
            // 0 is the end of a stream; after the receive side was shut down it also ends a datagram queue
            // (an empty datagram queued after the shutdown cannot be told from the end: it is not kept).
            if (length == 0 && fds.Count == 0 && (stream || receiveShutdown)) return queue;
            if ((flags & MSG_TRUNC) != 0)
                throw new CheckpointRefusedException($"{socket.Name}: a queued message is longer than {SocketQueueRecord.MaxMessageLength} bytes: unsupported");
            byte[] bytes = buffer.AsSpan(0, (int)length).ToArray();
            if (stream && fds.Count > 0 && SegmentStart(socket, total, (int)length, control) is var start and > 0)
            {
                queue.Add(bytes[..start]); // bytes of earlier segments, without descriptors
                bytes = bytes[start..];
            }
            if (fds.Count > 0) carried.Add(inFlight!.Inspect(socket.Name, queue.Count, fds));
            queue.Add(bytes);
            total += (ulong)length;
            if (total > SocketQueueRecord.MaxQueuedBytes || (uint)queue.Count > SocketQueueRecord.MaxQueuedMessages)
                throw new CheckpointRefusedException($"{socket.Name}: more than {SocketQueueRecord.MaxQueuedBytes} bytes or {SocketQueueRecord.MaxQueuedMessages} messages queued: unsupported");
        }
    }

    /// <summary>
    /// Within the <paramref name="length"/> bytes a stream peek at <paramref name="offset"/> returned with descriptors:
    /// where the segment carrying them starts (the first byte a one-byte peek returns with descriptors). The peek
    /// offset is left after the bytes, as the peek that returned them left it; the descriptors these peeks install are closed.
    /// </summary>
    private static int SegmentStart(TargetSocket socket, ulong offset, int length, byte[] control)
    {
        var one = new byte[1];
        int low = 0, high = length - 1; // the last byte is the segment's
        while (low < high)
        {
            int middle = (low + high) / 2;
            SetInt(socket.Handle, SOL_SOCKET, SO_PEEK_OFF, checked((int)offset + middle), socket.Pid, "SO_PEEK_OFF");
            nint got = Peek(socket, one, control, out _);
            if (got != 1) throw new SyscallException("recvmsg(MSG_PEEK) of one queued byte", got < 0 ? Native.LastErrno : 0, socket.Pid, socket.Name);
            List<int> fds = DescriptorsIn(control);
            fds.ForEach(fd => Native.close(fd));
            if (fds.Count > 0) high = middle;
            else low = middle + 1;
        }
        SetInt(socket.Handle, SOL_SOCKET, SO_PEEK_OFF, checked((int)offset + length), socket.Pid, "SO_PEEK_OFF");
        return low;
    }

    private static nint Peek(TargetSocket socket, byte[] buffer, byte[] control, out int flags)
    {
        fixed (byte* data = buffer, controlData = control)
        {
            var iov = new Native.Iovec { Base = (nint)data, Length = (nuint)buffer.Length };
            var message = new MessageHeader { Iov = &iov, IovLength = 1, Control = controlData, ControlLength = (nuint)control.Length };
            // MSG_CMSG_CLOEXEC: the engine's copies must not reach a program the engine starts.
            nint length = recvmsg(socket.Handle, &message, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
            flags = message.Flags;
            control.AsSpan(length >= 0 ? (int)message.ControlLength : 0).Clear();
            return length;
        }
    }

    /// <summary>The descriptors SCM_RIGHTS control messages installed, in order; credentials (SCM_CREDENTIALS) are the sender's, the restored process.</summary>
    private static List<int> DescriptorsIn(byte[] control)
    {
        var fds = new List<int>();
        for (int at = 0; at + 16 <= control.Length;)
        {
            long length = BitConverter.ToInt64(control, at); // struct cmsghdr {size_t len; int level; int type;}
            if (length < 16 || at + length > control.Length) break;
            int level = BitConverter.ToInt32(control, at + 8), type = BitConverter.ToInt32(control, at + 12);
            if (level == SOL_SOCKET && type == SCM_RIGHTS)
                for (int i = 0; i < (length - 16) / 4; i++) fds.Add(BitConverter.ToInt32(control, at + 16 + 4 * i));
            at += (int)((length + 7) & ~7L);
        }
        return fds;
    }
}
