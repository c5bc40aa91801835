using System.Runtime.InteropServices;
using Ckpt.Engine.Linux;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SocketNative;

namespace Ckpt.Engine.Files.Sockets;

/// <summary>
/// TCP_REPAIR on a socket the engine holds (a pidfd_getfd duplicate of the process's socket), both sides.
/// The kernel checks CAP_NET_ADMIN of the caller, the engine, not of the process; in repair mode a socket
/// sends nothing: reads with MSG_PEEK see either queue, writes fill a queue, connect() sends no SYN, and a
/// close sends neither FIN nor RST (tcp_disconnect). Every failure names the call, the errno and the socket.
/// </summary>
public static unsafe partial class TcpRepairCalls
{
    public const int TCP_MAXSEG = 2, TCP_REPAIR = 19, TCP_REPAIR_QUEUE = 20, TCP_QUEUE_SEQ = 21, TCP_REPAIR_OPTIONS = 22,
        TCP_TIMESTAMP = 24, TCP_REPAIR_WINDOW = 29;
    public const int TCP_REPAIR_ON = 1, TCP_REPAIR_OFF = 0, TCP_REPAIR_OFF_NO_WP = -1;
    private const int TCP_NO_QUEUE = 0;
    private const ulong SIOCINQ = 0x541B, SIOCOUTQ = 0x5411, SIOCOUTQNSD = 0x894B;
    private const uint TCPOPT_MSS = 2, TCPOPT_WINDOW = 3, TCPOPT_SACK_PERM = 4, TCPOPT_TIMESTAMP = 8;

    [StructLayout(LayoutKind.Sequential)]
    public struct RepairWindow // struct tcp_repair_window
    {
        public uint SendWl1, SendWindow, MaxWindow, ReceiveWindow, ReceiveWindowUpdate;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int connect(int fd, byte* address, uint length);

    /// <summary>Turns repair mode on; EPERM means the engine lacks CAP_NET_ADMIN.</summary>
    public static void RepairOn(int handle, int pid, string socket)
    {
        int on = TCP_REPAIR_ON;
        if (setsockopt(handle, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(int)) == 0) return;
        int errno = Native.LastErrno;
        throw new SyscallException("setsockopt(TCP_REPAIR, on)", errno, pid,
            errno == Errno.EPERM ? $"{socket}: TCP_REPAIR needs CAP_NET_ADMIN, which the engine does not have" : socket);
    }

    /// <summary>Leaves repair mode; <paramref name="mode"/> TCP_REPAIR_OFF sends a window probe, TCP_REPAIR_OFF_NO_WP nothing.</summary>
    public static void RepairOff(int handle, int mode, int pid, string socket)
    {
        if (setsockopt(handle, IPPROTO_TCP, TCP_REPAIR, &mode, sizeof(int)) != 0)
            throw new SyscallException("setsockopt(TCP_REPAIR, off)", Native.LastErrno, pid, socket);
    }

    public static void SelectQueue(int handle, int queue, int pid, string socket) =>
        Set(handle, TCP_REPAIR_QUEUE, queue, pid, socket, $"TCP_REPAIR_QUEUE, {queue}");

    /// <summary>TCP_QUEUE_SEQ of a queue: write_seq of the send queue, rcv_nxt of the receive queue.</summary>
    public static uint QueueSequence(int handle, TcpQueue queue, int pid, string socket)
    {
        SelectQueue(handle, (int)queue, pid, socket);
        return (uint)Get(handle, TCP_QUEUE_SEQ, pid, socket, "TCP_QUEUE_SEQ");
    }

    public static void SetQueueSequence(int handle, TcpQueue queue, uint sequence, int pid, string socket)
    {
        SelectQueue(handle, (int)queue, pid, socket);
        Set(handle, TCP_QUEUE_SEQ, (int)sequence, pid, socket, $"TCP_QUEUE_SEQ of the {queue} queue, {sequence}");
    }

    /// <summary>SIOCINQ, SIOCOUTQ or SIOCOUTQNSD: bytes unread, unacknowledged, never sent.</summary>
    public static uint QueueLength(int handle, string which, int pid, string socket)
    {
        ulong request = which switch { "SIOCINQ" => SIOCINQ, "SIOCOUTQ" => SIOCOUTQ, _ => SIOCOUTQNSD };
        int value = 0;
        if (Native.ioctl(handle, request, &value) != 0) throw new SyscallException($"ioctl({which})", Native.LastErrno, pid, socket);
        return (uint)value;
    }

    /// <summary>All <paramref name="length"/> bytes of a queue, with MSG_PEEK in repair mode (nothing is consumed).</summary>
    public static byte[] PeekQueue(int handle, TcpQueue queue, uint length, int pid, string socket)
    {
        var bytes = new byte[length];
        if (length == 0) return bytes;
        SelectQueue(handle, (int)queue, pid, socket);
        fixed (byte* buffer = bytes)
        {
            nint got = recv(handle, buffer, length, MSG_PEEK | MSG_DONTWAIT);
            if (got < 0) throw new SyscallException($"recv(MSG_PEEK) of the {queue} queue", Native.LastErrno, pid, socket);
            if (got != length) throw new IOException($"{socket}: peeked {got} bytes of the {queue} queue, the kernel counts {length}");
        }
        SelectQueue(handle, TCP_NO_QUEUE, pid, socket);
        return bytes;
    }

