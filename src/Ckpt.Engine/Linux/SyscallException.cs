namespace Ckpt.Engine.Linux;

/// <summary>A system call failed: names the call, the errno and the pid it concerned.</summary>
public sealed class SyscallException : Exception
{
    public SyscallException(string syscall, int errno, int pid, string? detail = null)
        : base(Describe(syscall, errno, pid, detail))
    {
        Syscall = syscall;
        Errno = errno;
        Pid = pid;
    }

    public string Syscall { get; }
    public int Errno { get; }
    public int Pid { get; }

    private static string Describe(string syscall, int errno, int pid, string? detail)
    {
        string text = $"{syscall} failed for pid {pid}: {Linux.Errno.Name(errno)} ({errno}) {Linux.Errno.Describe(errno)}";
        return detail is null ? text : $"{text}: {detail}";
    }
}

/// <summary>errno names for messages (the ones this engine meets; others print as numbers).</summary>
public static class Errno
{
    public const int EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, EBADF = 9, ECHILD = 10,
        EAGAIN = 11, ENOMEM = 12, EACCES = 13, EFAULT = 14, EBUSY = 16, EEXIST = 17, EINVAL = 22,
        ENOSYS = 38;
    public const int EADDRINUSE = 98, ECONNREFUSED = 111;

    public static string Name(int errno) => errno switch
    {
        EPERM => "EPERM", ENOENT => "ENOENT", ESRCH => "ESRCH", EINTR => "EINTR", EIO => "EIO",
        EBADF => "EBADF", ECHILD => "ECHILD", EAGAIN => "EAGAIN", ENOMEM => "ENOMEM",
        EACCES => "EACCES", EFAULT => "EFAULT", EBUSY => "EBUSY", EEXIST => "EEXIST",
        EINVAL => "EINVAL", ENOSYS => "ENOSYS",
        EADDRINUSE => "EADDRINUSE", ECONNREFUSED => "ECONNREFUSED",
        _ => $"errno {errno}",
    };

    public static string Describe(int errno) => errno switch
    {
        EPERM => "operation not permitted",
        ENOENT => "no such file or directory",
        ESRCH => "no such process",
        EEXIST => "exists (in use)",
        EINVAL => "invalid argument",
        ENOMEM => "out of memory or bad address range",
        EACCES => "permission denied",
        EFAULT => "bad address",
        EBUSY => "busy",
        EADDRINUSE => "address already in use",
        _ => "",
    };
}
