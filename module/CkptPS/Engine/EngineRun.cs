using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace CkptPS.Engine;

/// <summary>
/// One run of the `ckpt` engine. It is started with posix_spawn so that it gets the write
/// end of a pipe as descriptor 3 (<c>--progress-fd 3</c>); a worker thread turns the
/// channel's lines into <see cref="EngineEvent"/>s in <see cref="Events"/>, which the
/// cmdlet drains on the pipeline thread (the only thread allowed to write to the pipeline).
/// stdout and stderr go to a private temporary file each, read once the engine has exited:
/// files cannot fill up and block the engine, and need no reader threads.
/// </summary>
internal sealed class EngineRun : IDisposable
{
    private const int ProgressFd = 3;
    // A process the engine forks (the restored task) may briefly hold a copy of the
    // channel; once the engine itself has exited we wait this long for the rest of it.
    private static readonly TimeSpan ChannelDrainGrace = TimeSpan.FromSeconds(2);

    private readonly BlockingCollection<EngineEvent> events = new();
    private readonly string stdoutPath;
    private readonly string stderrPath;
    private readonly Thread channelReader;
    private readonly Thread exitWaiter;
    private int exited;

    public int Pid { get; }
    public string StandardOutput { get; private set; } = "";
    public string StandardError { get; private set; } = "";

    /// <summary>Progress and result events, then exactly one Exited event; then completed.</summary>
    public BlockingCollection<EngineEvent> Events => events;

    private EngineRun(int pid, int channelFd, string stdoutPath, string stderrPath)
    {
        Pid = pid;
        this.stdoutPath = stdoutPath;
        this.stderrPath = stderrPath;
        var channel = new SafeFileHandle(channelFd, ownsHandle: true);
        channelReader = new Thread(() => ReadChannel(channel)) { IsBackground = true, Name = "ckpt progress channel" };
        exitWaiter = new Thread(WaitForExit) { IsBackground = true, Name = "ckpt exit waiter" };
        channelReader.Start();
        exitWaiter.Start();
    }

