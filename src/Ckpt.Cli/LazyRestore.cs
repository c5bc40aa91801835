using System.Runtime.InteropServices;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Memory;
using Ckpt.Engine.Restore;

namespace Ckpt.Cli;

/// <summary>
/// `ckpt restore --lazy`: the command returns as soon as the process runs again, while a page server
/// process fills its memory. The command (the front) starts the engine again as the page server first
/// thing (`--page-server-fd 3`: one end of a socket pair; its own session; standard descriptors on
/// /dev/null; every other descriptor of the caller closed), so that its startup overlaps the restore,
/// which the front does itself. Once the process runs, the front hands its userfaultfds, the image and
/// the missing pages over (<see cref="LazyHandover"/>; it does not wait for the server to read them),
/// prints the pid, writes its result line (with "page_server_pid") and exits 0 at once (<see cref="ExitNow"/>).
/// If the server is gone before the handover (its spawn failed, or it died), the front kills the
/// restored process and fails. The server fills the rest and exits once every
/// page is in (and the image's checksum matched: a mismatch kills the process).
/// </summary>
internal static unsafe partial class LazyRestore
{
    private const int O_RDWR = 2;
    private const short POSIX_SPAWN_SETSID = 0x80;
    private const int SIGKILL = 9;

    /// <summary>The page server process, started but not serving yet; disposing closes the socket (it then exits).</summary>
    internal sealed class PageServerProcess(int pid, int socket) : IDisposable
    {
        private int _socket = socket;

        public int Pid { get; } = pid;

        /// <summary>Hands the restored process <paramref name="restored"/> over; kills it if the server does not take it.</summary>
        public void TakeOver(LazyPageServer served, int restored)
        {
            try
            {
                LazyHandover.Send(_socket, served);
            }
            catch (Exception e) when (e is IOException or SyscallException)
            {
                kill(restored, SIGKILL);
                throw new IOException($"{e.Message}; the restored process {restored} was killed", e);
            }
        }

        public void Dispose()
        {
            if (_socket >= 0) close(_socket);
            _socket = -1;
        }
    }

    /// <summary>
    /// Starts the page server process on a thread of its own: posix_spawn returns only once the child
    /// has executed the engine (vfork), several milliseconds that would otherwise delay the image's read
    /// and the restore. <see cref="PendingServer.Wait"/> gives the server, or throws why it could not start.
    /// </summary>
    public static PendingServer StartServerInBackground(string input) => new(input);

    internal sealed class PendingServer
    {
        private readonly Thread _thread;
        private PageServerProcess? _server;
        private Exception? _failure;

        public PendingServer(string input)
        {
            _thread = new Thread(() =>
            {
                try { _server = StartServer(input); }
                catch (Exception e) { _failure = e; }
            }, 256 << 10) { Name = "ckpt page server spawn" };
            _thread.Start();
        }

        public PageServerProcess Wait()
        {
            _thread.Join();
            if (_failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(_failure);
            return _server!;
        }

        /// <summary>Closes the socket once the spawn is done (a server that took nothing over then exits).</summary>
        public void Dispose()
        {
            _thread.Join();
            _server?.Dispose();
        }
    }

    /// <summary>Starts the page server process (first thing: it starts while the front restores).</summary>
    public static PageServerProcess StartServer(string input)
    {
        var (ours, theirs) = LazyHandover.CreateSocketPair();
        try
        {
            return new PageServerProcess(Spawn(input, theirs), ours);
        }
        catch
        {
            close(ours);
            throw;
        }
        finally
        {
            close(theirs);
        }
    }

    /// <summary>
    /// The end of a lazy restore that succeeded: the pid and the result line are written, the process
    /// handed over, every handle closed; nothing is left to do but exit. _exit skips the runtime's
    /// shutdown and libc's exit handlers (1.5-9 ms of a return that should take a few tens).
    /// </summary>
    public static void ExitNow()
    {
        StageProfile.Mark("exit");
        Console.Out.Flush();
        Console.Error.Flush();
        _exit(0);
    }

    /// <summary>The page server process: takes the restored process over from the front, fills every page, exits.</summary>
    public static int Serve(int socket)
    {
        LazyPageServer? server = LazyHandover.Receive(socket);
        close(socket);
        if (server is null) return 0; // the front's restore failed and it said why: nothing to serve
        server.StartFilling();
        server.Completion.GetAwaiter().GetResult();
        return 0;
    }

    private static int Spawn(string input, int socket)
    {
        // The arguments name the image for ps (and the benchmark's pgrep); the server gets it by descriptor.
        string[] arguments = ["ckpt", "restore", "--input", input, "--lazy", "--page-server-fd", "3"];
        byte* actions = stackalloc byte[128], attributes = stackalloc byte[512];
        posix_spawn_file_actions_init(actions);
        posix_spawnattr_init(attributes);
        try
        {
            posix_spawn_file_actions_adddup2(actions, socket, 3);
            for (int fd = 0; fd <= 2; fd++) posix_spawn_file_actions_addopen(actions, fd, "/dev/null", O_RDWR, 0);
            posix_spawn_file_actions_addclosefrom_np(actions, 4);
            posix_spawnattr_setflags(attributes, POSIX_SPAWN_SETSID);
            var argv = arguments.Select(Marshal.StringToCoTaskMemUTF8).Append(0).ToArray();
            var envp = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
                .Select(e => Marshal.StringToCoTaskMemUTF8($"{e.Key}={e.Value}")).Append(0).ToArray();
            try
            {
                fixed (nint* args = argv, environment = envp)
                {
                    int error = posix_spawn(out int pid, Environment.ProcessPath!, actions, attributes, (byte**)args, (byte**)environment);
                    if (error != 0) throw new IOException($"posix_spawn of the page server ({Environment.ProcessPath}) failed: errno {error}");
                    return pid;
                }
            }
            finally
            {
                foreach (nint a in argv.Concat(envp)) Marshal.FreeCoTaskMem(a);
            }
        }
        finally
        {
            posix_spawn_file_actions_destroy(actions);
            posix_spawnattr_destroy(attributes);
        }
    }

    [LibraryImport("libc")]
    private static partial void _exit(int status);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

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

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int posix_spawn(out int pid, string path, void* fileActions, void* attributes, byte** argv, byte** envp);
}
