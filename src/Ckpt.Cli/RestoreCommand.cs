using System.CommandLine;
using System.Text.Json;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;

namespace Ckpt.Cli;

/// <summary>`ckpt restore --input FILE|- [--wait] [--force] [--trust-image] [--progress-fd N]`: prints the restored pid.</summary>
public static class RestoreCommand
{
    public static Command Create()
    {
        var input = new Option<string>("--input") { Description = "image file, or - for standard input", Required = true };
        var wait = new Option<bool>("--wait") { Description = "wait for the restored process and exit with its status" };
        var force = new Option<bool>("--force") { Description = "restore an image from another kernel release" };
        var trustImage = new Option<bool>("--trust-image") { Description = "restore the image's credentials even though someone other than root could have written it" };
        var progressFd = new Option<int?>("--progress-fd") { Description = "file descriptor for JSON progress and result lines" };
        var command = new Command("restore", "Restore a process from an image, with its original pid") { input, wait, force, trustImage, progressFd };
        command.SetAction(parse => Run(parse.GetValue(input)!, new RestoreOptions(parse.GetValue(input)!, parse.GetValue(wait), parse.GetValue(force), TrustImage: parse.GetValue(trustImage)), parse.GetValue(progressFd)));
        return command;
    }

    private static int Run(string input, RestoreOptions options, int? progressFd)
    {
        using var progress = ProgressChannel.Open(progressFd);
        using var stop = StopRequest.Listen();
        try
        {
            var result = Restorer.Restore(options, phase =>
            {
                stop.ThrowIfRequested();
                progress.Write(w => { w.WriteString("event", "progress"); w.WriteString("phase", phase); });
            });
            Console.Out.WriteLine(result.Pid);
            Console.Out.Flush();
            progress.Write(w =>
            {
                w.WriteString("event", "result");
                w.WriteBoolean("ok", true);
                w.WriteNumber("pid", result.Pid);
                w.WriteString("image", input);
                if (result.ExitStatus is { } status) w.WriteNumber("exitStatus", status);
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
