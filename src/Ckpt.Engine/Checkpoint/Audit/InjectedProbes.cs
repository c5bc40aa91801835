using Ckpt.Engine.Linux;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Checkpoint.Audit;

/// <summary>
/// State only the task itself can read, probed with read-only calls in the injection sessions the
/// checkpoint opens anyway (InjectedTaskState for the process, ThreadCheckpoint per thread); a refusal
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

    /// <returns>the membarrier registrations, which the image saves</returns>
    public static MembarrierRegistrations CheckProcess(RemoteSyscall remote, int pid)
    {
        MembarrierRegistrations membarrier = Memory.Membarrier.Read(remote, pid);
        long mdwe = remote.CallRaw(SYS_prctl, PR_GET_MDWE, 0, 0, 0, 0);
        if (mdwe > 0)
            throw new CheckpointRefusedException($"process {pid} has memory-deny-write-execute set (prctl PR_GET_MDWE 0x{mdwe:x}): not checkpointed");
        RefuseKeyring(remote, pid, KEY_SPEC_PROCESS_KEYRING, $"process {pid} has a process keyring");
        return membarrier;
    }

    public static void CheckThread(RemoteSyscall remote, int pid, int tid)
    {
        string who = $"thread {tid} of process {pid}";
        long slack = remote.Call("prctl(PR_GET_TIMERSLACK)", SYS_prctl, PR_GET_TIMERSLACK);
        if (slack != EngineTimerSlack.Value)
            throw new CheckpointRefusedException($"{who} has its own timer slack ({slack} ns, prctl PR_GET_TIMERSLACK; a restored thread gets the engine's {EngineTimerSlack.Value} ns): not checkpointed");
        long policy = remote.CallRaw(SYS_get_mempolicy, remote.Scratch, 0, 0, 0, 0);
        if (policy == 0 && remote.ReadScratch<int>(0) != 0)
            throw new CheckpointRefusedException($"{who} has its own memory policy (get_mempolicy mode {remote.ReadScratch<int>(0)}; set_mempolicy): not checkpointed");
        RefuseKeyring(remote, pid, KEY_SPEC_THREAD_KEYRING, $"{who} has a thread keyring");
        if (remote.CallRaw(SYS_prctl, PR_GET_TSC, remote.Scratch) == 0 && remote.ReadScratch<int>(0) != PR_TSC_ENABLE)
            throw new CheckpointRefusedException($"{who} made the time-stamp counter fault (prctl PR_SET_TSC): not checkpointed");
        if (remote.CallRaw(SYS_arch_prctl, ARCH_GET_CPUID) == 0)
            throw new CheckpointRefusedException($"{who} made the CPUID instruction fault (arch_prctl ARCH_SET_CPUID): not checkpointed");
    }

    private static void RefuseKeyring(RemoteSyscall remote, int pid, long which, string what)
    {
        long id = remote.CallRaw(SYS_keyctl, KEYCTL_GET_KEYRING_ID, unchecked((ulong)which), 0);
        if (id > 0) throw new CheckpointRefusedException($"{what} (keyctl KEYCTL_GET_KEYRING_ID: key {id}): keyrings are not checkpointed");
        if (id is not (ENOKEY or EINVAL or ENOSYS) && id < 0)
            throw new SyscallException("keyctl(KEYCTL_GET_KEYRING_ID)", (int)-id, pid);
    }

    private static readonly Lazy<long> EngineTimerSlack = new(() => Native.syscall5(SYS_prctl, (long)PR_GET_TIMERSLACK, 0, 0, 0, 0));
}
