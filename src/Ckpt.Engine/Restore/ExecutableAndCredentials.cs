using Ckpt.Engine.Memory;
using Ckpt.Engine.Tasks;

namespace Ckpt.Engine.Restore;

/// <summary>
/// The exe link and mm fields, then the credentials: two stages, with the threads and the POSIX timers
/// between them (all three need the engine's privilege in the task, which the credentials give up). When
/// no process of the tree has a second thread or a POSIX timer, nothing comes between them, and the credentials
/// join the mm fields' last batch: two ptrace stops per process instead of three (<see cref="Joined"/>). A failed call is reported
/// under its own step's name, as the two stages did.
/// </summary>
public static class ExecutableAndCredentials
{
    public const string MmFields = "executable and mm fields", Credentials = "credentials";

    public static bool Joined(RestorePlan plan) => plan.Processes.All(p => p.Threads.Count == 1 && p.Signal.PosixTimers.Count == 0);

    /// <param name="restoresMemory">false for a process sharing the address space of one made before it: its mm fields are that one's</param>
    public static void Run(RestoreContext process, bool restoresMemory)
    {
        ScratchArea scratch = process.Scratch;
        scratch.Reset();
        var batch = new SyscallBatch(process.Leader, scratch);
        Action<long[]>? checkMmFields = null;
        if (restoresMemory)
        {
            batch.Step = new BatchStep(MmFields);
            try { checkMmFields = MmFieldsRestore.Add(batch, process.Plan.Pid, process.Plan, scratch); } // runs a first batch of its own
            catch (Exception e) when (e is not StepFailedException) { throw new StepFailedException(MmFields, e); }
        }
        batch.Step = new BatchStep(Credentials, OfThread: true);
        Action<long[]> finishCredentials = CredentialsRestore.Add(batch, process.Leader, process.Plan, scratch);
        long[] results = batch.Run();
        try { checkMmFields?.Invoke(results); }
        catch (Exception e) { throw new StepFailedException(MmFields, e); }
        try { finishCredentials(results); }
        catch (Exception e) { throw new StepFailedException(Credentials, e, process.Plan.Pid); }
    }
}
