using System.Runtime.InteropServices;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Linux;

/// <summary>The socket calls the engine makes on its own descriptors (x86-64 layouts), and their constants.</summary>
#pragma warning disable IDE1006 // named as in the kernel's headers
public static unsafe partial class SocketNative
{
    public const int AF_UNIX = 1, AF_INET = 2, AF_INET6 = 10, AF_NETLINK = 16;
    public const int SOCK_STREAM = 1, SOCK_DGRAM = 2, SOCK_RAW = 3, SOCK_SEQPACKET = 5, SOCK_NONBLOCK = 0x800, SOCK_CLOEXEC = 0x80000;
    public const int SOL_SOCKET = 1, IPPROTO_TCP = 6, IPPROTO_UDP = 17, IPPROTO_IPV6 = 41;
    public const int SO_REUSEADDR = 2, SO_TYPE = 3, SO_SNDBUF = 7, SO_RCVBUF = 8, SO_KEEPALIVE = 9, SO_REUSEPORT = 15,
        SO_PASSCRED = 16, SO_RCVTIMEO = 20, SO_SNDTIMEO = 21, SO_PROTOCOL = 38, SO_DOMAIN = 39, SO_PEEK_OFF = 42;
    public const int TCP_NODELAY = 1, TCP_KEEPIDLE = 4, TCP_KEEPINTVL = 5, TCP_KEEPCNT = 6, TCP_INFO = 11;
    public const int IPV6_V6ONLY = 26;
    public const int MSG_PEEK = 2, MSG_CTRUNC = 8, MSG_TRUNC = 0x20, MSG_DONTWAIT = 0x40, MSG_CMSG_CLOEXEC = 0x40000000;
    public const int SCM_RIGHTS = 1;
    public const int SHUT_RD = 0, SHUT_WR = 1;

    [StructLayout(LayoutKind.Sequential)]
    public struct MessageHeader // struct msghdr
    {
        public void* Name;
        public uint NameLength;
        public Native.Iovec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct TimeValue { public long Seconds, Microseconds; } // struct timeval (SO_RCVTIMEO_OLD)

    [LibraryImport("libc", EntryPoint = "lstat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int lstat(string path, out Native.Stat result);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int getsockopt(int fd, int level, int name, void* value, uint* length);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int setsockopt(int fd, int level, int name, void* value, uint length);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int getsockname(int fd, byte* address, uint* length);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int getpeername(int fd, byte* address, uint* length);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint recvmsg(int fd, MessageHeader* message, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint sendto(int fd, byte* buffer, nuint length, int flags, byte* address, uint addressLength);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int bind(int fd, byte* address, uint length);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint recv(int fd, byte* buffer, nuint length, int flags);

    /// <summary>A duplicate of descriptor <paramref name="fd"/> of process <paramref name="pid"/> in the engine (pidfd_getfd, close-on-exec).</summary>
    public static int DuplicateFrom(int pid, int fd)
    {
        int pidfd = Native.pidfd_open(pid, 0);
        if (pidfd < 0) throw new SyscallException("pidfd_open", Native.LastErrno, pid);
        try
        {
            int copy = (int)Native.syscall3(SYS_pidfd_getfd, pidfd, fd, 0);
            if (copy < 0) throw new SyscallException("pidfd_getfd", Native.LastErrno, pid, $"fd {fd}");
            return copy;
        }
        finally { Native.close(pidfd); }
    }

    public static int GetInt(int fd, int level, int name, int pid, string what)
    {
        int value = 0;
        uint length = sizeof(int);
        if (getsockopt(fd, level, name, &value, &length) != 0)
            throw new SyscallException($"getsockopt({what})", Native.LastErrno, pid);
        return value;
    }

    public static void SetInt(int fd, int level, int name, int value, int pid, string what)
    {
        if (setsockopt(fd, level, name, &value, sizeof(int)) != 0)
            throw new SyscallException($"setsockopt({what}, {value})", Native.LastErrno, pid);
    }

    /// <summary>SO_RCVTIMEO/SO_SNDTIMEO in microseconds (0: no timeout).</summary>
    public static long GetTimeoutMicroseconds(int fd, int name, int pid)
    {
        TimeValue value;
        uint length = (uint)sizeof(TimeValue);
        if (getsockopt(fd, SOL_SOCKET, name, &value, &length) != 0)
            throw new SyscallException(name == SO_RCVTIMEO ? "getsockopt(SO_RCVTIMEO)" : "getsockopt(SO_SNDTIMEO)", Native.LastErrno, pid);
        return value.Seconds * 1_000_000 + value.Microseconds;
    }

    /// <summary>getsockname/getpeername bytes; an empty array for a socket with no peer (ENOTCONN).</summary>
    public static byte[] Address(int fd, bool peer, int pid)
    {
        const int ENOTCONN = 107;
        byte* buffer = stackalloc byte[128];
        uint length = 128;
        int result = peer ? getpeername(fd, buffer, &length) : getsockname(fd, buffer, &length);
        if (result != 0)
        {
            int errno = Native.LastErrno;
            if (peer && errno == ENOTCONN) return [];
            throw new SyscallException(peer ? "getpeername" : "getsockname", errno, pid);
        }
        return new ReadOnlySpan<byte>(buffer, (int)Math.Min(length, 128u)).ToArray();
    }
}
