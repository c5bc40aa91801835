using System.CommandLine;
using System.Text.Json;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;

namespace Ckpt.Cli;

/// <summary>`ckpt restore --input FILE|- [--wait | --lazy] [--force] [--trust-image] [--shell-terminal] [--progress-fd N]`: prints the restored pid.</summary>
public static class RestoreCommand
{
    /// <summary>The System.CommandLine definition of `ckpt restore` (help, errors, and every spelling <see cref="RestoreArguments.TryParse"/> leaves to it).</summary>
    public static Command Create() => Define(out _);

    /// <summary><see cref="Create"/>, and how to read a parse of it into <see cref="RestoreArguments"/> (for RestoreArgumentsTests).</summary>
    internal static Command Define(out Func<ParseResult, RestoreArguments> read)
    {
        var input = new Option<string>("--input") { Description = "image file, or - for standard input", Required = true };
        var wait = new Option<bool>("--wait") { Description = "wait for the restored process and exit with its status" };
        var force = new Option<bool>("--force") { Description = "restore an image from another kernel release" };
        var trustImage = new Option<bool>("--trust-image") { Description = "restore the image's credentials even though someone other than root could have written it" };
        var progressFd = new Option<int?>("--progress-fd") { Description = "file descriptor for JSON progress and result lines" };
        var lazy = new Option<bool>("--lazy") { Description = "return once the process runs; a page server fills its memory and exits when every page is in" };
        var pageServerFd = new Option<int?>("--page-server-fd") { Description = "internal: run as the page server of --lazy, taking the restored process over on this socket", Hidden = true };
        var shellTerminal = new Option<bool>("--shell-terminal") { Description = "give processes whose terminal was outside the image (the user's terminal) the terminal this restore runs on (its standard input's) instead of refusing them" };
        var command = new Command("restore", "Restore a process from an image, with its original pid") { input, wait, force, trustImage, shellTerminal, progressFd, lazy, pageServerFd };
        read = parse => new RestoreArguments(parse.GetValue(input)!, parse.GetValue(wait), parse.GetValue(force), parse.GetValue(trustImage),
            parse.GetValue(progressFd), parse.GetValue(lazy), parse.GetValue(pageServerFd), parse.GetValue(shellTerminal));
        var readArguments = read;
        command.SetAction(parse => Execute(readArguments(parse)));
        return command;
    }

    /// <summary>Runs `ckpt restore` with its parsed options; a lazy restore that succeeded exits here (<see cref="LazyRestore.ExitNow"/>).</summary>
    internal static int Execute(RestoreArguments a)
    {
        int code = Run(a.Input, a.Wait, a.Force, a.TrustImage, a.ProgressFd, a.Lazy, a.PageServerFd, a.ShellTerminal);
        if (code == 0 && a.Lazy && a.PageServerFd is null) LazyRestore.ExitNow();
        return code;
    }

    // --shell-terminal: the terminal on standard input, by the path its descriptor leads to.
    private static unsafe string? ShellTerminal(bool wanted)
    {
        if (!wanted) return null;
        const ulong TCGETS = 0x5401;
        byte* termios = stackalloc byte[64];
        string? path = null;
        try { path = new FileInfo("/proc/self/fd/0").LinkTarget; } catch (IOException) { }
        if (path is null || !path.StartsWith("/dev/", StringComparison.Ordinal) || Native.ioctl(0, TCGETS, termios) != 0)
            throw new RestoreRefusedException($"--shell-terminal: standard input ({path ?? "closed"}) is not a terminal");
        return path;
    }

