using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Engine.Files;
using Ckpt.Engine.Files.Sockets;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Memory;
using Ckpt.Engine.Security;
using Ckpt.Engine.Signals;
using Ckpt.Engine.Tasks;
using static Ckpt.Engine.Linux.ProcessCreationNative;

namespace Ckpt.Engine.Restore;

/// <param name="TrustImage">root vouches for the image: its credentials are restored whoever could have written it (docs/SECURITY.md)</param>
/// <param name="Lazy">release the process before its private anonymous memory is in; a page server fills it (see <see cref="LazyPageServer"/>)</param>
/// <param name="ShellTerminal">the terminal the restore runs on (its standard input's): it replaces a terminal outside the image (the user's), which is refused without it</param>
public sealed record RestoreOptions(string ImagePath, bool Wait = false, bool Force = false, Stream? StandardInput = null, bool TrustImage = false, bool Lazy = false, string? ShellTerminal = null);

/// <param name="ExitStatus">with Wait: the process's exit code, or 128 + signal</param>
/// <param name="PageServer">with Lazy: the page server, still filling the running process's memory</param>
public sealed record RestoreResult(int Pid, int? ExitStatus, LazyPageServer? PageServer = null);

/// <summary>
/// The restore: read and validate the whole image, then create every process of the tree with its
/// pid, parent, session and group (<see cref="TreeCreation"/>) and rebuild each by injection, stage
/// by stage for every process and thread; a failure kills every task made so far and names the step.
/// Every ptrace request comes from one dedicated thread; stages marked concurrent work on several processes
/// at once from worker threads that hand it their requests (<see cref="PtraceRelay"/>).
/// </summary>
public static class Restorer
{
    public static RestoreResult Restore(RestoreOptions options, Action<string>? phase = null)
    {
        if (options.Lazy && options.Wait) throw new ArgumentException("a lazy restore cannot wait for the process (--lazy with --wait)");
        phase?.Invoke("read");
        RestorePlan plan;
        using (StageProfile.Measure("read"))
            plan = RestorePlanReader.Read(options.ImagePath, options.StandardInput, deferChecksum: options.Lazy, deferPageAddresses: options.Lazy);
        LazyPageServer? server = null;
        try
        {
            phase?.Invoke("validate");
            using (StageProfile.Measure("validate"))
            {
                UnprivilegedMode.CheckImage(plan); // a caller other than root: their own images only, said first
                RestorePrivilege.Check(plan, options.TrustImage);
                plan.ShellTerminal = options.ShellTerminal;
                RestoreValidation.Validate(plan, options.Force);
                SharedMemoryRestore.Validate(plan, Caller.Current.IsRoot);
                Files.Terminals.TerminalsRestore.Validate(plan);
            }
            if (options.Lazy && (plan.Processes.Count != 1 || plan.Zombies.Count != 0))
                throw new RestoreRefusedException($"--lazy restores one process; this image holds a tree of {plan.Processes.Count + plan.Zombies.Count} processes");
            if (options.Lazy)
                server = new LazyPageServer(plan.ImageFile, () => { plan.StartChecksum(); return plan.ChecksumMatches.GetAwaiter().GetResult(); }, plan.ChecksumMismatch)
                { ImageTail = (plan.Image.TailOffset, plan.Image.Tail.Checksum) };

            RestoreResult? result = null;
            Exception? failure = null;
            int tracerTid = 0;
            var tracer = new Thread(() =>
            {
                tracerTid = (int)Native.syscall3(SyscallNumbers.SYS_gettid, 0, 0, 0);
                try { result = RestoreOnTracerThread(plan, options, phase, server); }
                catch (Exception e) { failure = e; }
            }, maxStackSize: 1 << 20) { Name = "ckpt restore tracer" };
            tracer.Start();
            tracer.Join();
            TracerExit.WaitUntilGone(tracerTid);
            if (failure is not null)
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(DamageFoundByPageServer(server) ?? failure);
            // The tracer thread has exited: the kernel has detached every restored thread (SyscallReentry).
            if (server is not null)
            {
                // The process runs and faults are served. Hashing the image and filling the rest start only
                // when the caller has its answer (LazyPageServer.StartFilling, after the result line): on two
                // cores they would otherwise delay it. The plan (the image file) lives until the last page is in.
                server.BeforeFilling = plan.StartChecksum;
                LazyPageServer serving = server;
                server = null;
                serving.OwnedUntilDone = plan;
                if (serving.Completion.IsCompleted) plan.Dispose(); // finished already (a plan disposed twice is closed once)
                return result! with { PageServer = serving };
            }
            plan.Dispose();
            return options.Wait ? result! with { ExitStatus = WaitForExit(result!.Pid) } : result!;
        }
        catch
        {
            server?.Stop();
            plan.Dispose();
            throw;
        }
    }