    /// <summary>Fills a queue in repair mode (the receive queue: as received; the send queue: as sent, unacknowledged).</summary>
    public static void FillQueue(int handle, TcpQueue queue, ReadOnlySpan<byte> bytes, int pid, string socket)
    {
        if (bytes.Length == 0) return;
        SelectQueue(handle, (int)queue, pid, socket);
        Send(handle, bytes, pid, socket, $"the {queue} queue");
    }

    /// <summary>send() of every byte, MSG_DONTWAIT: a queue that does not fit fails instead of blocking.</summary>
    public static void Send(int handle, ReadOnlySpan<byte> bytes, int pid, string socket, string what)
    {
        fixed (byte* start = bytes)
            for (int done = 0; done < bytes.Length;)
            {
                int chunk = Math.Min(bytes.Length - done, TcpConnectionRecord.MaxChunk);
                nint sent = sendto(handle, start + done, (nuint)chunk, MSG_DONTWAIT, null, 0);
                if (sent <= 0) throw new SyscallException($"send of {bytes.Length - done} bytes of {what}", sent < 0 ? Native.LastErrno : 0, pid, $"{socket}: {done} of {bytes.Length} went in");
                done += (int)sent;
            }
    }

    public static int MaxSegmentSize(int handle, int pid, string socket) => Get(handle, TCP_MAXSEG, pid, socket, "TCP_MAXSEG");

    public static uint Timestamp(int handle, int pid, string socket) => (uint)Get(handle, TCP_TIMESTAMP, pid, socket, "TCP_TIMESTAMP");

    public static void SetTimestamp(int handle, uint value, int pid, string socket) => Set(handle, TCP_TIMESTAMP, (int)value, pid, socket, $"TCP_TIMESTAMP, {value}");

    public static RepairWindow Window(int handle, int pid, string socket)
    {
        RepairWindow window;
        uint length = (uint)sizeof(RepairWindow);
        if (getsockopt(handle, IPPROTO_TCP, TCP_REPAIR_WINDOW, &window, &length) != 0)
            throw new SyscallException("getsockopt(TCP_REPAIR_WINDOW)", Native.LastErrno, pid, socket);
        return window;
    }

    public static void SetWindow(int handle, RepairWindow window, int pid, string socket)
    {
        if (setsockopt(handle, IPPROTO_TCP, TCP_REPAIR_WINDOW, &window, (uint)sizeof(RepairWindow)) != 0)
            throw new SyscallException($"setsockopt(TCP_REPAIR_WINDOW: snd_wl1 {window.SendWl1}, snd_wnd {window.SendWindow}, max_window {window.MaxWindow}, rcv_wnd {window.ReceiveWindow}, rcv_wup {window.ReceiveWindowUpdate})", Native.LastErrno, pid, socket);
    }

    /// <summary>TCP_REPAIR_OPTIONS: the options the handshake negotiated (after connect, which resets them).</summary>
    public static void SetOptions(int handle, TcpConnectionRecord tcp, int pid, string socket)
    {
        uint* options = stackalloc uint[8];
        int count = 0;
        void Add(uint code, uint value) { options[2 * count] = code; options[2 * count + 1] = value; count++; }
        Add(TCPOPT_MSS, tcp.MaxSegmentSize);
        if (tcp.Options.HasFlag(TcpOptions.WindowScale)) Add(TCPOPT_WINDOW, tcp.SendWindowScale | ((uint)tcp.ReceiveWindowScale << 16));
        if (tcp.Options.HasFlag(TcpOptions.Sack)) Add(TCPOPT_SACK_PERM, 0);
        if (tcp.Options.HasFlag(TcpOptions.Timestamps)) Add(TCPOPT_TIMESTAMP, 0);
        if (setsockopt(handle, IPPROTO_TCP, TCP_REPAIR_OPTIONS, options, (uint)(count * 8)) != 0)
            throw new SyscallException($"setsockopt(TCP_REPAIR_OPTIONS: mss {tcp.MaxSegmentSize}, {tcp.Options})", Native.LastErrno, pid, socket);
    }

    /// <summary>connect() in repair mode: the socket becomes ESTABLISHED without a packet sent.</summary>
    public static void Connect(int handle, ReadOnlySpan<byte> peer, int pid, string socket)
    {
        fixed (byte* address = peer)
            if (connect(handle, address, (uint)peer.Length) != 0)
                throw new SyscallException("connect in repair mode", Native.LastErrno, pid, socket);
    }

    private static int Get(int handle, int name, int pid, string socket, string what)
    {
        int value = 0;
        uint length = sizeof(int);
        if (getsockopt(handle, IPPROTO_TCP, name, &value, &length) != 0) throw new SyscallException($"getsockopt({what})", Native.LastErrno, pid, socket);
        return value;
    }

    private static void Set(int handle, int name, int value, int pid, string socket, string what)
    {
        if (setsockopt(handle, IPPROTO_TCP, name, &value, sizeof(int)) != 0) throw new SyscallException($"setsockopt({what})", Native.LastErrno, pid, socket);
    }
}
