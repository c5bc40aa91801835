using Ckpt.Image;
using Ckpt.Image.Model;
using Ckpt.Engine.Files;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Memory;
using Ckpt.Engine.Signals;
using Ckpt.Engine.Tasks;
using static Ckpt.Engine.Linux.ProcessCreationNative;

namespace Ckpt.Engine.Restore;

/// <param name="Lazy">release the process before its private anonymous memory is in; a page server fills it (see <see cref="LazyPageServer"/>)</param>
public sealed record RestoreOptions(string ImagePath, bool Wait = false, bool Force = false, Stream? StandardInput = null, bool Lazy = false);

/// <param name="ExitStatus">with Wait: the process's exit code, or 128 + signal</param>
/// <param name="PageServer">with Lazy: the page server, still filling the running process's memory</param>
public sealed record RestoreResult(int Pid, int? ExitStatus, LazyPageServer? PageServer = null);

/// <summary>
/// The restore: read and validate the whole image, then create the process with its pid and
/// rebuild it by injection, stage by stage for every thread; a failure kills every task made so
/// far and names the step.
/// Every ptrace request comes from one dedicated thread.
/// </summary>
public static class Restorer
{
    public static RestoreResult Restore(RestoreOptions options, Action<string>? phase = null)
    {
        if (options.Lazy && options.Wait) throw new ArgumentException("a lazy restore cannot wait for the process (--lazy with --wait)");
        phase?.Invoke("read");
        RestorePlan plan = RestorePlanReader.Read(options.ImagePath, options.StandardInput, deferChecksum: options.Lazy);
        LazyPageServer? server = null;
        try
        {
            phase?.Invoke("validate");
            RestoreValidation.Validate(plan, options.Force);
            if (options.Lazy) server = new LazyPageServer(plan.ImageFile, () => { plan.StartChecksum(); return plan.ChecksumMatches.GetAwaiter().GetResult(); }, plan.ChecksumMismatch());

            RestoreResult? result = null;
            Exception? failure = null;
            var tracer = new Thread(() =>
            {
                try { result = RestoreOnTracerThread(plan, options, phase, server); }
                catch (Exception e) { failure = e; }
            }, maxStackSize: 1 << 20) { Name = "ckpt restore tracer" };
            tracer.Start();
            tracer.Join();
            TracerExit.WaitUntilDetached(plan.Threads.Select(t => t.Tid));
            if (failure is not null)
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
            // The tracer thread has exited: the kernel has detached every restored thread (SyscallReentry).
            if (server is not null)
            {
                // The process runs: hash the image and fill the rest; the plan (the image file) lives until the last page is in.
                plan.StartChecksum();
                server.StartFilling();
                LazyPageServer serving = server;
                server = null;
                serving.Completion.ContinueWith(_ => plan.Dispose(), TaskScheduler.Default);
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

    // The stages, each done for every task before the next starts: created, memory, files,
    // signals, threads, thread state, credentials; then every thread is released.
    private static RestoreResult RestoreOnTracerThread(RestorePlan plan, RestoreOptions options, Action<string>? phase, LazyPageServer? server)
    {
        var context = new RestoreContext(plan, phase);
        context.Stage("create", () => ProcessCreation.CreateStoppedAtExec(plan.Pid, plan.ExePath, reparentToCaller: options.Wait), reported: true);
        context.Created(Tracee.Adopt(plan.Pid));
        try
        {
            context.Stage("attach", () => context.AddThread(new RestoredThread(plan.Threads[0], SyscallInjector.AtExecStop(Tracee.Adopt(plan.Pid)))));
            context.Stage("scratch area", () => context.Scratch = ScratchArea.Map(context.Leader, plan.Vmas.Select(v => (v.Record.VmStart, v.Record.VmEnd))));
            context.Stage("close inherited files", () => FilesRestore.CloseInherited(context.Leader));
            context.Stage("special mappings", () => SpecialMappingsRestore.Run(context.Leader, plan, context.Scratch), reported: true);
            context.Stage("memory", () => MemoryRestore.Run(context.Leader, plan, context.Scratch, server), reported: true);
            context.Stage("mm fields", () => MmFieldsRestore.Run(context.Leader, plan, context.Scratch));
            context.Stage("files", () => FilesRestore.Run(context.Leader, plan, context.Scratch), reported: true);
            context.Stage("task state", () => TaskStateRestore.Run(context.Leader, plan, context.Scratch));
            context.Stage("signals", () => SignalsRestore.Run(context.Leader, plan, context.Scratch));
            context.Stage("threads", () => ThreadRestore.CreateThreads(context), reported: true);
            context.EachThread("signal stack, rseq, robust list, name, queued signals, xstate", thread =>
            {
                ThreadRestore.SetThreadState(thread.Syscalls, thread.Image, plan, context.Scratch);
                ThreadRestore.SetXstate(thread.Syscalls.Tracee, thread.Image);
            });
            context.EachThread("credentials", thread =>
            {
                CredentialsRestore.Run(thread.Syscalls, plan, context.Scratch);
                // The leader comes first: limits (process-wide) are set with its restored credentials,
                // so the kernel refuses a hard limit the recorded user could not have set; every
                // thread's scheduling then sees them (RLIMIT_NICE, RLIMIT_RTPRIO).
                if (thread.Tid == plan.Pid) TaskStateRestore.SetLimits(thread.Syscalls, plan, context.Scratch);
                ThreadRestore.SetScheduling(thread.Syscalls, thread.Image, context.Scratch);
                CredentialsRestore.RestoreLateFlags(thread.Syscalls, thread.Image);
            }, reported: true);
            context.Stage("dumpable", () => CredentialsRestore.RestoreDumpable(context.Leader, plan));
            context.Stage("scratch area removal", () => context.Scratch.Unmap());
            // Nothing runs before the whole image is known intact (hashed on another core meanwhile);
            // a lazy restore's page server checks it while the process runs (docs/SECURITY.md).
            if (server is null) context.Stage("checksum", plan.RequireChecksum);
            context.EachThread("resume", thread => ThreadRestore.Release(thread.Syscalls, thread.Image, plan), reported: true);
        }
        catch (Exception e)
        {
            context.KillAll();
            if (e is ImageFormatException) throw; // a corrupt image, as when it is found before creation
            throw new RestoreException(context.Step, e.Message, e);
        }
        return new RestoreResult(plan.Pid, null);
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
