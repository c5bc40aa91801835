using Ckpt.Engine.Linux;
using System.Runtime.InteropServices;
using Ckpt.Engine.Restore;
using Ckpt.Engine.Tasks;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Memory;

/// <summary>
/// Sets the exe link, the mm fields (code/data/brk/stack/args/env bounds) and the saved auxv with
/// one PR_SET_MM_MAP, injected, before the memory is rebuilt (the kernel checks the fields'
/// order and range, not the mappings) and before the credentials: an exe needs
/// CAP_CHECKPOINT_RESTORE in the task. The task executed a neutral program
/// (<see cref="NeutralExecutable"/>), unmapped already, so the kernel lets the exe change. The
/// executable is opened with the recorded fs ids and groups (<see cref="CredentialsRestore.AddFileIds"/>):
/// the kernel's checks of the open and PR_SET_MM_MAP's exec permission are the recorded user's.
/// </summary>
public static unsafe class MmFieldsRestore
{
    private const ulong PR_SET_MM = 35, PR_SET_MM_MAP = 14;
    private const ulong O_RDONLY = 0, O_NONBLOCK = 0x800, O_NOFOLLOW = 0x20000, O_CLOEXEC = 0x80000;
    private const ulong AT_FDCWD = unchecked((ulong)-100);

    [StructLayout(LayoutKind.Sequential)]
    private struct PrctlMmMap
    {
        public ulong StartCode, EndCode, StartData, EndData, StartBrk, Brk, StartStack, ArgStart, ArgEnd, EnvStart, EnvEnd;
        public ulong Auxv;
        public uint AuxvSize;
        public uint ExeFd;
    }

    public static void Run(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch)
    {
        scratch.Reset();
        var batch = new SyscallBatch(syscalls, scratch);
        Action<long[]> check = Add(batch, syscalls.Pid, plan, scratch);
        check(batch.Run());
    }

    /// <summary>
    /// Two steps in the leader <paramref name="pid"/>: <paramref name="batch"/> (empty) runs at once with the fs
    /// ids and the open of the executable; then PR_SET_MM_MAP with the descriptor the open returned (inside the
    /// struct, so not an argument a batch could fill in) and its close are added to it, for the caller to run
    /// with calls of its own (one ptrace stop fewer). Returns the check of those results: it throws, naming the
    /// call, when one failed.
    /// </summary>
    public static Action<long[]> Add(SyscallBatch batch, int pid, RestorePlan plan, ScratchArea scratch)
    {
        if (!Caller.Current.IsRoot)
        {
            // An unprivileged restore executed the image's own program (TreeCreation), so the exe link
            // is already right; changing it would need CAP_CHECKPOINT_RESTORE in the task, which it
            // lost at the exec. ExeFd -1 leaves it.
            int map = AddSetMap(batch, plan, scratch, uint.MaxValue);
            return results => RequireSetMap(results[map], pid, plan);
        }
        var fileIds = CredentialsRestore.AddFileIds(batch, plan, scratch);
        // The recorded path is the kernel's resolved name: its last component is never a symlink.
        int open = batch.AddMayFail($"openat of the executable {plan.ExePath}", SYS_openat, AT_FDCWD,
            scratch.PutString(plan.ExePath), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0);
        long[] opened = batch.Run();
        CredentialsRestore.CheckFileIds(opened, fileIds, pid, plan);
        long exe = opened[open];
        if (exe < 0) throw new SyscallException($"openat of the executable {plan.ExePath} as uid {plan.Credentials.Fsuid}", (int)-exe, pid, "injected into the task");
        int setMap = AddSetMap(batch, plan, scratch, (uint)exe);
        batch.AddMayFail("close of the executable", SYS_close, (ulong)exe);
        return results => RequireSetMap(results[setMap], pid, plan);
    }

    private static void RequireSetMap(long result, int pid, RestorePlan plan)
    {
        if (result < 0) throw new SyscallException($"prctl(PR_SET_MM, PR_SET_MM_MAP) with the executable {plan.ExePath}", (int)-result, pid, "injected into the task");
    }

    private static int AddSetMap(SyscallBatch batch, RestorePlan plan, ScratchArea scratch, uint exe)
    {
        MmRecord mm = plan.Mm;
        if (mm.AuxvWords > MmRecord.AuxvCapacity)
            throw new RestoreRefusedException($"MM record claims {mm.AuxvWords} auxv words, at most {MmRecord.AuxvCapacity} fit");
        var auxv = new ulong[mm.AuxvWords];
        for (int i = 0; i < auxv.Length; i++) auxv[i] = mm.SavedAuxv[i];
        ulong auxvAddress = scratch.Put(MemoryMarshal.AsBytes(auxv.AsSpan()));
        var map = new PrctlMmMap
        {
            StartCode = mm.StartCode, EndCode = mm.EndCode, StartData = mm.StartData, EndData = mm.EndData,
            StartBrk = mm.StartBrk, Brk = mm.Brk, StartStack = mm.StartStack,
            ArgStart = mm.ArgStart, ArgEnd = mm.ArgEnd, EnvStart = mm.EnvStart, EnvEnd = mm.EnvEnd,
            Auxv = auxvAddress, AuxvSize = (uint)(auxv.Length * 8), ExeFd = exe,
        };
        ulong mapAddress = scratch.PutStruct(map);
        return batch.AddMayFail("prctl(PR_SET_MM, PR_SET_MM_MAP)", SYS_prctl, PR_SET_MM, PR_SET_MM_MAP, mapAddress, (ulong)sizeof(PrctlMmMap), 0);
    }
}