    /// <param name="onCallersTerminal">the engine takes the caller's standard input and stays in its session
    /// (`ckpt restore --shell-terminal`: the restored process gets the caller's terminal); otherwise it has
    /// /dev/null and a session of its own</param>
    public static EngineRun Start(string enginePath, IReadOnlyList<string> arguments, bool onCallersTerminal = false)
    {
        if (!File.Exists(enginePath))
            throw new FileNotFoundException($"The CkptPS engine was not found at '{enginePath}'.", enginePath);
        string stdoutPath = Path.Combine(Path.GetTempPath(), $"ckptps-{Guid.NewGuid():N}.out");
        string stderrPath = Path.ChangeExtension(stdoutPath, ".err");
        var argv = new List<string> { enginePath };
        argv.AddRange(arguments);
        argv.Add("--progress-fd");
        argv.Add(ProgressFd.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var (readFd, writeFd) = CreatePipe();
        try
        {
            int pid = Spawn(enginePath, argv, writeFd, stdoutPath, stderrPath, onCallersTerminal);
            return new EngineRun(pid, readFd, stdoutPath, stderrPath);
        }
        catch
        {
            Native.close(readFd);
            throw;
        }
        finally
        {
            Native.close(writeFd); // the engine has its own copy now; EOF follows its exit
        }
    }

    /// <summary>Asks the engine to stop (Ctrl+C in the shell): it cleans up and exits.</summary>
    public void RequestStop()
    {
        if (Volatile.Read(ref exited) == 0) Native.kill(Pid, Native.SigTerm);
    }

    private static unsafe (int Read, int Write) CreatePipe()
    {
        int* fds = stackalloc int[2];
        if (Native.pipe2(fds, Native.OCloexec) != 0)
            throw new IOException($"pipe2 failed: errno {Marshal.GetLastPInvokeError()}");
        return (fds[0], fds[1]);
    }

    private static unsafe int Spawn(string path, List<string> argv, int channelWriteFd, string stdoutPath, string stderrPath, bool onCallersTerminal)
    {
        const int OWronlyCreateTruncate = 0x1 | 0x40 | 0x200;
        byte* actions = stackalloc byte[Native.FileActionsSize];
        byte* attributes = stackalloc byte[Native.SpawnAttrSize];
        byte* emptyMask = stackalloc byte[Native.SigsetSize];
        byte* defaults = stackalloc byte[Native.SigsetSize];
        new Span<byte>(emptyMask, Native.SigsetSize).Clear();
        Native.FillDefaultSignalSet(new Span<byte>(defaults, Native.SigsetSize));
        var native = new List<IntPtr>();
        try
        {
            Native.posix_spawn_file_actions_init(actions);
            Native.posix_spawnattr_init(attributes);
            if (!onCallersTerminal) Native.posix_spawn_file_actions_addopen(actions, 0, "/dev/null", Native.ORdonly, 0);
            Native.posix_spawn_file_actions_addopen(actions, 1, stdoutPath, OWronlyCreateTruncate, 0x180);
            Native.posix_spawn_file_actions_addopen(actions, 2, stderrPath, OWronlyCreateTruncate, 0x180);
            // dup2 onto 3 clears close-on-exec for the engine's copy only.
            Native.posix_spawn_file_actions_adddup2(actions, channelWriteFd, ProgressFd);
            // Descriptors the host leaked without close-on-exec must not reach the engine (and through
            // it a restored process): only 0-3 pass.
            Native.posix_spawn_file_actions_addclosefrom_np(actions, ProgressFd + 1);
            Native.posix_spawnattr_setsigmask(attributes, emptyMask);
            Native.posix_spawnattr_setsigdefault(attributes, defaults);
            // Its own session: a Ctrl+C on the shell's terminal reaches the engine only via RequestStop,
            // so it can always finish writing or removing a half-made image.
            // With the caller's terminal it stays in the caller's session, whose controlling terminal that is.
            Native.posix_spawnattr_setflags(attributes,
                (short)(Native.PosixSpawnSetSigMask | Native.PosixSpawnSetSigDefault | (onCallersTerminal ? 0 : Native.PosixSpawnSetSid)));
            byte** argvNative = ToNativeArray(argv, native);
            byte** envNative = ToNativeArray(CurrentEnvironment(), native);
            int error = Native.posix_spawn(out int pid, path, actions, attributes, argvNative, envNative);
            if (error != 0)
                throw new IOException($"posix_spawn of '{path}' failed: errno {error} ({Marshal.GetPInvokeErrorMessage(error)})");
            return pid;
        }
        finally
        {
            Native.posix_spawn_file_actions_destroy(actions);
            Native.posix_spawnattr_destroy(attributes);
            foreach (var pointer in native) Marshal.FreeCoTaskMem(pointer);
        }
    }

    private static List<string> CurrentEnvironment()
    {
        var entries = new List<string>();
        foreach (System.Collections.DictionaryEntry entry in Environment.GetEnvironmentVariables())
            entries.Add($"{entry.Key}={entry.Value}");
        return entries;
    }

    private static unsafe byte** ToNativeArray(List<string> strings, List<IntPtr> allocations)
    {
        var array = (byte**)Marshal.AllocCoTaskMem(sizeof(IntPtr) * (strings.Count + 1));
        allocations.Add((IntPtr)array);
        for (int i = 0; i < strings.Count; i++)
        {
            IntPtr text = Marshal.StringToCoTaskMemUTF8(strings[i]);
            allocations.Add(text);
            array[i] = (byte*)text;
        }
        array[strings.Count] = null;
        return array;
    }

    private void ReadChannel(SafeFileHandle channel)
    {
        try
        {
            using var stream = new FileStream(channel, FileAccess.Read, bufferSize: 1);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            while (reader.ReadLine() is { } line)
            {
                if (line.Length > 0) Post(EngineEvent.Parse(line));
            }
        }
        catch (IOException)
        {
            // The channel broke: the engine's exit status still tells what happened.
        }
    }

    private unsafe void WaitForExit()
    {
        int status = 0;
        int result;
        do result = Native.waitpid(Pid, &status, 0);
        while (result < 0 && Marshal.GetLastPInvokeError() == Native.Eintr);
        Volatile.Write(ref exited, 1);
        channelReader.Join(ChannelDrainGrace);
        StandardOutput = ReadAndDelete(stdoutPath);
        StandardError = ReadAndDelete(stderrPath);
        int exitCode = result < 0 ? -1 : Native.ExitCodeOf(status);
        Post(new EngineEvent(EngineEventKind.Exited) { ExitCode = exitCode });
        events.CompleteAdding();
    }

    private void Post(EngineEvent engineEvent)
    {
        try { events.Add(engineEvent); }
        catch (InvalidOperationException) { } // after Exited (or disposed): a late line from a descendant, dropped
    }

    private static string ReadAndDelete(string path)
    {
        try
        {
            string text = File.ReadAllText(path);
            File.Delete(path);
            return text;
        }
        catch (IOException) { return ""; }
        catch (UnauthorizedAccessException) { return ""; }
    }

    public void Dispose()
    {
        if (Volatile.Read(ref exited) == 0)
        {
            Native.kill(Pid, Native.SigTerm);
            exitWaiter.Join();
        }
        events.Dispose();
    }
}
