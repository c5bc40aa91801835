using Ckpt.Engine.Linux;
using System.Runtime.InteropServices;
using Ckpt.Engine.Restore;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// cwd, umask and personality, set by the task itself (injected; the name is per thread); the resource limits come
/// later, with the restored credentials (<see cref="SetLimits"/>).
/// </summary>
public static unsafe class TaskStateRestore
{
    private static readonly string[] LimitNames =
        ["CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE", "MEMLOCK", "AS", "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME"];

    /// <param name="setFs">false for a later sharer of fs information (CLONE_FS): its first sharer set cwd and umask for both</param>
    public static void Run(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch, bool setFs = true)
    {
        scratch.Reset();
        var batch = new SyscallBatch(syscalls, scratch);
        Add(batch, plan, scratch, setFs);
        batch.Run();
        // The name (comm) is set per thread, the leader's too, by ThreadRestore.SetThreadState.
    }

    /// <summary><see cref="Run"/>'s calls, added to a batch the caller runs (see Restore/LateStateStage).</summary>
    public static void Add(SyscallBatch batch, RestorePlan plan, ScratchArea scratch, bool setFs)
    {
        if (setFs)
        {
            batch.Add($"chdir({plan.Cwd})", SYS_chdir, scratch.PutString(plan.Cwd));
            batch.Add("umask", SYS_umask, plan.Task.Umask);
        }
        batch.Add("personality", SYS_personality, plan.Task.Personality);
    }

    /// <summary>
    /// The resource limits, set by the task once it has its restored credentials (the leader, right
    /// after its own credentials): the kernel then allows a hard limit above the one the task
    /// inherited from the engine only if the image's credentials hold CAP_SYS_RESOURCE, exactly as it
    /// would for the recorded user. A limit the recorded user could not set fails the restore with EPERM,
    /// naming the limit and both values (docs/SECURITY.md).
    /// </summary>
    /// <remarks>Added to <paramref name="batch"/> (the scratch area reset before); the caller runs it.</remarks>
    public static void AddLimits(SyscallBatch batch, RestorePlan plan, ScratchArea scratch)
    {
        SignalRecord signal = plan.Signal;
        // All the limits in one write to the task (a write per limit was most of a restore's writes).
        var limits = new Rlimit[SignalRecord.RlimitCapacity];
        for (int resource = 0; resource < limits.Length; resource++)
            limits[resource] = new Rlimit { Current = signal.RlimitCurrent[resource], Maximum = signal.RlimitMaximum[resource] };
        ulong first = scratch.Put(MemoryMarshal.AsBytes(limits.AsSpan()));
        for (int resource = 0; resource < SignalRecord.RlimitCapacity; resource++)
        {
            ulong current = signal.RlimitCurrent[resource], maximum = signal.RlimitMaximum[resource];
            ulong limit = first + (ulong)(resource * sizeof(Rlimit));
            batch.Add($"prlimit64(RLIMIT_{LimitNames[resource]}, soft {Show(current)}, hard {Show(maximum)}) with the restored credentials",
                SYS_prlimit64, 0, (ulong)resource, limit, 0);
        }
    }

    private static string Show(ulong limit) => limit == ulong.MaxValue ? "unlimited" : limit.ToString(System.Globalization.CultureInfo.InvariantCulture);

    [StructLayout(LayoutKind.Sequential)]
    private struct Rlimit
    {
        public ulong Current, Maximum;
    }
}
