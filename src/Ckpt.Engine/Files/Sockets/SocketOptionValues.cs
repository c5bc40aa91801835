using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SocketNative;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Files.Sockets;

/// <summary>
/// The socket options a program sets, both sides: read with getsockopt on the engine's duplicate of the
/// target's socket into a SOCKET record; restored with injected setsockopt calls, only where the record
/// differs from what a fresh socket of the same kind gets here (so a buffer the kernel sizes itself
/// stays the kernel's to size, and a keepalive default stays a default).
/// </summary>
public static class SocketOptionValues
{
    public static SocketRecord Read(int handle, int family, int protocol, int pid, SocketRecord record)
    {
        int Int(int level, int name, string what) => GetInt(handle, level, name, pid, what);
        SocketOptions options = 0;
        if (Int(SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR") != 0) options |= SocketOptions.ReuseAddress;
        if (Int(SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT") != 0) options |= SocketOptions.ReusePort;
        if (Int(SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE") != 0) options |= SocketOptions.KeepAlive;
        if (family == AF_UNIX && Int(SOL_SOCKET, SO_PASSCRED, "SO_PASSCRED") != 0) options |= SocketOptions.PassCredentials; // unix only (EOPNOTSUPP elsewhere)
        record.SendBuffer = Int(SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF");
        record.ReceiveBuffer = Int(SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF");
        record.ReceiveTimeoutMicroseconds = GetTimeoutMicroseconds(handle, SO_RCVTIMEO, pid);
        record.SendTimeoutMicroseconds = GetTimeoutMicroseconds(handle, SO_SNDTIMEO, pid);
        if (protocol == IPPROTO_TCP)
        {
            if (Int(IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY") != 0) options |= SocketOptions.NoDelay;
            record.KeepIdle = Int(IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE");
            record.KeepInterval = Int(IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL");
            record.KeepCount = Int(IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT");
        }
        if (family == AF_INET6 && Int(IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY") != 0) options |= SocketOptions.V6Only;
        record.Options |= options;
        return record;
    }

    /// <summary>The options a socket of this family, type and protocol has when created here and now.</summary>
    public static SocketRecord Fresh(int family, int type, int protocol)
    {
        int handle = socket(family, type | SOCK_CLOEXEC, protocol);
        if (handle < 0) throw new SyscallException($"socket({family}, {type}, {protocol}) for the default options", Native.LastErrno, Environment.ProcessId);
        try { return Read(handle, family, protocol, Environment.ProcessId, new SocketRecord()); }
        finally { Native.close(handle); }
    }

    /// <summary>Restore, injected: every option of <paramref name="wanted"/> that a fresh socket does not already have. Before bind (V6ONLY, REUSE* must be).</summary>
    public static void Apply(SyscallInjector syscalls, ScratchArea scratch, long socketFd, int fd, SocketRecord wanted)
    {
        int family = (int)wanted.Family, protocol = wanted.Protocol;
        SocketRecord fresh = Fresh(family, (int)wanted.SocketType, protocol);
        void Set(int level, int name, string what, int value)
        {
            scratch.Reset();
            syscalls.Call($"setsockopt({what}, {value}) of fd {fd}", SYS_setsockopt, (ulong)socketFd, (ulong)level, (ulong)name, scratch.PutStruct(value), sizeof(int));
        }
        void Flag(SocketOptions option, int level, int name, string what)
        {
            if ((wanted.Options & option) != (fresh.Options & option)) Set(level, name, what, (wanted.Options & option) != 0 ? 1 : 0);
        }
        if (family == AF_INET6) Flag(SocketOptions.V6Only, IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY");
        Flag(SocketOptions.ReuseAddress, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR");
        Flag(SocketOptions.ReusePort, SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT");
        Flag(SocketOptions.KeepAlive, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE");
        if (family == AF_UNIX) Flag(SocketOptions.PassCredentials, SOL_SOCKET, SO_PASSCRED, "SO_PASSCRED");
        // getsockopt reports twice what setsockopt asked for (the kernel's bookkeeping share)
        if (wanted.SendBuffer != fresh.SendBuffer) Set(SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF", wanted.SendBuffer / 2);
        if (wanted.ReceiveBuffer != fresh.ReceiveBuffer) Set(SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF", wanted.ReceiveBuffer / 2);
        SetTimeout(syscalls, scratch, socketFd, fd, SO_RCVTIMEO, wanted.ReceiveTimeoutMicroseconds);
        SetTimeout(syscalls, scratch, socketFd, fd, SO_SNDTIMEO, wanted.SendTimeoutMicroseconds);
        if (protocol != IPPROTO_TCP) return;
        Flag(SocketOptions.NoDelay, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY");
        if (wanted.KeepIdle != fresh.KeepIdle) Set(IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE", wanted.KeepIdle);
        if (wanted.KeepInterval != fresh.KeepInterval) Set(IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL", wanted.KeepInterval);
        if (wanted.KeepCount != fresh.KeepCount) Set(IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT", wanted.KeepCount);
    }

    private static void SetTimeout(SyscallInjector syscalls, ScratchArea scratch, long socketFd, int fd, int name, long microseconds)
    {
        if (microseconds == 0) return; // a fresh socket has none
        scratch.Reset();
        var value = new TimeValue { Seconds = microseconds / 1_000_000, Microseconds = microseconds % 1_000_000 };
        string what = name == SO_RCVTIMEO ? "SO_RCVTIMEO" : "SO_SNDTIMEO";
        syscalls.Call($"setsockopt({what}, {microseconds} us) of fd {fd}", SYS_setsockopt, (ulong)socketFd, SOL_SOCKET, (ulong)name, scratch.PutStruct(value), 16);
    }
}
