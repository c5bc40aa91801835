using Ckpt.Engine.Checkpoint.Audit;
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
/// <param name="TcpEstablished">Save established TCP connections with TCP_REPAIR (<see cref="Files.Sockets.TcpConnectionCheckpoint"/>);
/// without it they are refused, naming their addresses.</param>
public sealed record CheckpointOptions(int Pid, Stream Output, bool Kill, Action? Durable = null, bool WaitForReap = false,
    WriteBehind WriteBehind = WriteBehind.Pipelined, bool TcpEstablished = false);

/// <param name="Frozen">From PTRACE_INTERRUPT to the resume (or kill): how long the application was stopped.</param>
/// <param name="Stopping">From the first PTRACE_INTERRUPT until every thread was stopped.</param>
/// <param name="Threads">Threads frozen and saved.</param>
public sealed record CheckpointResult(int Pid, long Bytes, TimeSpan Frozen, TimeSpan Stopping = default, int Threads = 1);

/// <summary>
/// checkpoint = audit (KernelStateAudit: state the image cannot hold is refused before the target is even
/// seized) -> freeze (seize + interrupt) -> inspect and refuse early (the audit again on the frozen state, children,
/// unshared threads, fds, mappings) -> read the injected state (with read-only probes that may still refuse) -> write the image in docs/FORMAT.md order ->
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
        using (CheckpointProfile.Measure("wait until detached")) TracerExit.WaitUntilDetached(threads);
        CheckpointProfile.Report();
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
        // Root signs what it writes, so that a restore can tell the image was not changed since (docs/SECURITY.md).
        var writer = new ImageWriter(options.Output, leaveOpen: true, options.WriteBehind, Security.ImageKeyFile.ForCheckpoint());
        TreeFreeze freeze;
        try
        {
            progress("audit", 0, 0);
            using (CheckpointProfile.Measure("audit")) AuditBeforeFreeze(pid);
            progress("freeze", 0, 0);
            try { using (CheckpointProfile.Measure("seize")) freeze = TreeFreeze.Seize(pid); }
            catch (SyscallException e) when (e.Errno == Errno.ESRCH) { throw new TargetNotFoundException(pid); }
        }
        catch (Exception e)
        {
            // Nothing of the target was touched; the image says why, as for later failures.
            TryWriteError(writer, e);
            DisposeQuietly(writer);
            throw;
        }
        threads.Add(pid);
        bool imageComplete = false, handedOver = false;
        var connections = new Files.Sockets.TcpConnectionCheckpoint(options.TcpEstablished, pid);
        try
        {
            // Deferred write-out holds every page in the engine: fault its memory in now, while the
            // process still runs (a page fault costs about 10 us in a VM).
            if (options.WriteBehind == WriteBehind.Deferred) writer.Preallocate(MemoryCheckpoint.EstimateImageBytes(pid));
            var frozen = System.Diagnostics.Stopwatch.StartNew();
            using (CheckpointProfile.Measure("stop")) freeze.StopAll();
            UnprivilegedMode.CheckTarget(pid); // again, now that it cannot exec a setuid program any more
            threads.AddRange(freeze.Tracees.Select(t => t.Pid).Where(tid => tid != pid));
            int taskCount = threads.Count;
            TimeSpan stopping = frozen.Elapsed;
            using (CheckpointProfile.Measure("inspect and write")) WriteImage(freeze, writer, progress, connections);
            if (options.Kill)
            {
                // The image is about to be the only copy of the process: complete and on storage first.
                using (CheckpointProfile.Measure("tail"))
                {
                    writer.WriteTail();
                    imageComplete = true;
                    options.Durable?.Invoke();
                }
                using (CheckpointProfile.Measure("kill")) freeze.KillAll();
                connections.CloseAfterKill(); // in repair mode: no FIN, no RST; the network lock stays for the restore
                var killed = new CheckpointResult(pid, writer.BytesWritten, frozen.Elapsed, stopping, taskCount);
                if (options.WaitForReap) WaitUntilReaped(pid);
                return () => killed;
            }
            // Every page has been read: the process runs on while the rest reaches the stream.
            connections.Release();
            freeze.ReleaseAll();
            TimeSpan frozenFor = frozen.Elapsed;
            handedOver = true;
            return () => WriteOut(options, writer, progress, new CheckpointResult(pid, 0, frozenFor, stopping, taskCount));
        }
        catch (Exception e)
        {
            ReleaseQuietly(connections);
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

    // A failed checkpoint: the connections leave repair mode as they were; the first error is the one reported.
    private static void ReleaseQuietly(Files.Sockets.TcpConnectionCheckpoint connections)
    {
        try { connections.Release(); }
        catch (Exception) { /* the checkpoint's own failure is reported */ }
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

    // Everything but the tail: once this returns, nothing more is read from any process.
    // Order (docs/FORMAT.md): header, tree and task table, then one section per task, each
    // using the process-wide objects through the object table (written by the first task that uses
    // them, referred to by objref from the others). Every process is inspected, and refused if it
    // must be, before the first record is written.
    private static void WriteImage(TreeFreeze freeze, ImageWriter writer, Action<string, long, long> progress, Files.Sockets.TcpConnectionCheckpoint connections)
    {
        var objects = new ObjectTable();
        progress("inspect", 0, 0);
        // Its parent's memory is in the image before its own: pages they still share are stored once (InheritedPages).
        int? ParentInTree(FrozenProcess frozen) =>
            frozen.Pid != freeze.Pid && freeze.Processes.Any(p => p.Pid == frozen.ParentPid && !p.IsZombie) ? frozen.ParentPid : null;
        MemorySharing memorySharing;
        using (CheckpointProfile.Measure("tree sharing")) memorySharing = TreeSharing.MemoryOwners(freeze.Processes);
        var owners = freeze.Processes.Where(p => p.Threads is not null && memorySharing.VmOwner(p.Pid) == p.Pid).ToList();
        // A tree's memory is read on the second core while this thread finds the rest of the sharing and inspects the
        // rest (MemoryPrefetch); a refusal of the sharing stops it (it only reads /proc).
        using Memory.MemoryPrefetch? prefetch = owners.Count > 1 ? new Memory.MemoryPrefetch(owners.Select(p => (p.Pid, ParentInTree(p)))) : null;
        TreeObjectsSharing sharing;
        using (CheckpointProfile.Measure("tree sharing")) sharing = TreeSharing.Find(freeze.Processes, memorySharing);
        objects.UnlinkedFiles.FileTableOwner = sharing.FileTableOwner;
        using var descriptions = new FileDescriptions(freeze.Processes.Where(p => p.Threads is not null).Select(p => p.Pid)) { TcpConnections = connections };
        // Every process is inspected first (refusals in tree order), then the tree's injected reads are made
        // together (InjectedReads.ReadAll), then each process's threads are captured.
        var inspected = new List<(FrozenProcess Frozen, ZombieCheckpoint? Zombie, ProcessCheckpoint.Inspection? Live)>();
        foreach (FrozenProcess frozen in freeze.Processes)
        {
            try
            {
                if (frozen.Threads is null)
                {
                    inspected.Add((frozen, ZombieCheckpoint.Inspect(frozen.Pid), null));
                    continue;
                }
                var stoppedChildren = freeze.Processes.Where(c => c.ParentPid == frozen.Pid && c.Threads?.Leader.InGroupStop == true).Select(c => c.Pid).ToList();
                inspected.Add((frozen, null, ProcessCheckpoint.Inspect(frozen.Threads, objects, descriptions, stoppedChildren, ParentInTree(frozen), sharing, prefetch)));
            }
            catch (CheckpointRefusedException e) when (frozen.Pid != freeze.Pid)
            {
                throw new CheckpointRefusedException($"descendant {frozen.Pid} ('{ProcessNames.CommOf(frozen.Pid)}') of process {freeze.Pid}: {e.Message}");
            }
        }
        var live = inspected.Where(p => p.Live is not null).ToList();
        Exception?[] failures;
        using (CheckpointProfile.Measure("inspect/injected state")) failures = InjectedReads.ReadAll(live.Select(p => p.Live!.Reading).ToList());
        for (int i = 0; i < live.Count; i++)
        {
            if (failures[i] is CheckpointRefusedException e && live[i].Frozen.Pid != freeze.Pid)
                throw new CheckpointRefusedException($"descendant {live[i].Frozen.Pid} ('{ProcessNames.CommOf(live[i].Frozen.Pid)}') of process {freeze.Pid}: {e.Message}");
            if (failures[i] is { } failure) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
        var processes = inspected.Select(p => p.Zombie ?? (ICheckpointedProcess)p.Live!.Complete()).ToList();
        ThreadCheckpoint firstThread = processes.OfType<ProcessCheckpoint>().First().FirstThread;

        // A stopped process's parent was probed for its stop report (JobControl): tell the child.
        var checkpointed = processes.OfType<ProcessCheckpoint>().ToList();
        foreach (ProcessCheckpoint parent in checkpointed)
            foreach (var (child, collected) in parent.ChildStopsCollected)
                checkpointed.First(p => p.Pid == child).StopReportCollected = collected;

        progress("task", 0, 0);
        using var writing = CheckpointProfile.Measure("write");
        HeaderWriter.Write(writer, firstThread.Xstate);
        var table = processes.SelectMany(p => p.Ids).ToList();
        writer.Write(new TreeRecord { TaskCount = table.Count, ProcessCount = processes.Count });
        foreach (TaskIdsRecord ids in table) writer.Write(ids);
        foreach (ICheckpointedProcess process in processes) process.Write(writer, objects, progress);
    }

    // State the image cannot hold is refused while the target still runs untouched (not even seized).
    // A target that exits meanwhile is reported as not found, as the seize would.
    private static void AuditBeforeFreeze(int pid)
    {
        // The audit reads what ptrace read access allows: without it, say so as the seize would (EPERM).
        if (Native.kcmp(pid, Environment.ProcessId, Native.KCMP_VM, 0, 0) < 0 && Native.LastErrno is Errno.EPERM or Errno.EACCES)
            throw new SyscallException("kcmp", Native.LastErrno, pid, "checking ptrace access to the target");
        try { KernelStateAudit.BeforeFreeze(pid); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException && !Directory.Exists($"/proc/{pid}")) { throw new TargetNotFoundException(pid); }
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