    // The stages, each done for every process (and its threads) before the next starts. The tree is
    // created first (TreeCreation: every process executes the neutral program, never the image's).
    // Whatever needs the engine's privilege inside a task comes next (the exe link, the threads with
    // their tids, the image opened for the pages, POSIX timers with their ids); then every thread takes
    // the recorded credentials, and memory, files, cwd and signals are rebuilt as that user would
    // (docs/SECURITY.md); then limits, scheduling and flags; then every thread of every process is released.
    private static RestoreResult RestoreOnTracerThread(RestorePlan plan, RestoreOptions options, Action<string>? phase, LazyPageServer? server)
    {
        var tree = new TreeRestoreContext(plan, phase);
        tree.Report("create");
        try
        {
            tree.Independent = server is null && ProcessesIndependent(plan);
            var stubs = new StubTeardown(tree, enabled: tree.Independent && Caller.Current.IsRoot && plan.Processes.All(p => p.Signal.ControllingTerminal is null));
            using (StageProfile.Measure("create"))
                TreeCreation.CreateAll(tree, reparentToCaller: options.Wait, stubs);
            tree.Stage("credentials after exec", p => UnprivilegedMode.CheckCreated(p.Plan.Pid, "the program the restore executed"));
            // Three steps in one batch per process (one ptrace stop): close what the process inherited, empty its
            // address space but for the special mappings (moved to their recorded places), open the image in it;
            // done before forking by a process with children when that saves its children the batch (StubTeardown).
            // The stage keeps the name of its progress phase ("special mappings").
            tree.Stage("special mappings", stubs.Stage, reported: true, concurrent: true);
            var sharedMemory = new SharedMemoryRestore();
            tree.Stage("shared memory objects", p => { if (RestoresMemory(p)) sharedMemory.MakeViews(p.Leader, p.Plan, p.Scratch); });
            if (ExecutableAndCredentials.Joined(plan))
                tree.Stage(ExecutableAndCredentials.Credentials, p => ExecutableAndCredentials.Run(p, RestoresMemory(p)), reported: true, concurrent: true);
            else
            {
                tree.Stage(ExecutableAndCredentials.MmFields, p => { if (RestoresMemory(p)) MmFieldsRestore.Run(p.Leader, p.Plan, p.Scratch); }, concurrent: true);
                tree.Stage("threads", ThreadRestore.CreateThreads, reported: true);
                // Once every thread a timer may signal exists, before the credentials drop CAP_CHECKPOINT_RESTORE.
                tree.Stage("posix timers", p => PosixTimers.Run(p.Leader, p.Plan, p.Scratch));
                tree.EachThread(ExecutableAndCredentials.Credentials, (p, thread) => CredentialsRestore.Run(thread.Syscalls, p.Plan, p.Scratch), reported: true, concurrent: true);
            }
            // A child's memory after its parent's: it copies the pages it still shared with it (InheritedPages).
            tree.Stage("memory", p => { if (RestoresMemory(p)) p.MappedFiles = MemoryRestore.Run(p.Leader, p.Plan, p.Scratch, stubs.ImageFd(p.Plan.Pid), sharedMemory, server); }, reported: true, concurrent: true, afterParent: true);
            tree.Terminals.Publish(tree.PlacedFiles);
            tree.Stage("files", p =>
            {
                if (RestoresFileTable(p)) FilesRestore.Run(p.Leader, p.Plan, p.Scratch, tree.PlacedFiles, MappedFilesOfTable(tree, p), tree.TcpConnections);
            }, reported: true);
            tree.Step = "pseudo-terminal pairs";
            tree.Terminals.Finish(tree.Processes[0], tree.PlacedFiles);
            tree.Step = "descriptors in flight in unix socket queues";
            InFlightFilesRestore.SendAll(tree);
            // Every listener and every client exists now, wherever it is in the tree.
            tree.Step = "pending unix connections";
            UnixPendingConnections.ConnectAll(tree);
            tree.Step = "queued UDP datagrams";
            UdpDatagramQueue.SendAll(tree);
            tree.Stage("file locks", p => { if (RestoresFileTable(p)) FileLocks.Run(p.Leader, p.Plan, p.Scratch); });
            if (LateStateStage.Applies(plan))
            {
                tree.IgnoredSignalsOfNewTasks = SignalsRestore.IgnoredSignals(plan.Pid);
                tree.Stage(LateStateStage.Limits, LateStateStage.Run, reported: true, concurrent: true);
            }
            else
            {
                tree.Stage(LateStateStage.TaskState, p => TaskStateRestore.Run(p.Leader, p.Plan, p.Scratch, setFs: SharedTables.RestoresFs(p.Plan.Process)), concurrent: true);
                // While every handler is still SIG_DFL, and before the parents' queues are restored (JobControl).
                tree.Stage("job-control stop", p => JobControl.Stop(p, tree));
                tree.Stage(LateStateStage.Signals, p => SignalsRestore.Run(p.Leader, p.Plan, p.Scratch), concurrent: true);
                tree.EachThread(LateStateStage.ThreadState, (p, thread) =>
                {
                    ThreadRestore.SetThreadState(thread.Syscalls, thread.Image, p.Plan, p.Scratch);
                    ThreadRestore.SetXstate(thread.Syscalls.Tracee, thread.Image);
                }, concurrent: true);
                // One batch per thread (one ptrace stop).
                tree.EachThread(LateStateStage.Limits, (p, thread) =>
                {
                    p.Scratch.Reset();
                    var batch = new SyscallBatch(thread.Syscalls, p.Scratch);
                    LateStateStage.AddLimits(batch, p, thread);
                    batch.Run();
                }, reported: true, concurrent: true);
            }
            tree.Stage("scratch area removal", p => { if (RestoresMemory(p)) p.Scratch.Unmap(); }, concurrent: true);
            // Nothing runs before the whole image is known intact (hashed on another core meanwhile);
            // a lazy restore's page server checks it while the process runs (docs/SECURITY.md).
            if (server is null)
            {
                tree.Step = "checksum";
                plan.RequireChecksum();
            }
            // Every end of every connection exists now (both may be in the tree): out of repair mode, as late as possible.
            tree.Step = "tcp connections out of repair mode";
            tree.TcpConnections.LeaveRepair();
            // The lock `checkpoint --kill` left on the connections to outside peers (NetworkLock); a failed restore keeps it for a retry.
            if (TcpConnectionRestore.FirstConnection(plan) is not null) NetworkLock.RemoveLeftBy(plan.Pid);
            tree.EachThread("resume", (p, thread) => ThreadRestore.Release(thread.Syscalls, thread.Image, p.Plan), reported: true);
        }
        catch (Exception e)
        {
            tree.TcpConnections.Abandon(); // still in repair mode: closed without a packet
            tree.KillAll();
            if (e is ImageFormatException) throw; // a corrupt image, as when it is found before creation
            throw new RestoreException(tree.Step, e.Message, e);
        }
        return new RestoreResult(plan.Pid, null);
    }

