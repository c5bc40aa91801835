using System.Diagnostics;
using System.Runtime.InteropServices;
using Ckpt.Engine.Restore;

namespace Ckpt.Engine.Tests;

/// <summary>
/// Helpers of the multi-threaded checkpoint/restore tests (issue 9): `ckpt` run as a process with
/// a time bound (a hang fails the test instead of stalling the run), the threads of a process as
/// /proc sees them, and the result lines of the workloads.
/// </summary>
internal static unsafe partial class ThreadTestSupport
{
    public const int SIGUSR1 = 10, SIGUSR2 = 12, SIGKILL = 9, SIGTERM = 15, SYS_rt_sigsuspend = 130;

    /// <summary>Longest a single `ckpt checkpoint` or `ckpt restore` may take before it counts as hung.</summary>
    public static readonly TimeSpan EngineTimeout = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Runs `ckpt` with the arguments; after <paramref name="timeout"/> it gets SIGTERM (the engine
    /// stops at its next safe point), 6 s later SIGKILL, and the test fails naming the command.
    /// </summary>
    public static (int ExitCode, string Stdout, string Stderr) RunCkpt(TimeSpan timeout, params string[] arguments)
    {
        string stdout = CheckpointTestSupport.TempPath("ckpt.stdout"), stderr = CheckpointTestSupport.TempPath("ckpt.stderr");
        int pid = CheckpointTestSupport.SpawnWithEnvironment([CheckpointTestSupport.CkptPath(), .. arguments], stdout, stderr, newSession: false);
        var clock = Stopwatch.StartNew();
        int? code = null;
        while ((code = TryReap(pid)) is null && clock.Elapsed < timeout) Thread.Sleep(5);
        if (code is null)
        {
            kill(pid, SIGTERM);
            for (var grace = Stopwatch.StartNew(); (code = TryReap(pid)) is null && grace.Elapsed < TimeSpan.FromSeconds(6);) Thread.Sleep(10);
            if (code is null)
            {
                kill(pid, SIGKILL);
                RestoreTestProcesses.WaitForExit(pid);
            }
            Assert.Fail($"`ckpt {string.Join(' ', arguments)}` did not finish within {timeout.TotalSeconds} s (hang); stderr: {File.ReadAllText(stderr)}");
        }
        return (code.Value, File.ReadAllText(stdout), File.ReadAllText(stderr));
    }

    /// <summary>`ckpt checkpoint` (bounded); the checkpoint must succeed.</summary>
    public static void CkptCheckpoint(int pid, string image, bool kill, string what = "checkpoint", TimeSpan? timeout = null)
    {
        string[] arguments = ["checkpoint", "--pid", pid.ToString(), "--output", image, .. kill ? new[] { "--kill" } : []];
        var result = RunCkpt(timeout ?? EngineTimeout, arguments);
        Assert.True(result.ExitCode == 0, $"{what} of {pid} failed with exit code {result.ExitCode}: {result.Stderr.Trim()}");
    }

    /// <summary>`ckpt restore` (bounded); it must succeed; returns the pid it printed.</summary>
    public static int CkptRestore(string image, TimeSpan? timeout = null)
    {
        var result = RunCkpt(timeout ?? EngineTimeout, "restore", "--input", image);
        Assert.True(result.ExitCode == 0, $"restore of {image} failed with exit code {result.ExitCode}: {result.Stderr.Trim()}");
        return int.Parse(result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[0]);
    }

    /// <summary>
    /// The engine's restore called in this process, so that the caller can signal the restored
    /// process microseconds after it returns; bounded like the command line.
    /// </summary>
    public static int RestoreInProcess(string image)
    {
        var restore = Task.Run(() => Restorer.Restore(new RestoreOptions(image)).Pid);
        Assert.True(restore.Wait(EngineTimeout), $"Restorer.Restore({image}) did not return within {EngineTimeout.TotalSeconds} s (hang)");
        return restore.Result;
    }

    /// <summary>Every thread of the process: tid -> name (/proc/PID/task/TID/comm).</summary>
    public static SortedDictionary<int, string> Threads(int pid)
    {
        var threads = new SortedDictionary<int, string>();
        foreach (string task in Directory.GetDirectories($"/proc/{pid}/task"))
        {
            try
            {
                threads[int.Parse(Path.GetFileName(task))] = File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n');
            }
            catch (IOException)
            {
                // a thread that exited between the listing and the read
            }
        }
        return threads;
    }

    public static string Describe(IEnumerable<KeyValuePair<int, string>> threads) => string.Join(", ", threads.Select(t => $"{t.Key}:{t.Value}"));

    /// <summary>The first field of /proc/PID/task/TID/syscall: the call number, "running", or null if the thread is gone.</summary>
    public static string? SyscallOf(int pid, int tid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/task/{tid}/syscall").Split(' ', '\n')[0];
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Waits (bounded) until every listed thread is inside one of the calls listed for it (re-entered after a restore or a checkpoint).</summary>
    public static void WaitUntilBackInSyscalls(int pid, IReadOnlyDictionary<int, string[]> expected, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var wrong = expected.Where(e => !e.Value.Contains(SyscallOf(pid, e.Key))).ToArray();
            if (wrong.Length == 0) return;
            if (clock.Elapsed > timeout)
                Assert.Fail($"threads of {pid} not back in their calls after {timeout.TotalSeconds} s: " +
                            string.Join(", ", wrong.Select(w => $"{w.Key} in {SyscallOf(pid, w.Key) ?? "(gone)"}, expected {string.Join(" or ", w.Value)}")) +
                            $"\n{DescribeThreads(pid)}");
            Thread.Sleep(10);
        }
    }

    /// <summary>The "THREAD i tid kind name" lines of ckpt_threads: tid -> kind.</summary>
    public static Dictionary<int, string> WorkloadThreads(string log) =>
        File.ReadAllLines(log).Where(l => l.StartsWith("THREAD ", StringComparison.Ordinal))
            .Select(l => l.Split(' ')).ToDictionary(f => int.Parse(f[2]), f => f[3]);

    /// <summary>
    /// Kinds of ckpt_threads whose thread stays in one known call until it is woken (not the
    /// ticker, the spinner, the short sleeper), with the calls /proc may show for it: a timed
    /// futex wait or a nanosleep interrupted by a stop (a checkpoint) goes on in restart_syscall (219).
    /// </summary>
    public static readonly Dictionary<string, string[]> StableKindSyscalls = new()
    {
        ["main"] = ["130"], ["cond"] = ["202"], ["futex"] = ["202"], ["futexto"] = ["202", "219"], ["futexabs"] = ["202", "219"],
        ["sleeplong"] = ["230", "219"], ["pause"] = ["34"], ["sigsusp"] = ["130"], ["ppoll"] = ["271"], ["pausevec"] = ["34"],
    };

    /// <summary>tid -> calls for the threads of ckpt_threads that wait in one known call.</summary>
    public static Dictionary<int, string[]> StableSyscalls(string log) =>
        WorkloadThreads(log).Where(t => StableKindSyscalls.ContainsKey(t.Value)).ToDictionary(t => t.Key, t => StableKindSyscalls[t.Value]);

    /// <summary>
    /// Waits (bounded) until the log holds <paramref name="passes"/> lines "PASS"; a line starting
    /// with FAIL, or the time running out, fails the test with the log and what /proc says of
    /// every thread.
    /// </summary>
    public static void WaitForPass(string log, int pid, TimeSpan timeout, int passes = 1)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            string[] lines = File.Exists(log) ? File.ReadAllLines(log) : [];
            string? failure = lines.FirstOrDefault(l => l.StartsWith("FAIL", StringComparison.Ordinal));
            if (failure is not null) Assert.Fail($"{failure}\nlog {log}:\n{Tail(lines)}");
            if (lines.Count(l => l == "PASS") >= passes) return;
            if (clock.Elapsed > timeout)
                Assert.Fail($"no PASS (number {passes}) within {timeout.TotalSeconds} s in {log}:\n{Tail(lines)}\n{DescribeThreads(pid)}");
            Thread.Sleep(10);
        }
    }

    private static string Tail(string[] lines) => string.Join('\n', lines.Where(l => !l.StartsWith("THREAD ", StringComparison.Ordinal)).TakeLast(20));

    /// <summary>What the kernel says of every thread (state, syscall, wchan, masks): for diagnosing a failure.</summary>
    public static string DescribeThreads(int pid)
    {
        try
        {
            var lines = new List<string>();
            foreach (string task in Directory.GetDirectories($"/proc/{pid}/task").OrderBy(t => int.Parse(Path.GetFileName(t))))
            {
                try
                {
                    var status = File.ReadLines(Path.Combine(task, "status"))
                        .Where(l => l.StartsWith("State:") || l.StartsWith("TracerPid:") || l.StartsWith("SigPnd:") || l.StartsWith("ShdPnd:") || l.StartsWith("SigBlk:"))
                        .Select(l => l.Replace('\t', ' '));
                    lines.Add($"  {Path.GetFileName(task)} {File.ReadAllText(Path.Combine(task, "comm")).Trim()}: {string.Join("; ", status)}; " +
                              $"syscall {File.ReadAllText(Path.Combine(task, "syscall")).Trim()}; wchan {File.ReadAllText(Path.Combine(task, "wchan"))}");
                }
                catch (IOException)
                {
                    lines.Add($"  {Path.GetFileName(task)} gone");
                }
            }
            return $"threads of {pid}:\n{string.Join('\n', lines)}";
        }
        catch (IOException)
        {
            return $"process {pid} is gone";
        }
    }

    /// <summary>Kills the process if it is still there (restored processes are not our children: init reaps them).</summary>
    public static void KillIfAlive(int pid)
    {
        if (CheckpointTestSupport.IsAlive(pid)) RestoreTestProcesses.KillAndReap(pid);
    }

    /// <summary>Thread-directed signal; returns 0 or the errno (ESRCH: no such thread in that process).</summary>
    public static int Tgkill(int tgid, int tid, int signal) => tgkill(tgid, tid, signal) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>Lines of the log starting with the prefix.</summary>
    public static string[] LinesStarting(string log, string prefix) =>
        File.Exists(log) ? File.ReadAllLines(log).Where(l => l.StartsWith(prefix, StringComparison.Ordinal)).ToArray() : [];

    /// <summary>The names of the descriptors a process holds: "fd -> target".</summary>
    public static string[] Descriptors(int pid) =>
        Directory.GetFileSystemEntries($"/proc/{pid}/fd").OrderBy(fd => int.Parse(Path.GetFileName(fd)))
            .Select(fd => $"{Path.GetFileName(fd)} -> {new FileInfo(fd).LinkTarget}").ToArray();

    private static int? TryReap(int pid)
    {
        int status;
        int r = waitpid(pid, &status, 1 /* WNOHANG */);
        if (r == 0) return null;
        if (r < 0) throw new InvalidOperationException($"waitpid {pid}: errno {Marshal.GetLastPInvokeError()}");
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f);
    }

    [LibraryImport("libc", SetLastError = true)] private static partial int tgkill(int tgid, int tid, int signal);
    [LibraryImport("libc", SetLastError = true)] private static partial int kill(int pid, int signal);
    [LibraryImport("libc", SetLastError = true)] private static partial int waitpid(int pid, int* status, int options);
}
