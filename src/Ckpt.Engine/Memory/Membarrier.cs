using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Memory;

/// <summary>
/// membarrier(2) registrations, which belong to the mm. Checkpoint: MEMBARRIER_CMD_GET_REGISTRATIONS
/// injected into the process (InjectedProbes, a read-only call); a bit this engine does not know is
/// refused by value. The MEMBARRIER record goes after the MM's VMAs. Restore: every saved bit must be
/// a command this kernel supports (MEMBARRIER_CMD_QUERY, before any process exists), and is registered
/// again by injecting membarrier(MEMBARRIER_CMD_REGISTER_*) into the new process after its memory.
/// </summary>
public static class Membarrier
{
    private const ulong MEMBARRIER_CMD_QUERY = 0, MEMBARRIER_CMD_GET_REGISTRATIONS = 1 << 9;
    private const long ENOSYS = -38, EINVAL = -22;

    private static readonly (MembarrierRegistrations Bit, string Name)[] Commands =
    [
        (MembarrierRegistrations.GlobalExpedited, "MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED"),
        (MembarrierRegistrations.PrivateExpedited, "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED"),
        (MembarrierRegistrations.PrivateExpeditedSyncCore, "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE"),
        (MembarrierRegistrations.PrivateExpeditedRseq, "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ"),
    ];

    /// <summary>Adds MEMBARRIER_CMD_GET_REGISTRATIONS to the leader's batch; <see cref="Registrations"/> judges it once run.</summary>
    public static int Add(ProbeBatch batch) =>
        batch.Add("membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS)", SYS_membarrier, MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0);

    /// <summary>The registrations of the process; a kernel without the command (before 6.3) has none to report.</summary>
    public static MembarrierRegistrations Registrations(ProbeBatch batch, int call, int pid)
    {
        long registrations = batch.Result(call);
        if (registrations is ENOSYS or EINVAL) return MembarrierRegistrations.None;
        if (registrations < 0) throw new SyscallException("membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS)", (int)-registrations, pid);
        var bits = (MembarrierRegistrations)registrations;
        MembarrierRegistrations unknown = bits & ~MembarrierRecord.Known;
        if (unknown != 0)
            throw new CheckpointRefusedException($"process {pid} has membarrier registrations 0x{(uint)unknown:x} (MEMBARRIER_CMD_GET_REGISTRATIONS 0x{registrations:x}) that this engine does not know: not checkpointed");
        return bits;
    }

    public static void Write(ImageWriter writer, int mmObjRef, MembarrierRegistrations registrations)
    {
        if (registrations != 0) writer.Write(new MembarrierRecord { MmObjRef = mmObjRef, Registrations = registrations });
    }

    /// <summary>Before any process exists: this kernel supports every command the image's processes registered for.</summary>
    public static void Validate(RestorePlan plan)
    {
        MembarrierRegistrations wanted = plan.Process.Memory.Membarrier;
        if (wanted == 0) return;
        long supported = Native.syscall5(SYS_membarrier, (long)MEMBARRIER_CMD_QUERY, 0, 0, 0, 0);
        foreach (var (bit, name) in Commands)
        {
            if ((wanted & bit) != 0 && (supported < 0 || (supported & (long)bit) == 0))
                throw new RestoreRefusedException($"process {plan.Pid} registered for membarrier with {name}, which this kernel does not support (MEMBARRIER_CMD_QUERY {(supported < 0 ? "fails" : $"0x{supported:x}")}): refused");
        }
    }

    /// <summary>Injected into the new process once its memory exists: each saved registration again.</summary>
    public static void Register(SyscallInjector syscalls, RestorePlan plan)
    {
        foreach (var (bit, name) in Commands)
        {
            if ((plan.Process.Memory.Membarrier & bit) != 0)
                syscalls.Call($"membarrier({name})", SYS_membarrier, (ulong)bit, 0, 0);
        }
    }
}
