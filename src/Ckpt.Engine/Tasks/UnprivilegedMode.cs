using Ckpt.Image.Model;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Restore;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// A user other than root runs `ckpt` with CAP_CHECKPOINT_RESTORE and CAP_SYS_PTRACE (file
/// capabilities on a copy of the binary, or ambient ones; docs/SECURITY.md). CAP_SYS_PTRACE lifts
/// the kernel's own ptrace checks, so the engine applies them itself, for both sides: such a user
/// checkpoints only processes that run entirely as them (real, effective, saved and filesystem
/// uid and gid), are dumpable and hold no capability the engine lacks, and restores only images of
/// such processes (same ids and groups, no capabilities beyond the caller's ambient ones, nothing to
/// drop from the bounding set, no securebits); the process made by a restore is checked again right
/// after its exec, before any of the image reaches it (a setuid or file-capability program would
/// otherwise run with raised privileges: a tracer with CAP_SYS_PTRACE does not stop that).
/// Refusals are <see cref="NotPermittedException"/>s (exit code 4). Root is not restricted here.
/// </summary>
public static class UnprivilegedMode
{
    /// <summary>Checkpoint side: before the freeze, and again once every thread is stopped (the target may have exec'd meanwhile).</summary>
    public static void CheckTarget(int pid) => CheckTarget(pid, Caller.Current);

    internal static void CheckTarget(int pid, Caller caller)
    {
        if (caller.IsRoot) return;
        ProcStatus status;
        try { status = ProcStatus.Read(pid); }
        catch (IOException) { throw new Checkpoint.TargetNotFoundException(pid); } // gone meanwhile
        uint[] uids = status.Numbers("Uid"), gids = status.Numbers("Gid");
        if (uids.Any(u => u != caller.Uid) || gids.Any(g => g != caller.Gid))
            throw new NotPermittedException($"process {pid} runs as uid {string.Join('/', uids)}, gid {string.Join('/', gids)} (real/effective/saved/fs); "
                + $"ckpt runs for uid {caller.Uid} without root and checkpoints only that user's own processes");
        ulong extra = status.HexNumber("CapPrm") & ~caller.CapPermitted;
        if (extra != 0)
            throw new NotPermittedException($"process {pid} holds capabilities 0x{extra:x} that ckpt does not have: only root checkpoints it");
        // /proc/PID belongs to root while the process is not dumpable (it ran a setuid program or cleared the flag).
        if (Native.stat($"/proc/{pid}", out Native.Stat proc) == 0 && proc.Uid != caller.Uid)
            throw new NotPermittedException($"process {pid} is not dumpable (it ran a setuid program or cleared PR_SET_DUMPABLE): only root checkpoints it");
    }

    /// <summary>Restore side, before any process exists: the image's credentials are the caller's own.</summary>
    public static void CheckImage(RestorePlan plan) => CheckImage(plan, Caller.Current);

    internal static void CheckImage(RestorePlan plan, Caller caller)
    {
        if (caller.IsRoot) return;
        foreach (ProcessImage process in plan.Processes) CheckProcessImage(plan.ForProcess(process), caller);
    }

    private static void CheckProcessImage(RestorePlan plan, Caller caller)
    {
        CredentialsRecord c = plan.Credentials;
        uint[] uids = [c.Uid, c.Euid, c.Suid, c.Fsuid], gids = [c.Gid, c.Egid, c.Sgid, c.Fsgid];
        string refusal = $"ckpt runs for uid {caller.Uid} without root and restores only images of that user's own processes";
        if (uids.Any(u => u != caller.Uid) || gids.Any(g => g != caller.Gid))
            throw new NotPermittedException($"the image's process ran as uid {string.Join('/', uids)}, gid {string.Join('/', gids)} (real/effective/saved/fs); {refusal}");
        if (!caller.HasGroups(plan.Groups))
            throw new NotPermittedException($"the image's process had supplementary groups [{string.Join(',', plan.Groups)}], the caller has [{string.Join(',', caller.Groups)}]; {refusal}");
        ulong capabilities = (c.CapPermitted | c.CapEffective | c.CapInheritable | c.CapAmbient) & ~caller.CapAmbient;
        if (capabilities != 0)
            throw new NotPermittedException($"the image's process held capabilities 0x{capabilities:x}, which only root can give; {refusal}");
        ulong toDrop = caller.CapBounding & ~c.CapBounding;
        if (toDrop != 0)
            throw new NotPermittedException($"the image's capability bounding set lacks 0x{toDrop:x}, which only root can drop; {refusal}");
        if (c.SecureBits != 0)
            throw new NotPermittedException($"the image's process had securebits 0x{c.SecureBits:x}, which only root can set; {refusal}");
    }

    /// <summary>Restore side, stopped at its exec: the new process has exactly the caller's ids and no capability the caller could not give it.</summary>
    public static void CheckCreated(int pid, string program)
    {
        Caller caller = Caller.Current;
        if (caller.IsRoot) return;
        ProcStatus status = ProcStatus.Read(pid);
        uint[] uids = status.Numbers("Uid"), gids = status.Numbers("Gid");
        ulong capabilities = status.HexNumber("CapPrm") & ~caller.CapAmbient;
        if (uids.Any(u => u != caller.Uid) || gids.Any(g => g != caller.Gid) || capabilities != 0)
            throw new NotPermittedException($"{program} changed its credentials at exec (uid {string.Join('/', uids)}, gid {string.Join('/', gids)}, "
                + $"capabilities 0x{status.HexNumber("CapPrm"):x}): a setuid, setgid or file-capability program is not restored without root");
    }
}

/// <summary>The caller may not act on this process or image (exit code 4, PermissionDenied).</summary>
public sealed class NotPermittedException(string message) : UnauthorizedAccessException(message);
