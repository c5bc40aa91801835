using Ckpt.Engine.Linux;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Checkpoint.Audit;

/// <summary>
/// State only the task itself can read, probed with read-only calls in the injected batches the
/// checkpoint makes anyway (<see cref="ProbeBatch"/>: InjectedTaskState for the process, ThreadProbes per
/// thread); the calls are added first and judged here once the batch has run, in this order. A refusal
/// leaves the session's Dispose to put registers, mask and scratch memory back. Nothing here changes
/// the target: every call is a "get". Per process: membarrier registrations (saved, Memory.Membarrier;
/// an unknown bit refused), memory-deny-write-execute, the process keyring. Per thread: timer slack,
/// memory policy, the thread keyring, TSC and CPUID faulting. (The child-subreaper flag and the
/// parent-death signal are read and saved: ParentLinks.)
/// </summary>
public static class InjectedProbes
{
    private const ulong PR_GET_TSC = 25, PR_GET_TIMERSLACK = 30, PR_GET_MDWE = 66;
    private const int PR_TSC_ENABLE = 1;
    private const ulong KEYCTL_GET_KEYRING_ID = 0;
    private const long KEY_SPEC_THREAD_KEYRING = -1, KEY_SPEC_PROCESS_KEYRING = -2;
    private const ulong ARCH_GET_CPUID = 0x1011;
    private const long ENOKEY = -126, EINVAL = -22, ENOSYS = -38;

    /// <summary>The process-wide probes' calls in the leader's batch.</summary>
    public readonly record struct ProcessCalls(int Membarrier, int Mdwe, int Keyring);

    /// <summary>A thread's probes' calls in its batch.</summary>
    public readonly record struct ThreadCalls(int TimerSlack, int MemoryPolicy, int Keyring, int Tsc, int Cpuid);

    public static ProcessCalls AddProcess(ProbeBatch batch) => new(
        Memory.Membarrier.Add(batch),
        batch.Add("prctl(PR_GET_MDWE)", SYS_prctl, PR_GET_MDWE, 0, 0, 0, 0),
        AddKeyring(batch, KEY_SPEC_PROCESS_KEYRING));

    /// <returns>the membarrier registrations, which the image saves</returns>
    public static MembarrierRegistrations CheckProcess(ProbeBatch batch, ProcessCalls calls, int pid)
    {
        MembarrierRegistrations membarrier = Memory.Membarrier.Registrations(batch, calls.Membarrier, pid);
        long mdwe = batch.Result(calls.Mdwe);
        if (mdwe > 0)
            throw new CheckpointRefusedException($"process {pid} has memory-deny-write-execute set (prctl PR_GET_MDWE 0x{mdwe:x}): not checkpointed");
        RefuseKeyring(batch.Result(calls.Keyring), pid, $"process {pid} has a process keyring");
        return membarrier;
    }

    public static ThreadCalls AddThread(ProbeBatch batch) => new(
        batch.Add("prctl(PR_GET_TIMERSLACK)", SYS_prctl, PR_GET_TIMERSLACK),
        batch.Add("get_mempolicy", SYS_get_mempolicy, sizeof(int), output => [output, 0, 0, 0, 0]),
        AddKeyring(batch, KEY_SPEC_THREAD_KEYRING),
        batch.Add("prctl(PR_GET_TSC)", SYS_prctl, sizeof(int), output => [PR_GET_TSC, output]),
        batch.Add("arch_prctl(ARCH_GET_CPUID)", SYS_arch_prctl, ARCH_GET_CPUID));

    public static void CheckThread(ProbeBatch batch, ThreadCalls calls, int pid, int tid)
    {
        string who = $"thread {tid} of process {pid}";
        long slack = batch.Checked(calls.TimerSlack);
        if (slack != EngineTimerSlack.Value)
            throw new CheckpointRefusedException($"{who} has its own timer slack ({slack} ns, prctl PR_GET_TIMERSLACK; a restored thread gets the engine's {EngineTimerSlack.Value} ns): not checkpointed");
        if (batch.Result(calls.MemoryPolicy) == 0 && batch.Output<int>(calls.MemoryPolicy) != 0)
            throw new CheckpointRefusedException($"{who} has its own memory policy (get_mempolicy mode {batch.Output<int>(calls.MemoryPolicy)}; set_mempolicy): not checkpointed");
        RefuseKeyring(batch.Result(calls.Keyring), pid, $"{who} has a thread keyring");
        if (batch.Result(calls.Tsc) == 0 && batch.Output<int>(calls.Tsc) != PR_TSC_ENABLE)
            throw new CheckpointRefusedException($"{who} made the time-stamp counter fault (prctl PR_SET_TSC): not checkpointed");
        if (batch.Result(calls.Cpuid) == 0)
            throw new CheckpointRefusedException($"{who} made the CPUID instruction fault (arch_prctl ARCH_SET_CPUID): not checkpointed");
    }

    private static int AddKeyring(ProbeBatch batch, long which) =>
        batch.Add("keyctl(KEYCTL_GET_KEYRING_ID)", SYS_keyctl, KEYCTL_GET_KEYRING_ID, unchecked((ulong)which), 0);

    private static void RefuseKeyring(long id, int pid, string what)
    {
        if (id > 0) throw new CheckpointRefusedException($"{what} (keyctl KEYCTL_GET_KEYRING_ID: key {id}): keyrings are not checkpointed");
        if (id is not (ENOKEY or EINVAL or ENOSYS) && id < 0)
            throw new SyscallException("keyctl(KEYCTL_GET_KEYRING_ID)", (int)-id, pid);
    }

    private static readonly Lazy<long> EngineTimerSlack = new(() => Native.syscall5(SYS_prctl, (long)PR_GET_TIMERSLACK, 0, 0, 0, 0));
}
