using System.Runtime.InteropServices;

namespace CkptPS.Module.Tests.Infrastructure;

/// <summary>
/// A process for the cmdlets to checkpoint, started with posix_spawn in its own session with
/// stdin from /dev/null and stdout/stderr to a regular log file (pipes are descriptors the
/// engine refuses). Never System.Diagnostics.Process: .NET would reap it behind our back
/// and can misreport a ptrace-stopped child as exited.
/// </summary>
internal sealed unsafe partial class TargetProcess : IDisposable
{
    private bool reaped;

    public int Pid { get; }
    public string LogPath { get; }

    private TargetProcess(int pid, string logPath)
    {
        Pid = pid;
        LogPath = logPath;
    }

    public static TargetProcess StartSleep() => Start("/usr/bin/sleep", "1000");

    public static TargetProcess Start(string program, params string[] arguments) =>
        StartNamed(Path.GetFileName(program), program, arguments);

    /// <summary>Starts <paramref name="program"/> and returns once the process is called <paramref name="finalName"/> (after its last exec).</summary>
    public static TargetProcess StartNamed(string finalName, string program, params string[] arguments)
    {
        string log = Path.Combine(RepoPaths.NewScratchDirectory(), "target.log");
        byte* actions = stackalloc byte[128];
        byte* attributes = stackalloc byte[512];
        byte* emptyMask = stackalloc byte[128];
        byte* defaults = stackalloc byte[128];
        new Span<byte>(emptyMask, 128).Clear();
        var defaultSet = new Span<byte>(defaults, 128);
        defaultSet.Clear();
        for (int signal = 1; signal < 32; signal++)
        {
            if (signal is 9 or 19) continue;
            defaultSet[(signal - 1) / 8] |= (byte)(1 << ((signal - 1) % 8));
        }
        var allocations = new List<IntPtr>();
        try
        {
            posix_spawn_file_actions_init(actions);
            posix_spawnattr_init(attributes);
            posix_spawn_file_actions_addopen(actions, 0, "/dev/null", 0, 0);
            posix_spawn_file_actions_addopen(actions, 1, log, 0x1 | 0x40 | 0x200, 0x1a4);
            posix_spawn_file_actions_adddup2(actions, 1, 2);
            // The test host has descriptors without close-on-exec (its runner's pipes): a target must
            // have only 0, 1 and 2, or the engine rightly refuses to checkpoint it.
            posix_spawn_file_actions_addclosefrom_np(actions, 3);
            posix_spawnattr_setsigmask(attributes, emptyMask);
            posix_spawnattr_setsigdefault(attributes, defaults);
            posix_spawnattr_setflags(attributes, 0x04 | 0x08 | 0x80); // SETSIGDEF | SETSIGMASK | SETSID
            var argv = (byte**)Marshal.AllocHGlobal(sizeof(IntPtr) * (arguments.Length + 2));
            allocations.Add((IntPtr)argv);
            string[] all = [program, .. arguments];
            for (int i = 0; i < all.Length; i++)
            {
                var text = Marshal.StringToCoTaskMemUTF8(all[i]);
                allocations.Add(text);
                argv[i] = (byte*)text;
            }
            argv[all.Length] = null;
            byte* envp = null;
            int error = posix_spawn(out int pid, program, actions, attributes, argv, &envp);
            if (error != 0) throw new InvalidOperationException($"posix_spawn {program} failed: errno {error}");
            WaitForExec(pid, finalName);
            return new TargetProcess(pid, log);
        }
        finally
        {
            posix_spawn_file_actions_destroy(actions);
            posix_spawnattr_destroy(attributes);
            foreach (var pointer in allocations) Marshal.FreeHGlobal(pointer);
        }
    }

    /// <summary>
    /// posix_spawn returns once the child's exec has released the parent's memory, which is
    /// a moment before the kernel renames the task: wait for the new name.
    /// </summary>
    private static void WaitForExec(int pid, string finalName)
    {
        string name = finalName.Length > 15 ? finalName[..15] : finalName;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (File.ReadAllText($"/proc/{pid}/comm").TrimEnd('\n') != name)
        {
            if (DateTime.UtcNow > deadline) throw new InvalidOperationException($"pid {pid} did not become {name}");
            Thread.Sleep(1);
        }
    }

    /// <summary>Running (or stopped), not exited and not a zombie.</summary>
    public bool IsAlive => IsRunning(Pid);

    public static bool IsRunning(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            char state = stat[stat.LastIndexOf(')') + 2];
            return state is not ('Z' or 'X');
        }
        catch (IOException) { return false; }
    }

    /// <summary>Waits for the process to end (it was killed by someone else) and collects it.</summary>
    public int Reap()
    {
        int status = 0;
        int result;
        do result = waitpid(Pid, &status, 0);
        while (result < 0 && Marshal.GetLastPInvokeError() == 4);
        reaped = true;
        return status;
    }

    public void Dispose()
    {
        if (!reaped)
        {
            kill(Pid, 9);
            Reap();
        }
        Directory.Delete(Path.GetDirectoryName(LogPath)!, recursive: true);
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int waitpid(int pid, int* status, int options);
    [LibraryImport("libc", SetLastError = true)]
    internal static partial int kill(int pid, int signal);
    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int mkfifo(string path, uint mode);
    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_init(void* actions);
    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_destroy(void* actions);
    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_adddup2(void* actions, int fd, int newFd);
    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_addclosefrom_np(void* actions, int fromFd);
    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int posix_spawn_file_actions_addopen(void* actions, int fd, string path, int flags, uint mode);
    [LibraryImport("libc")]
    private static partial int posix_spawnattr_init(void* attributes);
    [LibraryImport("libc")]
    private static partial int posix_spawnattr_destroy(void* attributes);
    [LibraryImport("libc")]
    private static partial int posix_spawnattr_setflags(void* attributes, short flags);
    [LibraryImport("libc")]
    private static partial int posix_spawnattr_setsigmask(void* attributes, byte* sigset);
    [LibraryImport("libc")]
    private static partial int posix_spawnattr_setsigdefault(void* attributes, byte* sigset);
    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int posix_spawn(out int pid, string path, void* fileActions, void* attributes, byte** argv, byte** envp);
}
