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
/// at once and the checkpoint refused.
/// On a stream socket the descriptors belong to one segment (skb), and a read that reaches it returns them and stops
/// at its end. A peek does too, but only when its buffer is not full first (once it is, the kernel still walks on to
/// the next segment with descriptors and returns them): so a stream is peeked with a buffer larger than all it holds
/// (FIONREAD), and a peek that returns descriptors ends where their segment ends. Where the segment starts no peek
/// shows: the bytes before it since the previous segment with descriptors are saved as chunks of their own and the
/// last chunk (at most 64 KiB, ending at the segment's end) carries the descriptors. A restore sends each chunk
/// alone: a read that reaches the segment gets the same bytes and descriptors as before; one that reads a part of
/// that last chunk may get them earlier than it would have.
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
        var buffer = new byte[stream ? QueuedStreamBytes(socket) + 1 : SocketQueueRecord.MaxMessageLength + 1];
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
            if (stream)
            {
                // Chunks of at most MaxStreamChunk, the last one ending where the segment with the descriptors ends.
                int tail = Math.Min(bytes.Length, SocketQueueRecord.MaxStreamChunk);
                for (int at = 0; at < bytes.Length - tail; at += SocketQueueRecord.MaxStreamChunk)
                    queue.Add(bytes[at..Math.Min(at + SocketQueueRecord.MaxStreamChunk, bytes.Length - tail)]);
                bytes = bytes[^tail..];
            }
            if (fds.Count > 0) carried.Add(inFlight!.Inspect(socket.Name, queue.Count, fds));
            queue.Add(bytes);
            total += (ulong)length;
            if (total > SocketQueueRecord.MaxQueuedBytes || (uint)queue.Count > SocketQueueRecord.MaxQueuedMessages)
                throw new CheckpointRefusedException($"{socket.Name}: more than {SocketQueueRecord.MaxQueuedBytes} bytes or {SocketQueueRecord.MaxQueuedMessages} messages queued: unsupported");
        }
    }

    /// <summary>The bytes queued on a stream socket (FIONREAD), bounded by what an image holds.</summary>
    private static int QueuedStreamBytes(TargetSocket socket)
    {
        const ulong FIONREAD = 0x541B;
        int queued;
        if (Native.ioctl(socket.Handle, FIONREAD, &queued) != 0) throw new SyscallException("ioctl(FIONREAD)", Native.LastErrno, socket.Pid, socket.Name);
        if ((ulong)queued > SocketQueueRecord.MaxQueuedBytes)
            throw new CheckpointRefusedException($"{socket.Name}: more than {SocketQueueRecord.MaxQueuedBytes} bytes queued: unsupported");
        return queued;
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
