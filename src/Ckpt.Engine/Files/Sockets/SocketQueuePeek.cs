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
/// Descriptors in flight (SCM_RIGHTS) would be installed into the engine by a peek: they are closed at
/// once and the checkpoint refused, since they are not restored.
/// </summary>
public static unsafe class SocketQueuePeek
{
    private const int ControlLength = 4096;

    public static List<byte[]> Read(TargetSocket socket, bool receiveShutdown)
    {
        int original = GetInt(socket.Handle, SOL_SOCKET, SO_PEEK_OFF, socket.Pid, "SO_PEEK_OFF");
        SetInt(socket.Handle, SOL_SOCKET, SO_PEEK_OFF, 0, socket.Pid, "SO_PEEK_OFF");
        try { return ReadAll(socket, receiveShutdown); }
        finally { SetInt(socket.Handle, SOL_SOCKET, SO_PEEK_OFF, original, socket.Pid, "SO_PEEK_OFF"); }
    }

    private static List<byte[]> ReadAll(TargetSocket socket, bool receiveShutdown)
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
            // 0 is the end of a stream; after the receive side was shut down it also ends a datagram queue
            // (an empty datagram queued after the shutdown cannot be told from the end: it is not kept).
            if (length == 0 && (stream || receiveShutdown)) return queue;
            if ((flags & MSG_TRUNC) != 0)
                throw new CheckpointRefusedException($"{socket.Name}: a queued message is longer than {SocketQueueRecord.MaxMessageLength} bytes: unsupported");
            RefuseControlMessages(socket, control, flags);
            queue.Add(buffer.AsSpan(0, (int)length).ToArray());
            total += (ulong)length;
            if (total > SocketQueueRecord.MaxQueuedBytes || (uint)queue.Count > SocketQueueRecord.MaxQueuedMessages)
                throw new CheckpointRefusedException($"{socket.Name}: more than {SocketQueueRecord.MaxQueuedBytes} bytes or {SocketQueueRecord.MaxQueuedMessages} messages queued: unsupported");
        }
    }

    private static nint Peek(TargetSocket socket, byte[] buffer, byte[] control, out int flags)
    {
        fixed (byte* data = buffer, controlData = control)
        {
            var iov = new Native.Iovec { Base = (nint)data, Length = (nuint)buffer.Length };
            var message = new MessageHeader { Iov = &iov, IovLength = 1, Control = controlData, ControlLength = (nuint)control.Length };
            nint length = recvmsg(socket.Handle, &message, MSG_PEEK | MSG_DONTWAIT);
            flags = message.Flags;
            if (length >= 0) control.AsSpan((int)message.ControlLength).Clear();
            return length;
        }
    }

    /// <summary>SCM_RIGHTS: close what the peek installed here, then refuse; credentials (SCM_CREDENTIALS) are the sender's, the restored process.</summary>
    private static void RefuseControlMessages(TargetSocket socket, byte[] control, int flags)
    {
        int passed = 0;
        for (int at = 0; at + 16 <= control.Length;)
        {
            long length = BitConverter.ToInt64(control, at); // struct cmsghdr {size_t len; int level; int type;}
            if (length < 16 || at + length > control.Length) break;
            int level = BitConverter.ToInt32(control, at + 8), type = BitConverter.ToInt32(control, at + 12);
            if (level == SOL_SOCKET && type == SCM_RIGHTS)
                for (int i = 0; i < (length - 16) / 4; i++, passed++) Native.close(BitConverter.ToInt32(control, at + 16 + 4 * i));
            at += (int)((length + 7) & ~7L);
        }
        if (passed > 0 || (flags & MSG_CTRUNC) != 0)
            throw new CheckpointRefusedException($"{socket.Name}: descriptors are in flight in its receive queue (SCM_RIGHTS{(passed > 0 ? $", {passed} of them" : "")}): unsupported");
    }
}
