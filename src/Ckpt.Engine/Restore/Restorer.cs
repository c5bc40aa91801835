using System.Runtime.InteropServices;
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
/// The restore: read and validate the whole image, then create the task with its pid and
/// rebuild it by injection, step by step; a failure kills the task and names the step.
/// Every ptrace request comes from one dedicated thread.
/// </summary>
public static class Restorer
{
    private const int PTRACE_DETACH = 17;

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
        if (failure is not null)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        return result!;
    }

    private static RestoreResult RestoreOnTracerThread(RestorePlan plan, RestoreOptions options, Action<string>? phase)
    {
        phase?.Invoke("create");
        ProcessCreation.CreateStoppedAtExec(plan.Pid, plan.ExePath, reparentToCaller: options.Wait);
        string step = "attach";
        try
        {
            var syscalls = new InjectedSyscalls(plan.Pid);
            ThreadPlan thread = plan.Threads[0];
            step = "scratch area";
            var scratch = ScratchArea.Map(syscalls, plan.Vmas.Select(v => (v.Record.VmStart, v.Record.VmEnd)));
            step = "close inherited files";
            FilesRestore.CloseInherited(syscalls);
            step = "special mappings";
            phase?.Invoke(step);
            SpecialMappingsRestore.Run(syscalls, plan, scratch);
            step = "memory";
            phase?.Invoke(step);
            MemoryRestore.Run(syscalls, plan, scratch);
            step = "mm fields";
            MmFieldsRestore.Run(syscalls, plan, scratch);
            step = "files";
            phase?.Invoke(step);
            FilesRestore.Run(syscalls, plan, scratch);
            step = "task state";
            TaskStateRestore.Run(syscalls, plan, scratch);
            step = "signals";
            SignalsRestore.Run(syscalls, plan, scratch);
            step = "signal stack and rseq";
            ThreadRestore.SetStackAndRseq(syscalls, thread, scratch);
            step = "xstate";
            ThreadRestore.SetXstate(plan.Pid, thread);
            step = "credentials";
            CredentialsRestore.Run(syscalls, plan, scratch);
            step = "scratch area removal";
            scratch.Unmap();
            step = "registers";
            ThreadRestore.SetMaskAndRegisters(syscalls, thread, plan);
            step = "resume";
            phase?.Invoke(step);
            if (ptrace(PTRACE_DETACH, plan.Pid, 0, 0) != 0)
                throw new SyscallException("ptrace(PTRACE_DETACH)", Marshal.GetLastPInvokeError(), plan.Pid);
        }
        catch (Exception e)
        {
            KillAndReap(plan.Pid);
            throw new RestoreException(step, e.Message, e);
        }
        return new RestoreResult(plan.Pid, options.Wait ? WaitForExit(plan.Pid) : null);
    }

    private static void KillAndReap(int pid)
    {
        kill(pid, SIGKILL);
        // As tracer we see its death; its parent (init, or us as subreaper) reaps it.
        try { ProcessCreation.WaitForStop(pid); }
        catch (SyscallException) { }
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
