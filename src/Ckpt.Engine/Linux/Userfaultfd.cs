using System.Runtime.InteropServices;

namespace Ckpt.Engine.Linux;

/// <summary>
/// The userfaultfd(2) interface (include/uapi/linux/userfaultfd.h, x86-64), used from the engine on
/// a descriptor of another process's userfaultfd (obtained with pidfd_getfd): the ioctls act on the
/// address space that created it. Errors are <see cref="SyscallException"/>s naming the ioctl.
/// </summary>
public static unsafe partial class Userfaultfd
{
    public const ulong Api = 0xAA;
    // Non-cooperative events: the process changing its own address space while pages are missing.
    public const ulong FeatureEventFork = 1 << 1, FeatureEventRemap = 1 << 2, FeatureEventRemove = 1 << 3, FeatureEventUnmap = 1 << 6;
    public const ulong RegisterModeMissing = 1;
    public const byte EventPagefault = 0x12, EventFork = 0x13, EventRemap = 0x14, EventRemove = 0x15, EventUnmap = 0x16;
    public const ulong PagefaultFlagWrite = 1;

    // _IOWR/_IOR(0xAA, nr, struct): direction << 30 | size << 16 | 0xAA << 8 | nr
    private const ulong UFFDIO_API = 0xC018AA3F, UFFDIO_REGISTER = 0xC020AA00, UFFDIO_UNREGISTER = 0x8010AA01,
        UFFDIO_COPY = 0xC028AA03, UFFDIO_ZEROPAGE = 0xC020AA04;

    [StructLayout(LayoutKind.Sequential)]
    private struct ApiArgument { public ulong Api, Features, Ioctls; }

    [StructLayout(LayoutKind.Sequential)]
    private struct RegisterArgument { public ulong Start, Length, Mode, Ioctls; }

    [StructLayout(LayoutKind.Sequential)]
    private struct RangeArgument { public ulong Start, Length; }

    [StructLayout(LayoutKind.Sequential)]
    private struct CopyArgument { public ulong Destination, Source, Length, Mode; public long Copied; }

    [StructLayout(LayoutKind.Sequential)]
    private struct ZeropageArgument { public ulong Start, Length, Mode; public long Zeroed; }

    /// <summary>struct uffd_msg: 8 bytes of event and padding, then 24 bytes of the event's arguments.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 32)]
    public struct Message
    {
        public byte Event;
        private byte _reserved1;
        private ushort _reserved2;
        private uint _reserved3;
        /// <summary>pagefault: flags; fork: the child's new userfaultfd (low 32 bits); remap: from; remove/unmap: start.</summary>
        public ulong Argument0;
        /// <summary>pagefault: address; remap: to; remove/unmap: end.</summary>
        public ulong Argument1;
        /// <summary>remap: length.</summary>
        public ulong Argument2;
    }

    /// <summary>UFFDIO_API: the handshake, asking for <paramref name="features"/>.</summary>
    public static void Handshake(int fd, ulong features, int pid)
    {
        var argument = new ApiArgument { Api = Api, Features = features };
        Ioctl(fd, UFFDIO_API, &argument, "ioctl(UFFDIO_API)", pid);
    }

    /// <summary>UFFDIO_REGISTER in missing mode: faults on pages never filled are reported to us.</summary>
    public static void RegisterMissing(int fd, ulong start, ulong length, int pid)
    {
        var argument = new RegisterArgument { Start = start, Length = length, Mode = RegisterModeMissing };
        Ioctl(fd, UFFDIO_REGISTER, &argument, $"ioctl(UFFDIO_REGISTER) of 0x{start:x}-0x{start + length:x}", pid);
    }

    public static void Unregister(int fd, ulong start, ulong length, int pid)
    {
        var argument = new RangeArgument { Start = start, Length = length };
        Ioctl(fd, UFFDIO_UNREGISTER, &argument, $"ioctl(UFFDIO_UNREGISTER) of 0x{start:x}-0x{start + length:x}", pid);
    }

    /// <summary>
    /// UFFDIO_COPY: fills missing pages with a copy of <paramref name="source"/> and wakes the threads
    /// waiting for them. Returns the bytes copied, or a negative errno (EEXIST: the first page was
    /// there already; EAGAIN: the address space is changing, read the events first; ENOENT/ESRCH: it is gone).
    /// </summary>
    public static long Copy(int fd, ulong destination, byte* source, ulong length)
    {
        var argument = new CopyArgument { Destination = destination, Source = (ulong)source, Length = length };
        if (Native.ioctl(fd, UFFDIO_COPY, &argument) == 0) return argument.Copied;
        return argument.Copied > 0 ? argument.Copied : -Native.LastErrno;
    }

    /// <summary>UFFDIO_ZEROPAGE: maps zero pages (memory the image had none of); same returns as <see cref="Copy"/>.</summary>
    public static long ZeroPage(int fd, ulong start, ulong length)
    {
        var argument = new ZeropageArgument { Start = start, Length = length };
        if (Native.ioctl(fd, UFFDIO_ZEROPAGE, &argument) == 0) return argument.Zeroed;
        return argument.Zeroed > 0 ? argument.Zeroed : -Native.LastErrno;
    }

    /// <summary>Reads the pending messages of a non-blocking userfaultfd; 0 when there are none.</summary>
    public static int Read(int fd, Span<Message> messages)
    {
        fixed (Message* buffer = messages)
        {
            nint n = Native.read(fd, (byte*)buffer, (nuint)(messages.Length * sizeof(Message)));
            if (n >= 0) return (int)(n / sizeof(Message));
            int errno = Native.LastErrno;
            if (errno == Errno.EAGAIN) return 0;
            throw new SyscallException("read of the userfaultfd", errno, Environment.ProcessId);
        }
    }

    private static void Ioctl(int fd, ulong request, void* argument, string name, int pid)
    {
        if (Native.ioctl(fd, request, argument) != 0) throw new SyscallException(name, Native.LastErrno, pid);
    }
}
