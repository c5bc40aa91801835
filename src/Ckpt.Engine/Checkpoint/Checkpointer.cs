using Ckpt.Engine.Files;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Memory;
using Ckpt.Engine.Signals;
using Ckpt.Engine.Tasks;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Checkpoint;

/// <param name="Pid">The process to checkpoint.</param>
/// <param name="Output">Where the image goes (a file, a pipe, stdout); flushed, not closed.</param>
/// <param name="Kill">End the process once the image is complete and flushed.</param>
/// <param name="Durable">Makes the image durable (fsync of a file): before the kill with Kill, after the resume otherwise.</param>
/// <param name="WaitForReap">With Kill: wait (at most 2 s) until the parent has reaped the target, so a
/// restore reading the image from a pipe finds its pid free.</param>
/// <param name="WriteBehind">Pipelined: the device is written while the next pages are read, memory
/// bounded. Deferred: every page is copied into the engine while the process is frozen and written
/// out after it resumes (shortest freeze, engine memory as large as the image).</param>
public sealed record CheckpointOptions(int Pid, Stream Output, bool Kill, Action? Durable = null, bool WaitForReap = false,
    WriteBehind WriteBehind = WriteBehind.Pipelined);

/// <param name="Frozen">From PTRACE_INTERRUPT to the resume (or kill): how long the application was stopped.</param>
public sealed record CheckpointResult(int Pid, long Bytes, TimeSpan Frozen);

