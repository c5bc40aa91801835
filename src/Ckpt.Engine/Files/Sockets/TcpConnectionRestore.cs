using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SocketNative;

namespace Ckpt.Engine.Files.Sockets;

/// <summary>
/// Restore side of established TCP connections (<see cref="TcpConnectionCheckpoint"/> is the other), one per
/// restore, for every process of the tree. The socket is made by the process (injected socket(), its options,
/// and bind() with its own credentials: a port below 1024 needs its CAP_NET_BIND_SERVICE); the repair steps
/// are done by the engine on a pidfd_getfd duplicate, since TCP_REPAIR needs CAP_NET_ADMIN in the caller:
/// repair on (which also lets bind share the port with a listener or a connection in TIME_WAIT), both queue
/// sequence numbers, connect() to the peer (no SYN), the negotiated options, the timestamp clock, the receive
/// queue and the sent part of the send queue, the window. Every connection stays in repair mode, silent,
/// until <see cref="LeaveRepair"/> once the whole tree is restored and the image's checksum verified (both
/// ends of a connection inside the tree exist by then; a window probe before would meet no socket and
/// bring an RST); the never-sent tail of the send queue is then sent normally. A failed restore closes the
/// duplicates still in repair mode (<see cref="Abandon"/>): the peer sees nothing.
/// </summary>
public sealed class TcpConnectionRestore
{
    private readonly List<Held> _held = [];

    private sealed record Held(int Handle, SocketImage Socket, int Pid, string Name);

    /// <summary>The first established connection of the image, described, or null: for the trust check (docs/SECURITY.md).</summary>
    public static string? FirstConnection(RestorePlan plan) =>
        plan.Image.Processes.SelectMany(p => p.FileTable.Files.Values.Select(f => (p.Pid, f.Socket)))
            .Where(s => s.Socket?.Tcp is not null)
            .Select(s => $"{s.Socket!.Description} {s.Socket.LocalAddress} -> {s.Socket.PeerAddress} of process {s.Pid}")
            .FirstOrDefault();

    /// <summary>Before any process exists: the engine must be able to use TCP_REPAIR.</summary>
    public static void Validate(FileImage file, int fd)
    {
        if (!EngineHasNetAdmin())
            throw new RestoreRefusedException($"fd {fd} is an established TCP connection ({file.Socket!.LocalAddress} -> {file.Socket.PeerAddress}): restoring it needs TCP_REPAIR, which needs CAP_NET_ADMIN, and the engine does not have it (restore as root)");
    }

    /// <summary>Injected into the task and done on the engine's duplicate: the connection, in repair mode, at a new descriptor.</summary>
    public long Open(SyscallInjector syscalls, ScratchArea scratch, FileImage file, int fd)
    {
        SocketImage socket = file.Socket!;
        TcpConnectionImage tcp = socket.Tcp!;
        int pid = syscalls.Pid;
        string name = $"fd {fd} of process {pid} ({socket.Description} {socket.LocalAddress} -> {socket.PeerAddress})";
        long created = InjectedSocketCalls.Socket(syscalls, socket.Record, fd);
        SocketOptionValues.Apply(syscalls, scratch, created, fd, socket.Record);
        var held = new Held(DuplicateFrom(pid, (int)created), socket, pid, name);
        _held.Add(held);
        int handle = held.Handle;
        RoomForQueues(handle, socket.Record, pid);
        TcpRepairCalls.RepairOn(handle, pid, name);
        InjectedSocketCalls.Bind(syscalls, scratch, created, fd, socket);
        TcpRepairCalls.SetQueueSequence(handle, TcpQueue.Receive, tcp.Record.ReceiveSequence, pid, name);
        TcpRepairCalls.SetQueueSequence(handle, TcpQueue.Send, tcp.Record.SendSequence, pid, name);
        TcpRepairCalls.Connect(handle, PeerAddress(socket.Record), pid, name);
        TcpRepairCalls.SetOptions(handle, tcp.Record, pid, name);
        if (tcp.Record.Options.HasFlag(TcpOptions.Timestamps)) TcpRepairCalls.SetTimestamp(handle, tcp.Record.Timestamp, pid, name);
        TcpRepairCalls.FillQueue(handle, TcpQueue.Receive, tcp.ReceiveQueue, pid, name);
        TcpRepairCalls.FillQueue(handle, TcpQueue.Send, tcp.SentQueue, pid, name);
        TcpConnectionRecord r = tcp.Record;
        TcpRepairCalls.SetWindow(handle, new TcpRepairCalls.RepairWindow
        {
            SendWl1 = r.SendWindowUpdateSequence, SendWindow = r.SendWindow, MaxWindow = r.MaxWindow,
            ReceiveWindow = r.ReceiveWindow, ReceiveWindowUpdate = r.ReceiveWindowUpdate,
        }, pid, name);
        InjectedSocketCalls.StatusFlags(syscalls, created, fd, file.Record);
        return created;
    }

