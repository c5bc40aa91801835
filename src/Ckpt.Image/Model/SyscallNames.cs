namespace Ckpt.Image.Model;

/// <summary>
/// Names of the x86-64 system calls a checkpointed thread is commonly stopped in, for display
/// (`ckpt show`, Get-CkptImage's thread objects). Not a complete table: other numbers have no name.
/// </summary>
public static class SyscallNames
{
    private static readonly Dictionary<long, string> Names = new()
    {
        [0] = "read", [1] = "write", [7] = "poll", [17] = "pread64", [19] = "readv", [23] = "select",
        [24] = "sched_yield", [34] = "pause", [35] = "nanosleep", [43] = "accept", [45] = "recvfrom",
        [47] = "recvmsg", [61] = "wait4", [72] = "fcntl", [128] = "rt_sigtimedwait", [130] = "rt_sigsuspend",
        [202] = "futex", [230] = "clock_nanosleep", [232] = "epoll_wait", [247] = "waitid", [270] = "pselect6",
        [271] = "ppoll", [281] = "epoll_pwait", [288] = "accept4", [441] = "epoll_pwait2", [449] = "futex_waitv",
    };

    /// <summary>The name of system call <paramref name="number"/>, or null when this table does not know it (or it is -1: none).</summary>
    public static string? Name(long number) => Names.GetValueOrDefault(number);

    /// <summary>"202 futex", "435" for a number without a name here, "-" for none (-1).</summary>
    public static string Describe(long number) =>
        number < 0 ? "-" : Name(number) is { } name ? $"{number} {name}" : number.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
