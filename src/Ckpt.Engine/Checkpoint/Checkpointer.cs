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
/// <param name="Stopping">From the first PTRACE_INTERRUPT until every thread was stopped.</param>
/// <param name="Threads">Threads frozen and saved.</param>
public sealed record CheckpointResult(int Pid, long Bytes, TimeSpan Frozen, TimeSpan Stopping = default, int Threads = 1);

/// <summary>
/// checkpoint = freeze (seize + interrupt) -> inspect and refuse early (children, seccomp, unshared threads,
/// fds, mappings) -> read the injected state -> write the image in docs/ARCHITECTURE.md order ->
/// resume (every thread continued, the interrupted calls re-entered; the kernel detaches them when the tracer
/// thread exits), then tail and flush; with Kill: tail, flush, then SIGKILL. On any failure the image gets an ERROR
/// record (when the stream still takes one) and the process is detached and runs on untouched.
/// All ptrace work happens on one dedicated thread.
/// </summary>
public static class Checkpointer
{
    public static CheckpointResult Run(CheckpointOptions options, Action<string, long, long>? progress = null)
    {
        Func<CheckpointResult>? finish = null;
        Exception? failure = null;
        List<int> threads = [];
        progress ??= (_, _, _) => { };
        var thread = new Thread(() =>
        {
            try { finish = RunOnTracerThread(options, progress, threads); }
            catch (Exception e) { failure = e; }
        }, 1 << 20) { Name = "ckpt-tracer" };
        thread.Start();
        thread.Join();
        // Once the tracer thread has exited the kernel lets go of every thread of the target (see
        // SyscallReentry): wait for it, so that the target is untraced when we report, and a second
        // checkpoint can seize it at once. The rest of the image reaches the stream from here.
        TracerExit.WaitUntilDetached(threads);
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        return finish!();
    }

    // Returns what is left to do once the tracer thread is gone: nothing with Kill, the write-out otherwise.
    private static Func<CheckpointResult> RunOnTracerThread(CheckpointOptions options, Action<string, long, long> progress, List<int> threads)
    {
        int pid = options.Pid;
        if (pid <= 0) throw new InvalidPidException(pid);
        if (!Directory.Exists($"/proc/{pid}")) throw new TargetNotFoundException(pid);
        UnprivilegedMode.CheckTarget(pid); // a caller other than root: their own processes only
        progress("freeze", 0, 0);
        ThreadGroupFreeze freeze;
        try { freeze = ThreadGroupFreeze.Seize(pid); }
        catch (SyscallException e) when (e.Errno == Errno.ESRCH) { throw new TargetNotFoundException(pid); }
        threads.Add(pid);
        var writer = new ImageWriter(options.Output, leaveOpen: true, options.WriteBehind);
        bool imageComplete = false, handedOver = false;
        try
        {
            // Deferred write-out holds every page in the engine: fault its memory in now, while the
            // process still runs (a page fault costs about 10 us in a VM).
            if (options.WriteBehind == WriteBehind.Deferred) writer.Preallocate(MemoryCheckpoint.EstimateImageBytes(pid));
            var frozen = System.Diagnostics.Stopwatch.StartNew();
            freeze.StopAll();
            UnprivilegedMode.CheckTarget(pid); // again, now that it cannot exec a setuid program any more
            threads.AddRange(freeze.Tracees.Select(t => t.Pid).Where(tid => tid != pid));
            TimeSpan stopping = frozen.Elapsed;
            WriteImage(freeze, writer, progress);
            if (options.Kill)
            {
                // The image is about to be the only copy of the process: complete and on storage first.
                writer.WriteTail();
                imageComplete = true;
                options.Durable?.Invoke();
                freeze.KillAll();
                var killed = new CheckpointResult(pid, writer.BytesWritten, frozen.Elapsed, stopping, freeze.Tracees.Count);
                if (options.WaitForReap) WaitUntilReaped(pid);
                return () => killed;
            }
            // Every page has been read: the process runs on while the rest reaches the stream.
            freeze.ReleaseAll();
            TimeSpan frozenFor = frozen.Elapsed;
            handedOver = true;
            return () => WriteOut(options, writer, progress, new CheckpointResult(pid, 0, frozenFor, stopping, freeze.Tracees.Count));
        }
        catch (Exception e)
        {
            if (freeze.AnyAttached) freeze.ReleaseAll();
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
            if (!handedOver) DisposeQuietly(writer);
        }
    }

