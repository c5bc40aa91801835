using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Ckpt.Cli;

/// <summary>
/// `ckpt restore --lazy`: the command returns as soon as the process runs again, while a page
/// server fills its memory. The command (the front) starts the engine again as the page server
/// (`--page-server-fd 3`, in its own session, stdout on /dev/null, every other descriptor of the
/// caller closed), relays its progress lines, and once the server reports the process released
/// (its ok result line) prints the pid, writes its own result line (with "page_server_pid") and
/// exits 0. A failure before the release is relayed as is, with the server's exit code. The
/// server then lets go of the caller's stderr and of the pipe, fills the rest, and exits once every
/// page is in.
/// </summary>
internal static unsafe partial class LazyRestore
{
    private const int O_CLOEXEC = 0x80000, O_WRONLY = 1, O_RDWR = 2;
    private const short POSIX_SPAWN_SETSID = 0x80;

    public static int RunFront(string input, bool force, bool trustImage, ProgressChannel progress)
    {
        int* pipe = stackalloc int[2];
        if (pipe2(pipe, O_CLOEXEC) != 0) throw new IOException($"pipe2 failed: errno {Marshal.GetLastPInvokeError()}");
        int server;
        try { server = Spawn(input, force, trustImage, pipe[1]); }
        finally { close(pipe[1]); }
        using var lines = new StreamReader(new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(pipe[0], ownsHandle: true), FileAccess.Read, 1), Encoding.UTF8);
        while (lines.ReadLine() is { } line)
        {
            using JsonDocument document = JsonDocument.Parse(line);
            JsonElement root = document.RootElement;
            if (root.GetProperty("event").GetString() != "result" || !root.GetProperty("ok").GetBoolean())
            {
                progress.WriteRaw(line);
                continue;
            }
            Console.Out.WriteLine(root.GetProperty("pid").GetInt32());
            Console.Out.Flush();
            progress.WriteRaw(line);
            return 0;
        }
        // No ok result: the server failed before the release, said why on stderr and the pipe, and exits.
        int status = 0;
        while (waitpid(server, &status, 0) < 0 && Marshal.GetLastPInvokeError() == 4) { }
        int code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f);
        if (code == 0)
        {
            Console.Error.WriteLine("ckpt: the page server exited without restoring the process");
            return 1;
        }
        return code;
    }

    private static int Spawn(string input, bool force, bool trustImage, int reportFd)
    {
        string[] arguments = ["ckpt", "restore", "--input", input, "--lazy", "--page-server-fd", "3", .. (force ? ["--force"] : Array.Empty<string>()), .. (trustImage ? ["--trust-image"] : Array.Empty<string>())];
        byte* actions = stackalloc byte[128], attributes = stackalloc byte[512];
        posix_spawn_file_actions_init(actions);
        posix_spawnattr_init(attributes);
        try
        {
            posix_spawn_file_actions_adddup2(actions, reportFd, 3);
            posix_spawn_file_actions_addopen(actions, 1, "/dev/null", O_WRONLY, 0);
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

    /// <summary>The server, once the process is released: nothing of the caller stays open (stderr goes to /dev/null).</summary>
    public static void LetGoOfCaller()
    {
        int devnull = open("/dev/null", O_RDWR, 0);
        if (devnull < 0) return;
        dup2(devnull, 2);
        close(devnull);
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int pipe2(int* fds, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int dup2(int fd, int newFd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags, int mode);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int waitpid(int pid, int* status, int options);

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
