using System.Globalization;
using Ckpt.Engine.Linux;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Checkpoint.Audit;

/// <summary>
/// Per-thread state readable from the engine without injection: /proc/PID/task/TID/status (tracer,
/// seccomp, shadow stack, speculation controls) and direct calls on the tid (scheduling flags, CPU
/// affinity, I/O priority, core-scheduling cookie, SysV semaphore undo list). Saved elsewhere: the
/// policy, priority and nice (ThreadCheckpoint.ReadScheduling), the personality (TaskRecord; a thread
/// with its own is refused by TaskCheckpoint.Refuse).
/// </summary>
public static class ThreadStateAudit
{
    private const int SCHED_DEADLINE = 6, SCHED_RESET_ON_FORK = 0x40000000;
    private const int IOPRIO_WHO_PROCESS = 1, KCMP_SYSVSEM = 6, EOPNOTSUPP = 95;
    private const int PR_SCHED_CORE = 62, PR_SCHED_CORE_GET = 0, PIDTYPE_PID = 0;
    private static readonly string[] SpeculationKeys = ["Speculation_Store_Bypass", "SpeculationIndirectBranch"];

    public static List<int> Threads(int pid) =>
        ProcText.ListNumbers($"/proc/{pid}/task").Order().ToList();

    /// <summary>Before the freeze: /proc/TID/status, or null when the thread is gone (it may exit at any moment).</summary>
    public static ProcStatus? StatusIfThere(int pid, int tid) => TryStatus(pid, tid);

    /// <summary>Before the freeze: a thread traced by someone else (a debugger, strace) cannot be seized, and its tracer would lose it.</summary>
    /// <param name="status">its <see cref="StatusIfThere"/> (null: gone, nothing to refuse)</param>
    public static void RefuseTracer(int pid, int tid, ProcStatus? status)
    {
        if (status is null) return;
        long tracer = status.Number("TracerPid");
        if (tracer != 0)
            throw new CheckpointRefusedException($"thread {tid} of process {pid} is traced by process {tracer} (TracerPid in /proc/{pid}/task/{tid}/status): detach the debugger or strace first");
    }

    /// <summary>Before the freeze a thread may exit at any moment: one that is gone is no longer part of the process.</summary>
    /// <param name="status">its <see cref="StatusIfThere"/> (null: gone)</param>
    public static void CheckIfStillThere(int pid, int tid, ProcStatus? status)
    {
        if (status is null) return;
        try { Check(pid, tid, status); }
        catch (Exception e) when (e is IOException or SyscallException && !Directory.Exists($"/proc/{pid}/task/{tid}")) { }
    }

    /// <param name="status">/proc/TID/status if already read (frozen, it does not change), else read here</param>
    public static void Check(int pid, int tid, ProcStatus? status = null)
    {
        string where = $"/proc/{pid}/task/{tid}/status";
        status ??= ProcStatus.Read(tid);
        long seccomp = status.Number("Seccomp");
        if (seccomp != 0)
            throw new CheckpointRefusedException($"thread {tid} of process {pid} runs under seccomp (mode {seccomp}, {(seccomp == 2 ? "filter" : "strict")}) ({where}), which restore cannot rebuild");
        if (status.Has("x86_Thread_features") && status.Text("x86_Thread_features").Contains("shstk", StringComparison.Ordinal))
            throw new CheckpointRefusedException($"thread {tid} of process {pid} uses a shadow stack (x86_Thread_features: {status.Text("x86_Thread_features")}, {where}): not checkpointed");
        foreach (string key in SpeculationKeys)
        {
            if (status.Has(key) && status.Text(key) != EngineStatus.Value.Text(key))
                throw new CheckpointRefusedException($"thread {tid} of process {pid} has its own speculation control ({key}: {status.Text(key)}, the engine's {EngineStatus.Value.Text(key)}; {where}): not checkpointed");
        }
        CheckScheduling(pid, tid);
        CheckSysvSemUndo(pid, tid);
    }

    private static readonly Lazy<ProcStatus> EngineStatus = new(() => ProcStatus.Read(Environment.ProcessId));