    /// <summary>
    /// Every process is restored: each connection leaves repair mode (a window probe tells the peer the
    /// window), gets SO_REUSEADDR back if it had it (leaving repair clears it), sends what had never been
    /// sent, and gets its recorded buffer sizes back (kept fixed from then on, as a program's setsockopt would).
    /// </summary>
    public void LeaveRepair()
    {
        while (_held.Count > 0)
        {
            Held held = _held[0];
            try
            {
                TcpRepairCalls.RepairOff(held.Handle, TcpRepairCalls.TCP_REPAIR_OFF, held.Pid, held.Name);
                if (held.Socket.Record.Options.HasFlag(SocketOptions.ReuseAddress)) SetInt(held.Handle, SOL_SOCKET, SO_REUSEADDR, 1, held.Pid, "SO_REUSEADDR");
                TcpRepairCalls.Send(held.Handle, held.Socket.Tcp!.UnsentQueue, held.Pid, held.Name, "the never-sent part of the send queue");
                RecordedBuffers(held.Handle, held.Socket.Record, held.Pid);
            }
            finally
            {
                Native.close(held.Handle);
                _held.RemoveAt(0);
            }
        }
    }

    /// <summary>A failed restore: the duplicates still in repair mode are closed, which sends the peer nothing.</summary>
    public void Abandon()
    {
        foreach (Held held in _held) Native.close(held.Handle);
        _held.Clear();
    }

    private const int SO_SNDBUFFORCE = 32, SO_RCVBUFFORCE = 33;

    /// <summary>
    /// The queues must fit again, though the restore writes them in other pieces than the program did (the kernel
    /// charges each piece's overhead) and the kernel may have grown the buffers beyond what setsockopt may ask
    /// for (autotuning past net.core.wmem_max/rmem_max): while the queues are filled the engine doubles both
    /// buffers with SO_SNDBUFFORCE/SO_RCVBUFFORCE (CAP_NET_ADMIN); <see cref="RecordedBuffers"/> puts the
    /// recorded sizes back once every byte is in.
    /// </summary>
    private static void RoomForQueues(int handle, SocketRecord record, int pid)
    {
        SetInt(handle, SOL_SOCKET, SO_SNDBUFFORCE, record.SendBuffer, pid, "SO_SNDBUFFORCE");
        SetInt(handle, SOL_SOCKET, SO_RCVBUFFORCE, record.ReceiveBuffer, pid, "SO_RCVBUFFORCE");
    }

    /// <summary>The sizes getsockopt reported at checkpoint (the kernel doubles what is asked).</summary>
    private static void RecordedBuffers(int handle, SocketRecord record, int pid)
    {
        SetInt(handle, SOL_SOCKET, SO_SNDBUFFORCE, record.SendBuffer / 2, pid, "SO_SNDBUFFORCE");
        SetInt(handle, SOL_SOCKET, SO_RCVBUFFORCE, record.ReceiveBuffer / 2, pid, "SO_RCVBUFFORCE");
    }

    private static unsafe byte[] PeerAddress(SocketRecord record) => new ReadOnlySpan<byte>(record.PeerAddress, (int)record.PeerAddressLength).ToArray();

    /// <summary>CAP_NET_ADMIN (12) in the engine's effective set, from /proc/self/status.</summary>
    private static bool EngineHasNetAdmin()
    {
        const int CAP_NET_ADMIN = 12;
        string? line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("CapEff:", StringComparison.Ordinal));
        return line is not null && (Convert.ToUInt64(line[7..].Trim(), 16) & (1UL << CAP_NET_ADMIN)) != 0;
    }
}