    private static CheckpointResult WriteOut(CheckpointOptions options, ImageWriter writer, Action<string, long, long> progress, CheckpointResult result)
    {
        bool imageComplete = false;
        try
        {
            progress("write-out", 0, 0);
            writer.StartWriteOut();
            writer.WriteTail();
            imageComplete = true;
            options.Durable?.Invoke();
            return result with { Bytes = writer.BytesWritten };
        }
        catch (Exception e)
        {
            if (!imageComplete) TryWriteError(writer, e);
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
    // Order (docs/ARCHITECTURE.md): header, tree and task table, then one section per task, each
    // using the process-wide objects through the object table (written by the first task, the
    // leader; referred to by objref from the others).
    private static void WriteImage(ThreadGroupFreeze freeze, ImageWriter writer, Action<string, long, long> progress)
    {
        int pid = freeze.Pid;
        Tracee leader = freeze.Leader;
        var objects = new ObjectTable();
        ProcStatus status = ProcStatus.Read(pid);
        if (ProcStat.IsZombie(pid) == true)
            throw new CheckpointRefusedException($"the main thread of process {pid} has exited while other threads run on: not supported");
        List<int> tids = freeze.Tracees.Select(t => t.Pid).ToList();
        // Read once per thread while frozen: for the refusals now and the TASK records later.
        Dictionary<int, ProcStatus> statuses = tids.ToDictionary(tid => tid, tid => tid == pid ? status : ProcStatus.Read(tid));
        TaskCheckpoint.Refuse(pid, statuses);
        // A job-control-stopped task cannot run the injected calls (it re-enters the group stop).
        if (freeze.Tracees.Any(t => t.InGroupStop))
            throw new CheckpointRefusedException($"process {pid} is stopped by job control: continue it (SIGCONT) before checkpointing");
        progress("inspect", 0, 0);
        var uses = new TaskObjectsRecord
        {
            MmObjRef = objects.RefOf(ObjectType.Mm, pid), FileTableObjRef = objects.RefOf(ObjectType.FileTable, pid),
            SignalHandlersObjRef = objects.RefOf(ObjectType.SignalHandlers, pid), SignalObjRef = objects.RefOf(ObjectType.Signal, pid),
        };
        FilesCheckpoint files = FilesCheckpoint.Inspect(pid, objects);
        // Before anything is injected into any thread (see RseqCriticalSection).
        foreach (Tracee tracee in freeze.Tracees) RseqCriticalSection.MoveToAbort(tracee);
        ulong syscallAddress = RemoteSyscall.FindSyscallInstruction(pid);
        InjectedTaskState injected = InjectedTaskState.Read(leader, syscallAddress);
        List<ThreadCheckpoint> threads = freeze.Tracees.Select(t => ThreadCheckpoint.Capture(t, pid, syscallAddress)).ToList();
        MemoryCheckpoint memory = MemoryCheckpoint.Inspect(pid, objects);
        ProcStat stat = ProcStat.Read(pid);

        progress("task", 0, 0);
        HeaderWriter.Write(writer, threads[0].Xstate);
        writer.Write(new TreeRecord { TaskCount = tids.Count, ProcessCount = 1 });
        foreach (int tid in tids) writer.Write(TaskCheckpoint.Ids(tid, pid, stat));

        for (int i = 0; i < threads.Count; i++)
        {
            int tid = tids[i];
            if (tid == pid) TaskCheckpoint.WriteLeader(writer, pid, status, stat, injected.SecureBits, tids.Count, injected.Dumpable);
            else writer.Write(TaskCheckpoint.Task(tid, statuses[tid], ProcStat.Read(tid), tids.Count, injected.Dumpable));
            writer.Write(uses);
            objects.WriteUse(writer, ObjectType.Mm, uses.MmObjRef, () =>
            {
                long total = memory.TotalPages;
                progress("pages", 0, total);
                memory.Write(writer, uses.MmObjRef, stat, injected.Brk, done => progress("pages", done, total));
            });
            objects.WriteUse(writer, ObjectType.FileTable, uses.FileTableObjRef, () =>
            {
                progress("files", 0, 0);
                files.Write(writer, uses.FileTableObjRef);
            });
            objects.WriteUse(writer, ObjectType.SignalHandlers, uses.SignalHandlersObjRef, () =>
            {
                progress("signals", 0, 0);
                SignalsCheckpoint.WriteHandlers(writer, injected, uses.SignalHandlersObjRef);
            });
            objects.WriteUse(writer, ObjectType.Signal, uses.SignalObjRef, () => SignalsCheckpoint.WriteSignal(writer, leader, injected, uses.SignalObjRef));
            threads[i].Write(writer);
        }
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

}
