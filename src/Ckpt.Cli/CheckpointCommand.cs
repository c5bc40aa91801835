using System.CommandLine;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Image;

namespace Ckpt.Cli;

/// <summary>`ckpt checkpoint --pid N --output FILE|- [--force] [--kill] [--deferred-write] [--tcp-established] [--progress-fd N]`.</summary>
public static class CheckpointCommand
{
    public static Command Create()
    {
        var pid = new Option<int>("--pid") { Description = "process to checkpoint", Required = true };
        var output = new Option<string>("--output") { Description = "image file (created 0600, put in place when complete), or - for standard output", Required = true };
        var force = new Option<bool>("--force") { Description = "replace an existing image file (only once the new one is complete)" };
        var kill = new Option<bool>("--kill") { Description = "kill the process once the image is complete and flushed" };
        var progressFd = new Option<int?>("--progress-fd") { Description = "file descriptor for JSON progress and result lines" };
        var deferred = new Option<bool>("--deferred-write")
        {
            Description = "copy every page into the engine while the process is frozen and write the image after it resumes "
                + "(shortest freeze; the engine needs memory as large as the image)",
        };
        var tcpEstablished = new Option<bool>("--tcp-established")
        {
            Description = "save established TCP connections with TCP_REPAIR (needs CAP_NET_ADMIN); a peer outside the tree is locked out "
                + "by an nftables table (nft needed) until the checkpoint ends or, with --kill, until the restore: it retransmits, "
                + "it is not reset. Without it such connections are refused",
        };
        var command = new Command("checkpoint", "Write an image of a running process; it runs on unless --kill") { pid, output, force, kill, progressFd, deferred, tcpEstablished };
        command.SetAction(parse => Run(parse.GetValue(pid), parse.GetValue(output)!, parse.GetValue(force), parse.GetValue(kill), parse.GetValue(progressFd),
            parse.GetValue(deferred) ? WriteBehind.Deferred : WriteBehind.Pipelined, parse.GetValue(tcpEstablished)));
        return command;
    }

    private static int Run(int pid, string output, bool force, bool kill, int? progressFd, WriteBehind writeBehind, bool tcpEstablished)
    {
        using var progress = ProgressChannel.Open(progressFd);
        using var stop = StopRequest.Listen();
        try
        {
            // Both refused before the target is touched: a pid that cannot exist, an output path that is taken.
            if (pid <= 0) throw new InvalidPidException(pid);
            using ImageOutputFile? file = output == "-" ? null : ImageOutputFile.Open(output, force);
            using Stream stream = file?.Stream ?? Console.OpenStandardOutput();
            // Commit = on storage and in place: before the kill with --kill, after the resume otherwise.
            Action? durable = file is null ? null : file.Commit;
            var result = Checkpointer.Run(new CheckpointOptions(pid, stream, kill, durable, WaitForReap: output == "-" || file!.IsStream, writeBehind, tcpEstablished), (phase, done, total) =>
            {
                stop.ThrowIfRequested(); // between phases and page chunks: a safe point to stop at
                progress.Write(w =>
                {
                    w.WriteString("event", "progress");
                    w.WriteString("phase", phase);
                    if (total > 0)
                    {
                        w.WriteNumber("done", done);
                        w.WriteNumber("total", total);
                    }
                });
            });
            progress.Write(w =>
            {
                w.WriteString("event", "result");
                w.WriteBoolean("ok", true);
                w.WriteNumber("pid", result.Pid);
                w.WriteString("image", output == "-" ? "-" : Path.GetFullPath(output));
                w.WriteNumber("bytes", result.Bytes);
                w.WriteNumber("frozen_seconds", result.Frozen.TotalSeconds);
                w.WriteNumber("stop_seconds", result.Stopping.TotalSeconds);
                w.WriteNumber("threads", result.Threads);
                w.WriteNumber("peak_rss_kib", ProgressChannel.PeakResidentKib());
            });
            return 0;
        }
        catch (Exception e)
        {
            var (code, category, errno) = Classify(e);
            Console.Error.WriteLine($"ckpt: {e.Message}");
            if (Environment.GetEnvironmentVariable("CKPT_TRACE") == "1") Console.Error.WriteLine(e); // for bug reports
            progress.Failure(category, e.Message, errno);
            return code;
        }
    }

    // Exit codes and categories of docs/ARCHITECTURE.md.
    private static (int Code, string Category, int Errno) Classify(Exception e)
    {
        int errno = (e as SyscallException)?.Errno ?? (e.InnerException as SyscallException)?.Errno ?? 0;
        return e switch
        {
            TargetNotFoundException => (3, "ObjectNotFound", Errno.ESRCH),
            InvalidPidException => (5, "InvalidArgument", 0),
            ImageOutputRefusedException { Exists: true } => (6, "ResourceExists", Errno.EEXIST),
            ImageOutputRefusedException => (6, "InvalidOperation", 0),
            ImageOutputException { Errno: Errno.EPERM or Errno.EACCES } o => (4, "PermissionDenied", o.Errno),
            ImageOutputException o => (1, "WriteError", o.Errno),
            CheckpointRefusedException => (6, "InvalidOperation", 0),
            OperationCanceledException => (1, "OperationStopped", 0),
            TraceeExitedException => (1, "ResourceUnavailable", Errno.ESRCH),
            SyscallException { Errno: Errno.EPERM or Errno.EACCES } => (4, "PermissionDenied", errno),
            UnauthorizedAccessException => (4, "PermissionDenied", Errno.EACCES),
            IOException => (1, "WriteError", e.HResult is > 0 and < 4096 ? e.HResult : 0),
            _ => (1, "InvalidOperation", errno),
        };
    }
}
