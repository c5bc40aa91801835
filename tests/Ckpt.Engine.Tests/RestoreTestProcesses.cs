using System.Runtime.InteropServices;

namespace Ckpt.Engine.Tests;

/// <summary>Starting, finding and cleaning up real processes for the restore tests (posix_spawn, waitpid).</summary>
internal static unsafe partial class RestoreTestProcesses
{
    private const int WALL = 0x40000000, WNOHANG = 1, SIGKILL = 9, ECHILD = 10;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int waitpid(int pid, int* status, int options);

    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_init(byte* actions);

    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_addopen(byte* actions, int fd, byte* path, int flags, uint mode);

    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_adddup2(byte* actions, int fd, int newFd);

    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_addclosefrom_np(byte* actions, int from);

    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_addchdir_np(byte* actions, byte* path);

    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_destroy(byte* actions);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int posix_spawn(int* pid, byte* path, nint fileActions, nint attributes, byte** argv, byte** envp);

    /// <summary>A pid nothing uses now, from the upper part of the pid space.</summary>
    public static int FreePid()
    {
        int max = int.Parse(File.ReadAllText("/proc/sys/kernel/pid_max").Trim());
        int upper = Math.Min(max - 1, 4_000_000);
        for (int attempt = 0; attempt < 1000; attempt++)
        {
            int candidate = Random.Shared.Next(upper / 2, upper);
            if (!Directory.Exists($"/proc/{candidate}"))
                return candidate;
        }
        throw new InvalidOperationException("no free pid found");
    }

    /// <summary>Starts `sleep 1000` as a child of the test process; returns its pid.</summary>
    public static int StartSleeper() => Spawn("/dev/null", "/usr/bin/sleep", "1000");

    /// <summary>
    /// Starts a program with stdin from /dev/null and stdout and stderr appended to a log file
    /// (a pipe to the test would have its other end outside the process: refused); returns its pid.
    /// </summary>
    public static int Spawn(string logPath, string path, params string[] arguments) => SpawnIn(null, logPath, path, arguments);

    /// <summary><see cref="Spawn"/> with a working directory.</summary>
    public static int SpawnIn(string? workingDirectory, string logPath, string path, params string[] arguments)
    {
        byte* actions = stackalloc byte[256];
        posix_spawn_file_actions_init(actions);
        nint path0 = Marshal.StringToHGlobalAnsi("PATH=/usr/local/bin:/usr/bin:/bin");
        nint devNull = Marshal.StringToHGlobalAnsi("/dev/null"), log = Marshal.StringToHGlobalAnsi(logPath);
        posix_spawn_file_actions_addopen(actions, 0, (byte*)devNull, 0, 0);
        posix_spawn_file_actions_addopen(actions, 1, (byte*)log, 0x441 /* O_WRONLY|O_CREAT|O_APPEND */, 0x1a4);
        posix_spawn_file_actions_adddup2(actions, 1, 2);
        posix_spawn_file_actions_addclosefrom_np(actions, 3); // the test host's own descriptors
        nint directory = Marshal.StringToHGlobalAnsi(workingDirectory ?? ".");
        if (workingDirectory is not null) posix_spawn_file_actions_addchdir_np(actions, (byte*)directory);
        var strings = new[] { path }.Concat(arguments).Select(s => Marshal.StringToHGlobalAnsi(s)).ToArray();
        try
        {
            byte** argv = stackalloc byte*[strings.Length + 1];
            for (int i = 0; i < strings.Length; i++) argv[i] = (byte*)strings[i];
            argv[strings.Length] = null;
            byte** envp = stackalloc byte*[2];
            envp[0] = (byte*)path0;
            envp[1] = null;
            int pid;
            int error = posix_spawn(&pid, argv[0], (nint)actions, 0, argv, envp);
            if (error != 0) throw new InvalidOperationException($"posix_spawn {path}: errno {error}");
            return pid;
        }
        finally
        {
            foreach (nint s in strings) Marshal.FreeHGlobal(s);
            posix_spawn_file_actions_destroy(actions);
            Marshal.FreeHGlobal(devNull);
            Marshal.FreeHGlobal(path0);
            Marshal.FreeHGlobal(directory);
            Marshal.FreeHGlobal(log);
        }
    }

    /// <summary>
    /// Waits (bounded) until the process blocks in the given system call (/proc/PID/syscall). A
    /// sleep woken by a stop or a ptrace release goes on in restart_syscall (219), which counts as
    /// the same sleep.
    /// </summary>
    public static void WaitUntilInSyscall(int pid, int number)
    {
        const int RestartSyscall = 219, Nanosleep = 35, ClockNanosleep = 230;
        for (int i = 0; i < 1000; i++)
        {
            string current = File.ReadAllText($"/proc/{pid}/syscall").Split(' ')[0];
            if (current == number.ToString()) return;
            if (number is Nanosleep or ClockNanosleep && current == RestartSyscall.ToString()) return;
            Thread.Sleep(10);
        }
        Assert.Fail($"process {pid} never blocked in syscall {number}");
    }