    private static unsafe void CheckScheduling(int pid, int tid)
    {
        long policy = Native.syscall3(SYS_sched_getscheduler, tid, 0, 0);
        if (policy < 0) throw new SyscallException("sched_getscheduler", Native.LastErrno, tid);
        if ((policy & SCHED_RESET_ON_FORK) != 0)
            throw new CheckpointRefusedException($"thread {tid} of process {pid} has SCHED_RESET_ON_FORK set (sched_getscheduler): not checkpointed");
        if (policy == SCHED_DEADLINE)
            throw new CheckpointRefusedException($"thread {tid} of process {pid} runs under SCHED_DEADLINE (sched_getscheduler): its runtime, deadline and period are not checkpointed");

        // The restored threads inherit the restoring engine's affinity: only that one is faithful.
        byte[] mask = Affinity(tid), engine = EngineAffinity.Value;
        if (!mask.AsSpan().SequenceEqual(engine))
            throw new CheckpointRefusedException($"thread {tid} of process {pid} has its own CPU affinity (sched_getaffinity {Hex(mask)}, the engine's {Hex(engine)}): not checkpointed");

        long ioprio = Native.syscall3(SYS_ioprio_get, IOPRIO_WHO_PROCESS, tid, 0);
        if (ioprio < 0) throw new SyscallException("ioprio_get", Native.LastErrno, tid);
        if (ioprio != EngineIoPriority.Value)
            throw new CheckpointRefusedException($"thread {tid} of process {pid} has its own I/O priority (ioprio_get: class {ioprio >> 13}, level {ioprio & 0x1fff}): not checkpointed");

        ulong cookie = 0;
        if (Native.syscall5(SYS_prctl, PR_SCHED_CORE, PR_SCHED_CORE_GET, tid, PIDTYPE_PID, (long)&cookie) == 0 && cookie != 0)
            throw new CheckpointRefusedException($"thread {tid} of process {pid} has a core-scheduling cookie (PR_SCHED_CORE_GET): not checkpointed");
    }

    private static readonly Lazy<byte[]> EngineAffinity = new(() => Affinity(0));
    private static readonly Lazy<long> EngineIoPriority = new(() => Native.syscall3(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0, 0));

    private static unsafe byte[] Affinity(int tid)
    {
        byte[] mask = new byte[128];
        fixed (byte* buffer = mask)
        {
            long length = Native.syscall3(SYS_sched_getaffinity, tid, mask.Length, (long)buffer);
            if (length < 0) throw new SyscallException("sched_getaffinity", Native.LastErrno, tid);
            return mask[..(int)length];
        }
    }

    private static string Hex(byte[] mask) => "0x" + string.Concat(mask.Reverse().SkipWhile(b => b == 0).Select(b => b.ToString("x2", CultureInfo.InvariantCulture))).TrimStart('0').PadLeft(1, '0');

    // A semop with SEM_UNDO records an adjustment the kernel applies at exit in the task's undo list.
    // The list itself also exists, empty, in every thread that made a thread (clone with CLONE_SYSVSEM
    // allocates it), so its existence alone says little; its entries are not visible anywhere. They
    // can only exist while a semaphore array exists (removing an array frees its entries), so: refuse
    // a thread with an undo list while the IPC namespace (the engine's: see ProcessStateAudit) holds
    // any semaphore array. kcmp(KCMP_SYSVSEM) compares two tasks' lists; the reference is this engine
    // thread right after unshare(CLONE_SYSVSEM) has dropped its own (always empty: the engine never
    // calls semop, so the kernel has nothing to apply).
    private static void CheckSysvSemUndo(int pid, int tid)
    {
        if (ProcText.ReadAllLines("/proc/sysvipc/sem").Skip(1).All(string.IsNullOrWhiteSpace)) return;
        if (Native.syscall3(SYS_unshare, CLONE_SYSVSEM, 0, 0) != 0) throw new SyscallException("unshare(CLONE_SYSVSEM)", Native.LastErrno, Environment.ProcessId);
        int self = (int)Native.syscall3(SYS_gettid, 0, 0, 0);
        int order = Native.kcmp(tid, self, KCMP_SYSVSEM, 0, 0);
        if (order < 0 && Native.LastErrno is not (EOPNOTSUPP or Errno.EINVAL))
            throw new SyscallException("kcmp(KCMP_SYSVSEM)", Native.LastErrno, tid);
        if (order > 0)
            throw new CheckpointRefusedException($"thread {tid} of process {pid} has a SysV semaphore undo list while semaphore arrays exist (semop with SEM_UNDO; kcmp KCMP_SYSVSEM, /proc/sysvipc/sem): not checkpointed");
    }

    private const long CLONE_SYSVSEM = 0x40000;

    private static ProcStatus? TryStatus(int pid, int tid)
    {
        try { return ProcStatus.Read(tid); }
        catch (IOException) when (!Directory.Exists($"/proc/{pid}/task/{tid}")) { return null; }
    }
}
