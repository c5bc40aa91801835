using System.Runtime.InteropServices;
using Ckpt.Image;

namespace Ckpt.Engine.Tests;

/// <summary>
/// Helpers of the checkpoint tests: the workloads (tests/workloads/ckpt_*.c), a started target with
/// its log, the `ckpt` executable run as a real process, and a full ImageReader pass over an image.
/// </summary>
internal static unsafe partial class CheckpointTestSupport
{
    /// <summary>Starts a workload in its own session, stdin /dev/null, output to a log file; waits for READY.</summary>
    public static Target Start(string workload, params string[] arguments) => StartProgram(RestoreWorkloads.Path(workload), arguments);

    public static Target StartProgram(string path, params string[] arguments) => StartProgram(path, readySeconds: 10, arguments);

    /// <summary>As <see cref="StartProgram(string, string[])"/>, waiting up to readySeconds for READY (a workload that forks a hundred processes on a loaded machine).</summary>
    public static Target StartProgram(string path, int readySeconds, params string[] arguments)
    {
        string log = TempPath(Path.GetFileName(path) + ".log");
        int pid = SpawnWithEnvironment([path, .. arguments], log, log, newSession: true);
        if (path.StartsWith("/usr/bin/", StringComparison.Ordinal)) return new Target(pid, log); // not a workload: no READY line
        RestoreTestProcesses.WaitForLine(log, $"READY {pid}", readySeconds);
        return new Target(pid, log);
    }

    public static string TempPath(string name) => Path.Combine(Path.GetTempPath(), $"ckpt-test-{Environment.ProcessId}-{Guid.NewGuid():N}-{name}");

    // The images and logs of a test run add up to gigabytes: they are removed when the run ends, unless
    // CKPT_KEEP_TEST_FILES=1 asks to keep them for a look at a failure.
    static CheckpointTestSupport()
    {
        if (Environment.GetEnvironmentVariable("CKPT_KEEP_TEST_FILES") == "1") return;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => RemoveTempFiles();
    }

