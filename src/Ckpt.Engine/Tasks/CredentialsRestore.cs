using Ckpt.Engine.Linux;
using System.Runtime.InteropServices;
using Ckpt.Engine.Restore;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// Credentials, last of all (after them the task may no longer be allowed to do the rest):
/// groups, bounding set, gids, uids (capabilities kept across the uid change), then the
/// capability sets, ambient capabilities and securebits as recorded. Then, with those credentials
/// (<see cref="RestoreLateFlags"/>, per thread) no_new_privs, and once every thread has its
/// credentials (which reset it) the process's dumpable flag (<see cref="RestoreDumpable"/>).
/// </summary>
public static class CredentialsRestore
{
    private const ulong PR_CAPBSET_DROP = 24, PR_SET_KEEPCAPS = 8, PR_SET_SECUREBITS = 28, PR_CAP_AMBIENT = 47, PR_CAP_AMBIENT_RAISE = 2;
    private const uint LinuxCapabilityVersion3 = 0x20080522;
    private const ulong PR_SET_DUMPABLE = 4, PR_SET_NO_NEW_PRIVS = 38;

    /// <summary>no_new_privs (per thread, and it cannot be cleared): set late, after the credentials.</summary>
    public static void RestoreLateFlags(SyscallInjector syscalls, Ckpt.Image.Model.ThreadImage thread)
    {
        if (thread.Task.NoNewPrivileges != 0)
            syscalls.Call("prctl(PR_SET_NO_NEW_PRIVS, 1)", SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    }

    /// <summary>
    /// The dumpable flag (per mm), after every thread's credentials: a credential change resets it
    /// to fs.suid_dumpable. PR_SET_DUMPABLE accepts 0 and 1 only, so a recorded "root-only" (2)
    /// comes back as 0, never more dumpable than it was. An image without the field (0) keeps what
    /// the exec and the credential change made.
    /// </summary>
    public static void RestoreDumpable(SyscallInjector syscalls, RestorePlan plan)
    {
        int recorded = plan.Task.Dumpable;
        if (recorded == 0) return;
        ulong value = recorded == 2 ? 1ul : 0ul;
        syscalls.Call($"prctl(PR_SET_DUMPABLE, {value})", SYS_prctl, PR_SET_DUMPABLE, value);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct CapHeader { public uint Version; public int Pid; }

    [StructLayout(LayoutKind.Sequential)]
    private struct CapData { public uint Effective0, Permitted0, Inheritable0, Effective1, Permitted1, Inheritable1; }

    public static void Run(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch)
    {
        scratch.Reset();
        CredentialsRecord c = plan.Credentials;
        // The task inherited the engine's groups and bounding set: calls that would change nothing are
        // left out, since they need CAP_SETGID / CAP_SETPCAP even then (an unprivileged restore has neither).
        Caller engine = Caller.Current;
        if (!engine.HasGroups(plan.Groups))
        {
            ulong groups = plan.Groups.Length == 0 ? 0 : scratch.Put(MemoryMarshal.AsBytes(plan.Groups.AsSpan()));
            syscalls.Call("setgroups", SYS_setgroups, (ulong)plan.Groups.Length, groups);
        }
        int lastCap = int.Parse(File.ReadAllText("/proc/sys/kernel/cap_last_cap").Trim());
        for (int cap = 0; cap <= lastCap; cap++)
        {
            if ((c.CapBounding & (1ul << cap)) == 0 && (engine.CapBounding & (1ul << cap)) != 0)
                syscalls.Call($"prctl(PR_CAPBSET_DROP, {cap})", SYS_prctl, PR_CAPBSET_DROP, (ulong)cap);
        }
        syscalls.Call("prctl(PR_SET_KEEPCAPS, 1)", SYS_prctl, PR_SET_KEEPCAPS, 1);
        syscalls.Call($"setresgid({c.Gid}, {c.Egid}, {c.Sgid})", SYS_setresgid, c.Gid, c.Egid, c.Sgid);
        syscalls.Call($"setresuid({c.Uid}, {c.Euid}, {c.Suid})", SYS_setresuid, c.Uid, c.Euid, c.Suid);
        syscalls.CallRaw(SYS_setfsgid, c.Fsgid); // returns the previous id, never an error
        syscalls.CallRaw(SYS_setfsuid, c.Fsuid);
        var header = new CapHeader { Version = LinuxCapabilityVersion3, Pid = 0 };
        var data = new CapData
        {
            Effective0 = (uint)c.CapEffective, Effective1 = (uint)(c.CapEffective >> 32),
            Permitted0 = (uint)c.CapPermitted, Permitted1 = (uint)(c.CapPermitted >> 32),
            Inheritable0 = (uint)c.CapInheritable, Inheritable1 = (uint)(c.CapInheritable >> 32),
        };
        syscalls.Call("capset", SYS_capset, scratch.PutStruct(header), scratch.PutStruct(data));
        for (int cap = 0; cap <= lastCap; cap++)
        {
            if ((c.CapAmbient & (1ul << cap)) != 0)
                syscalls.Call($"prctl(PR_CAP_AMBIENT_RAISE, {cap})", SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (ulong)cap, 0, 0);
        }
        // Also clears the keep-caps bit set above unless the image had it.
        long result = syscalls.CallRaw(SYS_prctl, PR_SET_SECUREBITS, c.SecureBits);
        if (result < 0 && c.SecureBits != 0)
            syscalls.Call("prctl(PR_SET_SECUREBITS)", SYS_prctl, PR_SET_SECUREBITS, c.SecureBits);
        if (result < 0)
            syscalls.Call("prctl(PR_SET_KEEPCAPS, 0)", SYS_prctl, PR_SET_KEEPCAPS, 0);
    }
}
