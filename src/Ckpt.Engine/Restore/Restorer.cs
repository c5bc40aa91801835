using Ckpt.Image.Model;
using Ckpt.Engine.Files;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Memory;
using Ckpt.Engine.Signals;
using Ckpt.Engine.Tasks;
using static Ckpt.Engine.Linux.ProcessCreationNative;

namespace Ckpt.Engine.Restore;

public sealed record RestoreOptions(string ImagePath, bool Wait = false, bool Force = false, Stream? StandardInput = null);

/// <param name="ExitStatus">with Wait: the process's exit code, or 128 + signal</param>
public sealed record RestoreResult(int Pid, int? ExitStatus);

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
        phase?.Invoke("read");
        using RestorePlan plan = RestorePlanReader.Read(options.ImagePath, options.StandardInput);
        phase?.Invoke("validate");
        RestoreValidation.Validate(plan, options.Force);

        RestoreResult? result = null;
        Exception? failure = null;
        var tracer = new Thread(() =>
        {
            try { result = RestoreOnTracerThread(plan, options, phase); }
            catch (Exception e) { failure = e; }
        }, maxStackSize: 1 << 20) { Name = "ckpt restore tracer" };
        tracer.Start();
        tracer.Join();
        TracerExit.WaitUntilDetached(plan.Threads.Select(t => t.Tid));
        if (failure is not null)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        // The tracer thread has exited: the kernel has detached every restored thread (SyscallReentry).
        return options.Wait ? result! with { ExitStatus = WaitForExit(result!.Pid) } : result!;
    }

    // The stages, each done for every task before the next starts: created, memory, files,
    // signals, threads, thread state, credentials, registers; then all tasks are released together.
    private static RestoreResult RestoreOnTracerThread(RestorePlan plan, RestoreOptions options, Action<string>? phase)
    {
        phase?.Invoke("create");
        ProcessCreation.CreateStoppedAtExec(plan.Pid, plan.ExePath, reparentToCaller: options.Wait);
        var created = new List<Tracee> { Tracee.Adopt(plan.Pid) };
        string step = "attach";
        try
        {
            var leader = SyscallInjector.AtExecStop(created[0]);
            step = "scratch area";
            var scratch = ScratchArea.Map(leader, plan.Vmas.Select(v => (v.Record.VmStart, v.Record.VmEnd)));
            step = "close inherited files";
            FilesRestore.CloseInherited(leader);
            step = "special mappings";
            phase?.Invoke(step);
            SpecialMappingsRestore.Run(leader, plan, scratch);
            step = "memory";
            phase?.Invoke(step);
            MemoryRestore.Run(leader, plan, scratch);
            step = "mm fields";
            MmFieldsRestore.Run(leader, plan, scratch);
            step = "files";
            phase?.Invoke(step);
            FilesRestore.Run(leader, plan, scratch);
            step = "task state";
            TaskStateRestore.Run(leader, plan, scratch);
            step = "signals";
            SignalsRestore.Run(leader, plan, scratch);
            step = "threads";
            phase?.Invoke(step);
            var threads = ThreadRestore.CreateThreads(leader, plan, scratch, created);
            foreach (var (thread, syscalls) in threads)
            {
                step = $"thread {thread.Tid}: signal stack, rseq, robust list, name, queued signals";
                ThreadRestore.SetThreadState(syscalls, thread, plan, scratch);
                step = $"thread {thread.Tid}: xstate";
                ThreadRestore.SetXstate(syscalls.Tracee, thread);
            }
            phase?.Invoke("credentials");
            foreach (var (thread, syscalls) in threads)
            {
                step = $"thread {thread.Tid}: credentials";
                CredentialsRestore.Run(syscalls, plan, scratch);
                step = $"thread {thread.Tid}: scheduling";
                ThreadRestore.SetScheduling(syscalls, thread, scratch);
            }
            step = "scratch area removal";
            scratch.Unmap();
            phase?.Invoke("resume");
            foreach (var (thread, syscalls) in threads)
            {
                step = $"thread {thread.Tid}: registers and release";
                ThreadRestore.Release(syscalls, thread, plan);
            }
        }
        catch (Exception e)
        {
            KillAndReap(created);
            throw new RestoreException(step, e.Message, e);
        }
        return new RestoreResult(plan.Pid, null);
    }

    // SIGKILL ends the whole thread group. As tracer we are told of each death: threads first, the
    // leader's is reported after them; its parent (init, or us as subreaper) reaps it.
    private static void KillAndReap(List<Tracee> created)
    {
        kill(created[0].Pid, SIGKILL);
        foreach (Tracee tracee in created.Skip(1).Append(created[0]))
        {
            try { ProcessCreation.WaitForStop(tracee.Pid); }
            catch (SyscallException) { }
        }
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