    private static void RemoveTempFiles()
    {
        foreach (string path in Directory.EnumerateFileSystemEntries(Path.GetTempPath(), $"ckpt-test-{Environment.ProcessId}-*"))
        {
            try
            {
                if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
                else File.Delete(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // in use by a process still running: left
        }
    }

    /// <summary>Runs the ckpt executable with the given arguments (optionally through a prefix such as setpriv); returns exit code and stderr.</summary>
    public static (int ExitCode, string Stdout, string Stderr) RunCli(string[] arguments, string[]? prefix = null, string? stdoutPath = null, string? executable = null)
    {
        string stdout = stdoutPath ?? TempPath("stdout"), stderr = TempPath("stderr");
        string[] argv = [.. prefix ?? [], executable ?? CkptPath(), .. arguments];
        int pid = SpawnWithEnvironment(argv, stdout, stderr, newSession: false);
        int code = RestoreTestProcesses.WaitForExit(pid);
        return (code, File.ReadAllText(stdout), File.ReadAllText(stderr));
    }

    /// <summary>
    /// Once the target is dead (reaped here: it is our child), `ckpt restore` of its image must bring
    /// it back with its pid and the workload must then check its own state and print PASS. The
    /// restored process is killed afterwards whatever happened.
    /// </summary>
    public static void RestoreAndRequirePass(Target target, string image)
    {
        RestoreTestProcesses.WaitForExit(target.Pid);
        RestoreTestProcesses.WaitUntilGone(target.Pid);
        RequireRestoredAndPass(target, RunCli(["restore", "--input", image]));
    }

    /// <summary>A `ckpt restore` run printed the target's pid, and the restored workload passes its own check.</summary>
    public static void RequireRestoredAndPass(Target target, (int ExitCode, string Stdout, string Stderr) restore)
    {
        try
        {
            Assert.True(restore.ExitCode == 0, restore.Stderr);
            Assert.Equal(target.Pid, int.Parse(restore.Stdout.Trim()));
            WaitUntilBackInPause(target.Pid);
            target.RequirePass();
        }
        finally
        {
            if (IsAlive(target.Pid)) RestoreTestProcesses.Signal(target.Pid, 9);
        }
    }

    /// <summary>
    /// A restored workload re-runs its interrupted pause() from just before the `syscall`
    /// instruction: a signal arriving before it is back inside the call runs the handler and the
    /// pause then waits on (a known limit of the restore, see the closing note of stop 7). Signal
    /// it once it is inside again, as a signal sent to the original would have found it.
    /// </summary>
    public static void WaitUntilBackInPause(int pid) => RestoreTestProcesses.WaitUntilInSyscall(pid, 34);

    /// <summary>The newest built `ckpt`: artifacts/ckpt (build.sh) or the Release/Debug build output.</summary>
    public static string CkptPath()
    {
        string root = RepositoryRoot();
        string[] candidates =
        [
            Path.Combine(root, "artifacts", "ckpt"),
            Path.Combine(root, "src", "Ckpt.Cli", "bin", "Release", "net10.0", "ckpt"),
            Path.Combine(root, "src", "Ckpt.Cli", "bin", "Debug", "net10.0", "ckpt"),
        ];
        return candidates.Where(File.Exists).OrderByDescending(File.GetLastWriteTimeUtc).FirstOrDefault()
            ?? throw new InvalidOperationException($"no ckpt executable under {root}: run ./build.sh or build src/Ckpt.Cli");
    }

    /// <summary>
    /// Reads an image through the image model (Ckpt.Image.Model, the one reader of the record order),
    /// checks the tail checksum, and reads every saved page at its chunk's offset. The task, thread
    /// and CPU fields are the leader's; Pending holds the process-wide queue and the leader's own.
    /// </summary>
    public static ImageContents ReadImage(string path)
    {
        var contents = new ImageContents();
        using var stream = File.OpenRead(path);
        using var reader = new ImageReader(stream);
        ImageModel image;
        try
        {
            image = ImageModelReader.Read(reader);
        }
        catch (FailedCheckpointException failed)
        {
            contents.Error = failed.Reason;
            reader.ReadTail();
            Assert.True(reader.ChecksumVerified, "the tail checksum was not verified");
            return contents;
        }
        Assert.True(reader.ChecksumVerified, "the tail checksum was not verified");

        ProcessImage process = image.Processes[0];
        ThreadImage leader = process.Threads[0];
        contents.Image = image;
        contents.Task = process.Task;
        (contents.Thread, contents.RestartBlock, contents.SignalStack, contents.Cpu, contents.Rseq) =
            (leader.Thread, leader.RestartBlock, leader.SignalStack, leader.Cpu, leader.Rseq);
        (contents.XstateRecord, contents.Xstate) = (leader.XstateRecord, leader.Xstate);
        contents.Signal = process.Signal.Record;
        contents.Pending.AddRange(leader.Pending.Concat(process.Signal.SharedPending));
        contents.Actions.AddRange(process.SignalHandlers.Actions);
        contents.Descriptors.AddRange(process.FileTable.Descriptors);
        foreach (var (objRef, file) in process.FileTable.Files) contents.Files[objRef] = (file.Record, file.Path);
        int pageSize = (int)image.Header.PageSize;
        foreach (VmaImage vma in process.Memory.Vmas)
        {
            contents.Vmas.Add(vma.Record);
            if (vma.File is { } mapped) contents.Files[mapped.Record.ObjRef] = (mapped.Record, mapped.Path);
            foreach (PageChunk chunk in vma.Chunks)
            {
                byte[] bytes = new byte[chunk.Addresses.Length * pageSize];
                stream.Position = chunk.ContentsOffset;
                stream.ReadExactly(bytes);
                for (int i = 0; i < chunk.Addresses.Length; i++)
                    contents.Pages[chunk.Addresses[i]] = bytes.AsSpan(i * pageSize, pageSize).ToArray();
            }
        }
        return contents;
    }

    public static bool IsAlive(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            return !stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');
        }
        catch (IOException)
        {
            return false;
        }
    }

    internal static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
            if (File.Exists(Path.Combine(directory.FullName, "CkptPS.sln"))) return directory.FullName;
        throw new InvalidOperationException("CkptPS.sln not found above " + AppContext.BaseDirectory);
    }

    [LibraryImport("libc")] private static partial int posix_spawn_file_actions_init(byte* actions);
    [LibraryImport("libc")] private static partial int posix_spawn_file_actions_addopen(byte* actions, int fd, byte* path, int flags, uint mode);
    [LibraryImport("libc")] private static partial int posix_spawn_file_actions_adddup2(byte* actions, int fd, int newFd);
    [LibraryImport("libc")] private static partial int posix_spawn_file_actions_addclosefrom_np(byte* actions, int from);
    [LibraryImport("libc")] private static partial int posix_spawn_file_actions_destroy(byte* actions);
    [LibraryImport("libc")] private static partial int posix_spawnattr_init(byte* attributes);
    [LibraryImport("libc")] private static partial int posix_spawnattr_setflags(byte* attributes, short flags);
    [LibraryImport("libc")] private static partial int posix_spawnattr_destroy(byte* attributes);
    [LibraryImport("libc")] private static partial int posix_spawnp(int* pid, byte* file, nint fileActions, nint attributes, byte** argv, byte** envp);

    // Like RestoreTestProcesses.Spawn, but with the test host's environment (DOTNET_ROOT, HOME),
    // stdout/stderr files of our choice (appended, so one file can take both) and optionally setsid.
    internal static int SpawnWithEnvironment(string[] argv, string stdoutPath, string stderrPath, bool newSession) =>
        SpawnWithDescriptors(argv, newSession,
            [(0, "/dev/null", 0), (1, stdoutPath, 0x441 /* O_WRONLY|O_CREAT|O_APPEND */), (2, stderrPath, 0x441)], []);