    /// <summary>Waits (bounded) until a line of the log equals the text (READY, PASS ...).</summary>
    public static void WaitForLine(string logPath, string text, int seconds = 10)
    {
        for (int i = 0; i < seconds * 100; i++)
        {
            if (File.Exists(logPath) && File.ReadAllLines(logPath).Contains(text)) return;
            Thread.Sleep(10);
        }
        Assert.Fail($"'{text}' never appeared in {logPath}: {(File.Exists(logPath) ? File.ReadAllText(logPath) : "(no log)")}");
    }

    /// <summary>waitpid for a child; returns its exit code (128 + signal if killed).</summary>
    public static int WaitForExit(int pid)
    {
        int status;
        while (waitpid(pid, &status, WALL) < 0)
        {
            if (Marshal.GetLastPInvokeError() != 4) throw new InvalidOperationException($"waitpid {pid}: errno {Marshal.GetLastPInvokeError()}");
        }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f);
    }

    /// <summary>Field 22 of /proc/PID/stat (start time in clock ticks): tells two processes with one pid apart. Null if gone.</summary>
    public static string? StartTimeOf(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[19];
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Exited: gone, or a zombie (its reaping is up to its parent, often init, not to the test).</summary>
    public static bool HasExited(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[stat.LastIndexOf(')') + 2] is 'Z' or 'X';
        }
        catch (IOException)
        {
            return true;
        }
    }

    public static void Signal(int pid, int signal)
    {
        if (kill(pid, signal) != 0) throw new InvalidOperationException($"kill({pid}, {signal}): errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>SIGKILL (or another signal) if the process is still there; errors ignored (it may be gone).</summary>
    public static void TryKill(int pid, int signal) => kill(pid, signal);

    public static void KillAndReap(int pid)
    {
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, WALL);
        WaitUntilGone(pid);
    }

    /// <summary>Waits (bounded) until /proc/PID has gone; fails the test if it stays.</summary>
    public static void WaitUntilGone(int pid)
    {
        for (int i = 0; i < 500 && Directory.Exists($"/proc/{pid}"); i++)
            Thread.Sleep(10);
        Assert.False(Directory.Exists($"/proc/{pid}"), $"process {pid} is still there");
    }

    /// <summary>No exited child of the test process waits to be reaped (the intermediate was reaped).</summary>
    public static void AssertNoUnreapedChildren()
    {
        foreach (string task in Directory.GetDirectories($"/proc/{Environment.ProcessId}/task"))
        {
            string children = File.Exists($"{task}/children") ? File.ReadAllText($"{task}/children") : "";
            foreach (string child in children.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                string stat = File.ReadAllText($"/proc/{child}/stat");
                string state = stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
                Assert.NotEqual("Z", state);
            }
        }
    }
}

/// <summary>Restore workloads (tests/workloads/restore_*.c), compiled with the machine's gcc.</summary>
internal static class RestoreWorkloads
{
    private static readonly Lock Gate = new();

    /// <summary>The compiled workload: artifacts/workloads/NAME if build.sh made it, else compiled now.</summary>
    public static string Path(string name)
    {
        string root = RepositoryRoot();
        string built = System.IO.Path.Combine(root, "artifacts", "workloads", name);
        string source = System.IO.Path.Combine(root, "tests", "workloads", name + ".c");
        if (File.Exists(built) && File.GetLastWriteTimeUtc(built) >= File.GetLastWriteTimeUtc(source)) return built;
        lock (Gate)
        {
            string output = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"ckpt-workload-{name}-{Environment.ProcessId}");
            if (File.Exists(output)) return output;
            int pid = RestoreTestProcesses.Spawn(output + ".log", "/usr/bin/gcc", "-O1", "-g", "-Wall", "-Werror", "-o", output, source);
            int status = RestoreTestProcesses.WaitForExit(pid);
            Xunit.Assert.True(status == 0, $"gcc {source} failed: {File.ReadAllText(output + ".log")}");
            return output;
        }
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(directory.FullName, "CkptPS.sln"))) return directory.FullName;
        }
        throw new InvalidOperationException("CkptPS.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>
/// The restore tests run one at a time: they trace, kill and recreate processes by pid, take
/// seconds of wall time to check sleeps, and must not compete for the 2 cores while timing.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RestoreCollection
{
    public const string Name = "restore (processes by pid)";
}
