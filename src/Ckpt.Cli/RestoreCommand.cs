using System.CommandLine;
using System.Text.Json;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;

namespace Ckpt.Cli;

/// <summary>`ckpt restore --input FILE|- [--wait] [--force] [--progress-fd N]`: prints the restored pid.</summary>
public static class RestoreCommand
{
    public static Command Create()
    {
        var input = new Option<string>("--input") { Description = "image file, or - for standard input", Required = true };
        var wait = new Option<bool>("--wait") { Description = "wait for the restored process and exit with its status" };
        var force = new Option<bool>("--force") { Description = "restore an image from another kernel release" };
        var progressFd = new Option<int?>("--progress-fd") { Description = "file descriptor for JSON progress and result lines" };
        var command = new Command("restore", "Restore a process from an image, with its original pid") { input, wait, force, progressFd };
        command.SetAction(parse => Run(parse.GetValue(input)!, parse.GetValue(wait), parse.GetValue(force), parse.GetValue(progressFd)));
        return command;
    }

    private static int Run(string input, bool wait, bool force, int? progressFd)
    {
        using var progress = ProgressChannel.Open(progressFd);
        try
        {
            var result = Restorer.Restore(new RestoreOptions(input, wait, force), phase => progress.Write(w => { w.WriteString("event", "progress"); w.WriteString("phase", phase); }));
            Console.Out.WriteLine(result.Pid);
            Console.Out.Flush();
            progress.Write(w =>
            {
                w.WriteString("event", "result");
                w.WriteBoolean("ok", true);
                w.WriteNumber("pid", result.Pid);
                w.WriteString("image", input);
                if (result.ExitStatus is { } status) w.WriteNumber("exitStatus", status);
            });
            return result.ExitStatus ?? 0;
        }
        catch (Exception e) when (Classify(e) is var (code, category, errno))
        {
            Console.Error.WriteLine($"ckpt: {e.Message}");
            progress.Write(w =>
            {
                w.WriteString("event", "result");
                w.WriteBoolean("ok", false);
                w.WriteString("category", category);
                w.WriteString("message", e.Message);
                w.WriteNumber("errno", errno);
            });
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
            RestoreRefusedException => (6, "InvalidOperation", 0),
            RestoreException { InnerException: RestoreRefusedException } => (6, "InvalidOperation", 0),
            ImageFormatException => (5, "InvalidData", 0),
            FileNotFoundException or DirectoryNotFoundException => (3, "ObjectNotFound", Errno.ENOENT),
            _ when errno is Errno.EPERM or Errno.EACCES => (4, "PermissionDenied", errno),
            UnauthorizedAccessException => (4, "PermissionDenied", Errno.EACCES),
            _ => (1, "InvalidOperation", errno),
        };
    }
}

/// <summary>One JSON object per line on --progress-fd (docs/ARCHITECTURE.md); a no-op without it.</summary>
internal sealed unsafe partial class ProgressChannel : IDisposable
{
    private readonly int _fd;

    private ProgressChannel(int fd) => _fd = fd;

    public static ProgressChannel Open(int? fd) => new(fd ?? -1);

    public void Write(Action<Utf8JsonWriter> fields)
    {
        if (_fd < 0) return;
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            fields(json);
            json.WriteEndObject();
        }
        buffer.WriteByte((byte)'\n');
        // write(2) at the descriptor's own position: the fd may be a pipe, a terminal or a file
        // shared with other writers, so no stream with its own idea of the offset.
        byte[] line = buffer.ToArray();
        fixed (byte* bytes = line)
        {
            for (int done = 0; done < line.Length;)
            {
                nint n = write(_fd, bytes + done, (nuint)(line.Length - done));
                if (n <= 0) return; // a reader that went away must not fail the restore
                done += (int)n;
            }
        }
    }

    public void Dispose() { }

    [System.Runtime.InteropServices.LibraryImport("libc", SetLastError = true)]
    private static partial nint write(int fd, byte* buffer, nuint count);
}