/// <summary>
/// checkpoint = freeze (seize + interrupt) -> inspect and refuse early (threads, children, seccomp,
/// fds, mappings) -> read the injected state -> write the image in docs/ARCHITECTURE.md order ->
/// resume (detach), then tail and flush; with Kill: tail, flush, then SIGKILL. On any failure the image gets an ERROR
/// record (when the stream still takes one) and the process is detached and runs on untouched.
/// All ptrace work happens on one dedicated thread.
/// </summary>
public static class Checkpointer
{
    public static CheckpointResult Run(CheckpointOptions options, Action<string, long, long>? progress = null)
    {
        CheckpointResult? result = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try { result = RunOnTracerThread(options, progress ?? ((_, _, _) => { })); }
            catch (Exception e) { failure = e; }
        }, 1 << 20) { Name = "ckpt-tracer" };
        thread.Start();
        thread.Join();
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        return result!;
    }

    private static CheckpointResult RunOnTracerThread(CheckpointOptions options, Action<string, long, long> progress)
    {
        int pid = options.Pid;
        if (pid <= 0 || !Directory.Exists($"/proc/{pid}")) throw new TargetNotFoundException(pid);
        progress("freeze", 0, 0);
        Tracee tracee;
        try { tracee = Tracee.Seize(pid); }
        catch (SyscallException e) when (e.Errno == Errno.ESRCH) { throw new TargetNotFoundException(pid); }
        var writer = new ImageWriter(options.Output, leaveOpen: true, options.WriteBehind);
        bool imageComplete = false;
        try
        {
            // Deferred write-out holds every page in the engine: fault its memory in now, while the
            // process still runs (a page fault costs about 10 us in a VM).
            if (options.WriteBehind == WriteBehind.Deferred) writer.Preallocate(MemoryCheckpoint.EstimateImageBytes(pid));
            var frozen = System.Diagnostics.Stopwatch.StartNew();
            tracee.Interrupt();
            WriteImage(tracee, writer, progress);
            TimeSpan frozenFor;
            if (options.Kill)
            {
                // The image is about to be the only copy of the process: complete and on storage first.
                writer.WriteTail();
                imageComplete = true;
                options.Durable?.Invoke();
                tracee.Kill();
                frozenFor = frozen.Elapsed;
            }
            else
            {
                // Every page has been read: the process runs on while the rest reaches the stream.
                tracee.Detach();
                frozenFor = frozen.Elapsed;
                progress("write-out", 0, 0);
                writer.StartWriteOut();
                writer.WriteTail();
                imageComplete = true;
                options.Durable?.Invoke();
            }
            if (options.Kill && options.WaitForReap) WaitUntilReaped(pid);
            return new CheckpointResult(pid, writer.BytesWritten, frozenFor);
        }
        catch (Exception e)
        {
            if (tracee.Attached) TryDetach(tracee);
            // A refusal or a stop request says what happened; other failures may be the target dying.
            Exception reported = e is not (TraceeExitedException or CheckpointRefusedException or OperationCanceledException) && TargetGone(pid)
                ? new TraceeExitedException(pid, $"exited during the checkpoint ({e.Message})")
                : e;
            if (!imageComplete) TryWriteError(writer, reported);
            if (reported != e) throw reported;
            throw;
        }
        finally
        {
            DisposeQuietly(writer);
        }
    }

    // Only reached after the image's outcome is decided; a stream that fails again here (disk
    // full) must not hide the first error.
    private static void DisposeQuietly(ImageWriter writer)
    {
        try { writer.Dispose(); }
        catch (Exception) { /* reported by the checkpoint's own failure, if any */ }
    }

    // Gone, or exiting: a zombie, or a task whose exit the tracer (us) is told of. A task killed a
    // moment ago may still be on its way out (slowly, on a starved machine), so look for up to half
    // a second before calling it alive; this only runs on a failure path.
    private static unsafe bool TargetGone(int pid)
    {
        for (int attempt = 0; attempt < 250; attempt++)
        {
            if (ProcStat.IsZombie(pid) != false) return true;
            int status;
            if (Native.waitpid(pid, &status, Native.WALL | Native.WNOHANG) == pid && !WaitStatus.Stopped(status)) return true;
            Thread.Sleep(2);
        }
        return false;
    }

    // Everything but the tail: once this returns, nothing more is read from the process.
    private static void WriteImage(Tracee tracee, ImageWriter writer, Action<string, long, long> progress)
    {
        int pid = tracee.Pid;
        var objRefs = new ObjRefs();
        ProcStatus status = ProcStatus.Read(pid);
        TaskCheckpoint.Refuse(pid, status);
        // A job-control-stopped task cannot run the injected calls (it re-enters the group stop).
        if (tracee.InGroupStop)
            throw new CheckpointRefusedException($"process {pid} is stopped by job control: continue it (SIGCONT) before checkpointing");
        progress("inspect", 0, 0);
        int mmRef = objRefs.Next(), filesRef = objRefs.Next(), handlersRef = objRefs.Next();
        FilesCheckpoint files = FilesCheckpoint.Inspect(pid, objRefs);
        RseqCriticalSection.MoveToAbort(tracee);
        InjectedTaskState injected = InjectedTaskState.Read(tracee);
        ThreadCheckpoint thread = ThreadCheckpoint.Capture(tracee, injected);
        MemoryCheckpoint memory = MemoryCheckpoint.Inspect(pid, objRefs);
        ProcStat stat = ProcStat.Read(pid);

        progress("task", 0, 0);
        HeaderWriter.Write(writer, thread.Xstate);
        writer.Write(new TreeRecord { TaskCount = 1 });
        TaskCheckpoint.Write(writer, pid, status, stat, injected.SecureBits);
        writer.Write(new TaskObjectsRecord { MmObjRef = mmRef, FileTableObjRef = filesRef, SignalHandlersObjRef = handlersRef });

        long total = memory.TotalPages;
        progress("pages", 0, total);
        memory.Write(writer, mmRef, stat, injected.Brk, done => progress("pages", done, total));
        progress("files", 0, 0);
        files.Write(writer, filesRef);
        progress("signals", 0, 0);
        SignalsCheckpoint.Write(writer, tracee, injected, handlersRef);
        thread.Write(writer);
    }

    // After --kill the pid stays taken until the target's parent reaps the zombie. A restore that
    // reads this image from a pipe starts as soon as we exit, so give the parent a moment (bounded:
    // a parent that reaps only after we exit must not hang us).
    private static void WaitUntilReaped(int pid)
    {
        for (int i = 0; i < 1000 && Directory.Exists($"/proc/{pid}"); i++) Thread.Sleep(2);
    }

    private static void TryWriteError(ImageWriter writer, Exception e)
    {
        try
        {
            int errno = (e as SyscallException)?.Errno ?? 0;
            writer.WriteError(errno, e.Message);
            writer.WriteTail();
        }
        catch (Exception)
        {
            // The stream itself failed (disk full, reader gone): the caller reports the first error.
        }
    }

    private static void TryDetach(Tracee tracee)
    {
        try { tracee.Detach(); }
        catch (Exception) { /* already gone: nothing left to resume */ }
    }
}
