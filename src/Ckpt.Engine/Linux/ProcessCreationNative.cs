using System.Runtime.InteropServices;

namespace Ckpt.Engine.Linux;

/// <summary>The libc calls process creation needs (x86-64 Linux, glibc).</summary>
internal static unsafe partial class ProcessCreationNative
{
    public const int PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;
    public const int MAP_PRIVATE = 0x02, MAP_ANONYMOUS = 0x20;
    public const int O_CLOEXEC = 0x80000;
    public const int WALL = 0x40000000;
    public const int SIGCHLD = 17, SIGKILL = 9, SIGTRAP = 5;
    public const int PR_SET_CHILD_SUBREAPER = 36;

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int mprotect(nint address, nuint length, int protection);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int pipe2(int* fds, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint write(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int waitpid(int pid, int* status, int options);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int kill(int pid, int signal);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    [LibraryImport("libc", SetLastError = true)]
    public static partial long ptrace(long request, int pid, nint address, nint data);
}

/// <summary>Decoding of waitpid statuses.</summary>
internal static class WaitStatus
{
    public static bool Exited(int status) => (status & 0x7f) == 0;
    public static int ExitCode(int status) => (status >> 8) & 0xff;
    public static bool Signaled(int status) => (status & 0x7f) != 0 && (status & 0x7f) != 0x7f;
    public static int TermSignal(int status) => status & 0x7f;
    public static bool Stopped(int status) => (status & 0xff) == 0x7f;
    public static int StopSignal(int status) => (status >> 8) & 0xff;
    public static int PtraceEvent(int status) => (status >> 16) & 0xff;

    public static string Describe(int status) =>
        Exited(status) ? $"exited with status {ExitCode(status)}"
        : Signaled(status) ? $"killed by signal {TermSignal(status)}"
        : Stopped(status) ? $"stopped by signal {StopSignal(status)} (event {PtraceEvent(status)})"
        : $"wait status 0x{status:x}";
}