    private static bool RestoresMemory(RestoreContext process) => SharedTables.RestoresMemory(process.Plan.Image, process.Plan.Process);

    // A lazy restore's page server that found the image damaged (a page address it read for a fault
    // during the restore) killed the process: that, not the dead process, is why the restore failed.
    private static ImageFormatException? DamageFoundByPageServer(LazyPageServer? server)
    {
        if (server is null) return null;
        server.Stop();
        try { server.Completion.Wait(TimeSpan.FromSeconds(5)); }
        catch (AggregateException) { /* read below */ }
        return server.Completion.Exception?.InnerException as ImageFormatException;
    }

    // No descriptor table, fs information or address space shared by two processes, no shared memory, no file
    // mapping made from a descriptor (UnlinkedFileMappings): a process's stages then reach no other process.
    private static bool ProcessesIndependent(RestorePlan plan)
    {
        var members = SharedTables.MembersOf(plan.Image);
        if (plan.Processes.Select(p => p.Memory).Distinct().Count() != plan.Processes.Count) return false; // CLONE_VM sharers
        return members.Select(m => m.FileTable).Distinct().Count() == members.Count
            && members.Select(m => m.Fs).Distinct().Count() == members.Count
            && plan.Processes.All(p => p.Memory.Vmas.All(v => v.SharedMemory is null && v.Record.VmaType != Ckpt.Image.Records.VmaType.SharedAnon && !UnlinkedFileMappings.Maps(v)));
    }

    private static bool RestoresFileTable(RestoreContext process) => SharedTables.RestoresFileTable(process.Plan.Image, process.Plan.Process);

    // The unlinked files the memory stage parked for every process sharing this one's table: all in that one table.
    private static Dictionary<int, long> MappedFilesOfTable(TreeRestoreContext tree, RestoreContext owner)
    {
        var parked = new Dictionary<int, long>();
        foreach (RestoreContext sharer in tree.Processes.Where(q => ReferenceEquals(q.Plan.Process.FileTable, owner.Plan.Process.FileTable)))
            foreach (var (objRef, fd) in sharer.MappedFiles) parked.TryAdd(objRef, fd);
        return parked;
    }

    private static int WaitForExit(int pid)
    {
        while (true)
        {
            int status = ProcessCreation.WaitForStop(pid);
            if (WaitStatus.Exited(status)) return WaitStatus.ExitCode(status);
            if (WaitStatus.Signaled(status)) return 128 + WaitStatus.TermSignal(status);
        }
    }
}