    /// <summary>
    /// posix_spawnp of argv with the test host's environment and exactly the descriptors given: each
    /// path opened on its fd in order, then the dups (from, to); every other descriptor closed (the
    /// harness leaks pipes into its children). Optionally in a session of its own.
    /// </summary>
    internal static int SpawnWithDescriptors(string[] argv, bool newSession, (int Fd, string Path, int Flags)[] opens, (int From, int To)[] dups)
    {
        const short POSIX_SPAWN_SETSID = 0x80;
        byte* actions = stackalloc byte[256];
        byte* attributes = stackalloc byte[512];
        posix_spawn_file_actions_init(actions);
        posix_spawnattr_init(attributes);
        if (newSession) posix_spawnattr_setflags(attributes, POSIX_SPAWN_SETSID);
        var allocations = new List<nint>();
        byte* Ansi(string s)
        {
            nint p = Marshal.StringToHGlobalAnsi(s);
            allocations.Add(p);
            return (byte*)p;
        }
        try
        {
            foreach (var (fd, path, flags) in opens) posix_spawn_file_actions_addopen(actions, fd, Ansi(path), flags, 0x1b6);
            foreach (var (from, to) in dups) posix_spawn_file_actions_adddup2(actions, from, to);
            posix_spawn_file_actions_addclosefrom_np(actions, 3);
            byte** args = stackalloc byte*[argv.Length + 1];
            for (int i = 0; i < argv.Length; i++) args[i] = Ansi(argv[i]);
            args[argv.Length] = null;
            var environment = Environment.GetEnvironmentVariables();
            byte** envp = stackalloc byte*[environment.Count + 1];
            int n = 0;
            foreach (System.Collections.DictionaryEntry entry in environment) envp[n++] = Ansi($"{entry.Key}={entry.Value}");
            envp[n] = null;
            int pid;
            int error = posix_spawnp(&pid, args[0], (nint)actions, (nint)attributes, args, envp);
            if (error != 0) throw new InvalidOperationException($"posix_spawnp {argv[0]}: errno {error}");
            return pid;
        }
        finally
        {
            posix_spawn_file_actions_destroy(actions);
            posix_spawnattr_destroy(attributes);
            foreach (nint p in allocations) Marshal.FreeHGlobal(p);
        }
    }
}

/// <summary>
/// A running workload: pid and log; Dispose kills and reaps it, but only if the pid still
/// belongs to it (same start time): a target killed by the test may have been restored, or
/// its pid reused by an unrelated process, which must not be killed.
/// </summary>
internal sealed class Target(int pid, string log) : IDisposable
{
    public int Pid { get; } = pid;
    public string Log { get; } = log;
    private readonly string? _startTime = RestoreTestProcesses.StartTimeOf(pid);

    /// <summary>SIGUSR1, then PASS must appear in the log (the workload verified its state).</summary>
    public void RequirePass(int seconds = 10)
    {
        RestoreTestProcesses.Signal(Pid, SIGUSR1);
        try
        {
            RestoreTestProcesses.WaitForLine(Log, "PASS", seconds);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // What the kernel says about the process, so that a rare failure can be diagnosed from the log.
            throw new Xunit.Sdk.XunitException($"{e.Message}\nprocess {Pid}: {DescribeState(Pid)}");
        }
    }

    private static string DescribeState(int pid)
    {
        try
        {
            var status = File.ReadLines($"/proc/{pid}/status")
                .Where(l => l.StartsWith("State:") || l.StartsWith("TracerPid:") || l.StartsWith("Sig") || l.StartsWith("ShdPnd:"));
            return $"{string.Join("; ", status)}; syscall {File.ReadAllText($"/proc/{pid}/syscall").Trim()}; wchan {File.ReadAllText($"/proc/{pid}/wchan")}";
        }
        catch (IOException)
        {
            return "gone (exited or killed)";
        }
    }

    public void Dispose()
    {
        if (_startTime is not null && RestoreTestProcesses.StartTimeOf(Pid) == _startTime) RestoreTestProcesses.KillAndReap(Pid);
    }
}

internal sealed class ImageContents
{
    public ImageModel? Image;
    public TaskRecord Task;
    public ThreadRecord Thread;
    public RestartBlockRecord? RestartBlock;
    public SignalStackRecord SignalStack;
    public SignalRecord Signal;
    public CpuRecord Cpu;
    public RseqRecord Rseq;
    public CpuXstateRecord XstateRecord;
    public byte[] Xstate = [];
    public Dictionary<int, (FileRecord Record, string Path)> Files { get; } = [];
    public List<FileDescriptorRecord> Descriptors { get; } = [];
    public List<SignalPendingRecord> Pending { get; } = [];
    public string? Error;
    public List<VmaRecord> Vmas { get; } = [];
    public List<SignalActionRecord> Actions { get; } = [];
    public Dictionary<ulong, byte[]> Pages { get; } = [];

    /// <summary>Pages the image holds for a VMA (its chunks), as opposed to its PagesPopulated bound.</summary>
    public ulong PagesSaved(VmaRecord vma) => (ulong)Pages.Keys.Count(a => a >= vma.VmStart && a < vma.VmEnd);
}
