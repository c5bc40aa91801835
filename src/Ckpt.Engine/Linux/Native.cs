using System.Runtime.InteropServices;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Linux;

/// <summary>
/// Raw libc entry points the checkpoint side needs (x86-64, glibc). Every call sets errno
/// (SetLastError); callers turn failures into <see cref="SyscallException"/>s. Struct layouts
/// are the kernel's x86-64 ones.
/// API: ptrace, waitpid, process_vm_readv/writev, kill, tgkill, pidfd_open, pidfd_getfd, open/read/pread/pwrite/close, poll,
/// mmap/munmap, uname, stat, ioctl.
/// </summary>
public static unsafe partial class Native
{
    public const int WALL = 0x40000000, WNOHANG = 1;
    public const int O_RDONLY = 0, O_RDWR = 2, O_CLOEXEC = 0x80000;
    public const int PROT_READ = 1, PROT_WRITE = 2, MAP_PRIVATE = 2, MAP_ANONYMOUS = 0x20;
    public const int SIGKILL = 9, SIGTRAP = 5, SIGSTOP = 19, SIGCONT = 18;

    [StructLayout(LayoutKind.Sequential)]
    public struct Iovec
    {
        public nint Base;
        public nuint Length;
    }

    /// <summary>struct stat (x86-64).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Stat
    {
        public ulong Device, Inode, LinkCount;
        public uint Mode, Uid, Gid, Padding;
        public ulong RawDevice;
        public long Size, BlockSize, Blocks;
        public long AccessSeconds, AccessNanoseconds, ModifySeconds, ModifyNanoseconds, ChangeSeconds, ChangeNanoseconds;
        public long Reserved0, Reserved1, Reserved2;
    }

    [LibraryImport("libc", SetLastError = true)]
    public static partial long ptrace(long request, int pid, nint address, nint data);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int waitpid(int pid, int* status, int options);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint process_vm_readv(int pid, Iovec* local, nuint localCount, Iovec* remote, nuint remoteCount, nuint flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint process_vm_writev(int pid, Iovec* local, nuint localCount, Iovec* remote, nuint remoteCount, nuint flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int kill(int pid, int signal);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int tgkill(int tgid, int tid, int signal);

    [LibraryImport("libc", SetLastError = true)]
    private static partial long syscall(long number, long a1, long a2);

    public static int pidfd_open(int pid, uint flags) => (int)syscall(SYS_pidfd_open, pid, flags);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    internal static partial long syscall5(long number, long a1, long a2, long a3, long a4, long a5);

    public const int KCMP_FILE = 0, KCMP_VM = 1, KCMP_FILES = 2, KCMP_FS = 3, KCMP_SIGHAND = 4;

    /// <summary>kcmp(2): 0 when the two (pid, index) name the same kernel object, 1 or 2 for an ordering, -1 on error.</summary>
    public static long syscall3(long number, long a1, long a2, long a3) => syscall5(number, a1, a2, a3, 0, 0);

    public static int kcmp(int pid1, int pid2, int type, long index1, long index2) => (int)syscall5(SYS_kcmp, pid1, pid2, type, index1, index2);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int open(string path, int flags, int mode);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint pread(int fd, byte* buffer, nuint count, long offset);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint read(int fd, byte* buffer, nuint count);

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events, ReturnedEvents;
    }

    public const short POLLIN = 1;

    [LibraryImport("libc", SetLastError = true)]
    public static partial int poll(PollFd* fds, nuint count, int timeoutMilliseconds);

    /// <summary>pidfd_getfd(2): a duplicate, in this process, of descriptor <paramref name="targetFd"/> of the pidfd's process.</summary>
    public static int pidfd_getfd(int pidfd, int targetFd) => (int)syscall5(SYS_pidfd_getfd, pidfd, targetFd, 0, 0, 0);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint pwrite(int fd, byte* buffer, nuint count, long offset);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint write(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int ioctl(int fd, ulong request, void* argument);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int munmap(nint address, nuint length);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int uname(byte* buffer);

    [LibraryImport("libc", EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int stat(string path, out Stat result);

    public static int LastErrno => Marshal.GetLastPInvokeError();

    /// <summary>uname(2): release, version, machine.</summary>
    public static (string Release, string Version, string Machine) Uname()
    {
        byte* buffer = stackalloc byte[65 * 6];
        if (uname(buffer) != 0) throw new SyscallException("uname", LastErrno, Environment.ProcessId);
        return (Field(buffer, 2), Field(buffer, 3), Field(buffer, 4));
    }

    private static string Field(byte* buffer, int index) => Marshal.PtrToStringUTF8((nint)(buffer + 65 * index)) ?? "";

    /// <summary>stat(2) that throws a <see cref="SyscallException"/> naming the path.</summary>
    public static Stat StatOrThrow(string path, int pid)
    {
        if (stat(path, out Stat result) != 0) throw new SyscallException("stat", LastErrno, pid, path);
        return result;
    }
}