    private static int Run(string input, bool wait, bool force, bool trustImage, int? progressFd, bool lazy, int? pageServerFd, bool shellTerminal)
    {
        if (lazy && wait)
        {
            Console.Error.WriteLine("ckpt: --lazy and --wait cannot be combined");
            return 2;
        }
        if (lazy && pageServerFd is { } socket) return ServePages(socket);
        using var progress = ProgressChannel.Open(progressFd);
        using var stop = StopRequest.Listen();
        LazyRestore.PendingServer? pendingServer = null;
        LazyRestore.PageServerProcess? pageServer = null;
        try
        {
            // First: the page server process starts on the other core while this one restores.
            StageProfile.Mark("restore command");
            if (lazy) pendingServer = LazyRestore.StartServerInBackground(input);
            var result = Restorer.Restore(new RestoreOptions(input, wait, force, TrustImage: trustImage, Lazy: lazy, ShellTerminal: ShellTerminal(shellTerminal)), phase =>
            {
                stop.ThrowIfRequested();
                progress.Write(w => { w.WriteString("event", "progress"); w.WriteString("phase", phase); });
            });
            if (result.PageServer is { } served)
            {
                using (StageProfile.Measure("handover"))
                {
                    try { pageServer = pendingServer!.Wait(); }
                    catch (Exception e) when (e is IOException or SyscallException)
                    {
                        served.Stop();
                        Engine.Linux.Native.kill(result.Pid, Engine.Linux.Native.SIGKILL);
                        throw new IOException($"{e.Message}; the restored process {result.Pid} was killed", e);
                    }
                    pageServer.TakeOver(served, result.Pid);
                }
            }
            Console.Out.WriteLine(result.Pid);
            Console.Out.Flush();
            StageProfile.Mark("pid printed");
            progress.Write(w =>
            {
                w.WriteString("event", "result");
                w.WriteBoolean("ok", true);
                w.WriteNumber("pid", result.Pid);
                w.WriteString("image", input);
                if (result.ExitStatus is { } status) w.WriteNumber("exitStatus", status);
                if (pageServer is not null) w.WriteNumber("page_server_pid", pageServer.Pid);
                w.WriteNumber("peak_rss_kib", ProgressChannel.PeakResidentKib());
            });
            return result.ExitStatus ?? 0;
        }
        catch (Exception e) when (Classify(e) is var (code, category, errno))
        {
            Console.Error.WriteLine($"ckpt: {e.Message}");
            progress.Failure(category, e.Message, errno);
            return code;
        }
        finally
        {
            pendingServer?.Dispose(); // a server that took nothing over sees the end of the socket and exits
            StageProfile.Mark("restore command done");
        }
    }

    // The page server process (started by `ckpt restore --lazy`): its caller already has its answer,
    // so a failure now (a checksum mismatch kills the process) has nobody to tell but the exit code.
    private static int ServePages(int socket)
    {
        try
        {
            return LazyRestore.Serve(socket);
        }
        catch (Exception e) when (Classify(e) is var (code, _, _))
        {
            return code;
        }
    }

    private static (int Code, string Category, int Errno)? Classify(Exception e)
    {
        var syscall = e as SyscallException ?? e.InnerException as SyscallException;
        int errno = syscall?.Errno ?? 0;
        return e switch
        {
            PidInUseException => (6, "ResourceExists", Errno.EEXIST),
            Engine.Security.ImageNotTrustedException => (4, "PermissionDenied", Errno.EPERM),
            RestoreRefusedException => (6, "InvalidOperation", 0),
            RestoreException { InnerException: UnauthorizedAccessException } => (4, "PermissionDenied", Errno.EPERM),
            RestoreException { InnerException: RestoreRefusedException } => (6, "InvalidOperation", 0),
            ImageFormatException or FailedCheckpointException => (5, "InvalidData", 0),
            OperationCanceledException or RestoreException { InnerException: OperationCanceledException } => (1, "OperationStopped", 0),
            FileNotFoundException or DirectoryNotFoundException => (3, "ObjectNotFound", Errno.ENOENT),
            _ when errno is Errno.EPERM or Errno.EACCES => (4, "PermissionDenied", errno),
            UnauthorizedAccessException => (4, "PermissionDenied", Errno.EACCES),
            _ => (1, "InvalidOperation", errno),
        };
    }
}
