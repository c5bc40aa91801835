using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SocketNative;

namespace Ckpt.Engine.Files.Sockets;

/// <summary>
/// Checkpoint side of established TCP connections (`ckpt checkpoint --tcp-established`). Each connection
/// is put in repair mode on an engine duplicate while the tree is frozen and read there: both sequence
/// numbers, both queues (MSG_PEEK: nothing consumed), the negotiated options, the timestamp clock and the
/// window. The duplicates stay in repair mode until the checkpoint ends, which keeps the connection silent:
/// - without --kill (and after any failure), <see cref="Release"/> leaves repair mode without a window probe
///   and puts SO_REUSEADDR back (leaving repair clears it), before the process runs again: the connection
///   goes on as if nothing happened;
/// - with --kill, <see cref="CloseAfterKill"/> closes them once the process is dead: the last close of a
///   socket in repair mode sends neither FIN nor RST, so the peer sees nothing.
/// A connection to a peer outside the tree is locked first (<see cref="NetworkLock"/>, an nftables table dropping
/// its packets both ways), before its queues are read: what the peer sends meanwhile is not acknowledged (it
/// sends it again), and between the kill and the restore its packets are not answered with RST. The lock goes
/// with <see cref="Release"/>; after <see cref="CloseAfterKill"/> it stays for `ckpt restore` to remove.
/// A connection whose both ends are in the tree needs none: both are frozen and closed in repair mode.
/// </summary>
public sealed class TcpConnectionCheckpoint(bool enabled, int rootPid = 0)
{
    private readonly List<(int Handle, bool ReuseAddress, int Pid, string Name)> _held = [];
    private readonly NetworkLock _lock = new(rootPid);

    /// <summary>--tcp-established: established connections are saved; otherwise they are refused by name.</summary>
    public bool Enabled { get; } = enabled;

    /// <summary>Reads the connection of <paramref name="socket"/> (frozen, ESTABLISHED) and keeps it in repair mode.</summary>
    public TcpConnectionImage Inspect(TargetSocket socket, SocketRecord record, string description, byte[] local, byte[] peer, IReadOnlyCollection<int> treePids)
    {
        if (!PeerInTree(socket, local, peer, treePids)) _lock.Add(socket.Family, local, peer, description);
        int handle = DuplicateFrom(socket.Pid, socket.Descriptor.Fd); // held until the checkpoint ends
        bool reuse = GetInt(handle, SOL_SOCKET, SO_REUSEADDR, socket.Pid, "SO_REUSEADDR") != 0;
        try { TcpRepairCalls.RepairOn(handle, socket.Pid, description); }
        catch { Native.close(handle); throw; }
        _held.Add((handle, reuse, socket.Pid, description));
        return Read(handle, socket.Pid, description, record);
    }

    // The other end is a socket of this machine (inet_diag by the reversed addresses) that a process of the tree holds.
    private static bool PeerInTree(TargetSocket socket, byte[] local, byte[] peer, IReadOnlyCollection<int> treePids) =>
        Ckpt.Engine.Linux.InetDiag.TcpInode(socket.Family, peer, local, socket.Pid) is { } inode && treePids.Any(pid => SocketOwners.Holds(pid, inode));

    private static TcpConnectionImage Read(int handle, int pid, string name, SocketRecord record)
    {
        uint unread = TcpRepairCalls.QueueLength(handle, "SIOCINQ", pid, name);
        uint unacknowledged = TcpRepairCalls.QueueLength(handle, "SIOCOUTQ", pid, name);
        uint unsent = TcpRepairCalls.QueueLength(handle, "SIOCOUTQNSD", pid, name);
        if (unread > TcpConnectionRecord.MaxQueueBytes || unacknowledged > TcpConnectionRecord.MaxQueueBytes)
            throw new CheckpointRefusedException($"{name} has {unread} bytes unread and {unacknowledged} unacknowledged: more than {TcpConnectionRecord.MaxQueueBytes} in a queue is unsupported");
        TcpInfo info = TcpInfo.Read(handle, pid, name);
        TcpRepairCalls.RepairWindow window = TcpRepairCalls.Window(handle, pid, name);
        var options = (TcpOptions)(info.Options & (uint)TcpOptions.All);
        var tcp = new TcpConnectionRecord
        {
            ObjRef = record.ObjRef, State = TcpState.Established,
            SendSequence = TcpRepairCalls.QueueSequence(handle, TcpQueue.Send, pid, name) - unacknowledged,
            ReceiveSequence = TcpRepairCalls.QueueSequence(handle, TcpQueue.Receive, pid, name) - unread,
            SendQueueBytes = unacknowledged, UnsentBytes = Math.Min(unsent, unacknowledged), ReceiveQueueBytes = unread,
            MaxSegmentSize = (uint)TcpRepairCalls.MaxSegmentSize(handle, pid, name), Options = options,
            SendWindowScale = options.HasFlag(TcpOptions.WindowScale) ? (byte)(info.WindowScales & 0xF) : (byte)0,
            ReceiveWindowScale = options.HasFlag(TcpOptions.WindowScale) ? (byte)(info.WindowScales >> 4) : (byte)0,
            Timestamp = options.HasFlag(TcpOptions.Timestamps) ? TcpRepairCalls.Timestamp(handle, pid, name) : 0,
            SendWindowUpdateSequence = window.SendWl1, SendWindow = window.SendWindow, MaxWindow = window.MaxWindow,
            ReceiveWindow = window.ReceiveWindow, ReceiveWindowUpdate = window.ReceiveWindowUpdate,
        };
        byte[] receive = TcpRepairCalls.PeekQueue(handle, TcpQueue.Receive, unread, pid, name);
        byte[] send = TcpRepairCalls.PeekQueue(handle, TcpQueue.Send, unacknowledged, pid, name);
        return new TcpConnectionImage(tcp, receive, send, 0);
    }

    /// <summary>The process runs on (or the checkpoint failed): every connection leaves repair mode as it was.</summary>
    public void Release()
    {
        List<Exception> failures = [];
        foreach ((int handle, bool reuse, int pid, string name) in _held)
        {
            try
            {
                TcpRepairCalls.RepairOff(handle, TcpRepairCalls.TCP_REPAIR_OFF_NO_WP, pid, name);
                if (reuse) SetInt(handle, SOL_SOCKET, SO_REUSEADDR, 1, pid, "SO_REUSEADDR");
            }
            catch (SyscallException e) { failures.Add(e); }
            finally { Native.close(handle); }
        }
        _held.Clear();
        try { _lock.Remove(); }
        catch (NetworkLockException e) { failures.Add(e); }
        if (failures.Count > 0) throw new AggregateException("leaving TCP repair mode and removing the network lock", failures);
    }

    /// <summary>The process is dead: closing the last reference in repair mode sends the peer nothing; the network lock stays until the restore.</summary>
    public void CloseAfterKill()
    {
        foreach ((int handle, _, _, _) in _held) Native.close(handle);
        _held.Clear();
    }
}

/// <summary>The start of struct tcp_info (linux/tcp.h).</summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
public struct TcpInfo
{
    public byte State, CaState, Retransmits, Probes, Backoff, Options, WindowScales, RateLimited;
    public uint Rto, Ato, SendMss, ReceiveMss, Unacked, Sacked;

    public static unsafe TcpInfo Read(int handle, int pid, string name)
    {
        TcpInfo info;
        uint length = (uint)sizeof(TcpInfo);
        if (getsockopt(handle, IPPROTO_TCP, TCP_INFO, &info, &length) != 0)
            throw new SyscallException("getsockopt(TCP_INFO)", Native.LastErrno, pid, name);
        return info;
    }
}
