using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Model;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// The child-subreaper flag (per process) and the parent-death signal (per thread), both sides. Neither
/// has a /proc source: the checkpoint reads them with prctl injected into the stopped task (in the
/// injected batches of InjectedTaskState and ThreadProbes); they are saved as CHILD_SUBREAPER
/// and PARENT_DEATH_SIGNAL records. The restore sets the subreaper flag right after the process is created
/// (TreeCreation: before any process of the tree can be orphaned, a helper's exit included), and the
/// parent-death signal last, after the credentials (which would clear it) and once every process is under
/// its restored parent and every helper process is gone, so nothing the restore does fires it.
/// </summary>
public static class ParentLinks
{
    private const ulong PR_SET_PDEATHSIG = 1, PR_GET_PDEATHSIG = 2, PR_SET_CHILD_SUBREAPER = 36, PR_GET_CHILD_SUBREAPER = 37;

    /// <summary>Adds prctl(PR_GET_CHILD_SUBREAPER) to the leader's batch; <see cref="ChildSubreaper"/> reads it once run.</summary>
    public static int AddChildSubreaper(ProbeBatch batch) =>
        batch.Add("prctl(PR_GET_CHILD_SUBREAPER)", SYS_prctl, sizeof(int), output => [PR_GET_CHILD_SUBREAPER, output]);

    public static bool ChildSubreaper(ProbeBatch batch, int call)
    {
        batch.Checked(call);
        return batch.Output<int>(call) != 0;
    }

    /// <summary>Adds prctl(PR_GET_PDEATHSIG) to a thread's batch; <see cref="ParentDeathSignal"/> reads it once run.</summary>
    public static int AddParentDeathSignal(ProbeBatch batch) =>
        batch.Add("prctl(PR_GET_PDEATHSIG)", SYS_prctl, sizeof(int), output => [PR_GET_PDEATHSIG, output]);

    public static int ParentDeathSignal(ProbeBatch batch, int call)
    {
        batch.Checked(call);
        return batch.Output<int>(call);
    }

    /// <summary>In a process just created (stopped at its exec): the flag, if the image has it.</summary>
    public static void SetChildSubreaper(SyscallInjector process, ProcessImage image)
    {
        if (image.ChildSubreaper) process.Call("prctl(PR_SET_CHILD_SUBREAPER, 1)", SYS_prctl, PR_SET_CHILD_SUBREAPER, 1);
    }

    /// <summary>In a thread, with its restored credentials, late in the restore: its signal, if the image has one.</summary>
    /// <remarks>Added to <paramref name="batch"/>, which runs in the thread; the caller runs it.</remarks>
    public static void AddParentDeathSignal(SyscallBatch batch, ThreadImage image)
    {
        if (image.ParentDeathSignal != 0)
            batch.Add($"prctl(PR_SET_PDEATHSIG, {image.ParentDeathSignal})", SYS_prctl, PR_SET_PDEATHSIG, (ulong)image.ParentDeathSignal);
    }
}
