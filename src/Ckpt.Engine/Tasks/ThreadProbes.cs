using Ckpt.Engine.Checkpoint.Audit;
using Ckpt.Engine.Linux;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// What only a thread itself can tell, read by calls injected into it in its <see cref="ProbeBatch"/>:
/// the alternate signal stack (sigaltstack), clear_child_tid (prctl PR_GET_TID_ADDRESS), the
/// parent-death signal (<see cref="ParentLinks"/>), and the per-thread refusals of <see cref="InjectedProbes"/>.
/// Added with <see cref="Add"/>, read with <see cref="Read"/> once the batch ran; <see cref="ThreadCheckpoint.Capture"/> takes the result.
/// </summary>
public sealed record ThreadProbes(SignalStackRecord SignalStack, ulong ClearChildTid, int ParentDeathSignal)
{
    private const ulong PR_GET_TID_ADDRESS = 40;

    public sealed record Calls(InjectedProbes.ThreadCalls Probes, int ParentDeathSignal, int SignalStack, int ClearChildTid);

    public static unsafe Calls Add(ProbeBatch batch) => new(
        InjectedProbes.AddThread(batch),
        ParentLinks.AddParentDeathSignal(batch),
        batch.Add("sigaltstack", SYS_sigaltstack, sizeof(StackT), output => [0, output]),
        batch.Add("prctl(PR_GET_TID_ADDRESS)", SYS_prctl, sizeof(ulong), output => [PR_GET_TID_ADDRESS, output]));

    /// <summary>The thread's state from its batch; a probe's refusal comes first.</summary>
    public static ThreadProbes Read(ProbeBatch batch, Calls calls, int tgid, int tid)
    {
        InjectedProbes.CheckThread(batch, calls.Probes, tgid, tid);
        int parentDeathSignal = ParentLinks.ParentDeathSignal(batch, calls.ParentDeathSignal);
        batch.Checked(calls.SignalStack);
        batch.Checked(calls.ClearChildTid);
        StackT stack = batch.Output<StackT>(calls.SignalStack);
        return new ThreadProbes(new SignalStackRecord { StackPointer = stack.Pointer, StackSize = stack.Size, Flags = stack.Flags },
            batch.Output<ulong>(calls.ClearChildTid), parentDeathSignal);
    }
}
