using Ckpt.Engine.Linux;
using System.Runtime.InteropServices;
using Ckpt.Engine.Restore;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// Credentials, early: right after the threads exist and before memory, files, cwd and signals,
/// so that every open, chdir and mmap of the restore is the recorded user's (docs/SECURITY.md).
/// Groups, bounding set, gids, uids (capabilities kept across the uid change), then the
/// capability sets, ambient capabilities and securebits as recorded. What needs the engine's
/// privilege in the task (clone3 with set_tid, PR_SET_MM_MAP with an exe, the image opened for
/// the pages) is done before. Late, with those credentials (<see cref="AddLateFlags"/>, per
/// thread): no_new_privs, and once every thread has its credentials (which reset it) the
/// process's dumpable flag (<see cref="RestoreDumpable"/>).
/// </summary>
public static class CredentialsRestore
{
    // The highest capability this kernel knows: read once for all the processes of a tree.
    private static readonly Lazy<int> s_lastCapability = new(() => int.Parse(File.ReadAllText("/proc/sys/kernel/cap_last_cap").Trim()));

    private const ulong PR_CAPBSET_DROP = 24, PR_SET_KEEPCAPS = 8, PR_SET_SECUREBITS = 28, PR_CAP_AMBIENT = 47, PR_CAP_AMBIENT_RAISE = 2;
    private const uint LinuxCapabilityVersion3 = 0x20080522;
    private const ulong PR_SET_DUMPABLE = 4, PR_SET_NO_NEW_PRIVS = 38;

    /// <summary>no_new_privs (per thread, and it cannot be cleared): set late, after the credentials.</summary>
    /// <remarks>Added to <paramref name="batch"/>, which runs in the thread; the caller runs it.</remarks>
    public static void AddLateFlags(SyscallBatch batch, Ckpt.Image.Model.ThreadImage thread)
    {
        if (thread.Task.NoNewPrivileges != 0)
            batch.Add("prctl(PR_SET_NO_NEW_PRIVS, 1)", SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    }

    /// <summary>
    /// The dumpable flag (per mm), after every thread's credentials: a credential change resets it
    /// to fs.suid_dumpable. PR_SET_DUMPABLE accepts 0 and 1 only, so a recorded "root-only" (2)
    /// comes back as 0, never more dumpable than it was. An image without the field (0) keeps what
    /// the exec and the credential change made.
    /// </summary>
    /// <remarks>Added to <paramref name="batch"/>; the caller runs it.</remarks>
    public static void AddDumpable(SyscallBatch batch, RestorePlan plan)
    {
        int recorded = plan.Task.Dumpable;
        if (recorded == 0) return;
        ulong value = recorded == 2 ? 1ul : 0ul;
        batch.Add($"prctl(PR_SET_DUMPABLE, {value})", SYS_prctl, PR_SET_DUMPABLE, value);
    }

    /// <summary>
    /// The recorded supplementary groups, fs gid and fs uid only, the rest still the engine's: what
    /// the kernel checks when the task opens a file. Leaving fs uid 0 also drops the file-system
    /// capabilities (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, ...) from the effective
    /// set. For the one open that must come before the full credentials (the executable, see
    /// MmFieldsRestore); every later open runs with the full recorded credentials.
    /// </summary>
    /// <remarks>Added to <paramref name="batch"/>, before the open; call <see cref="CheckFileIds"/> with its results after it ran.</remarks>
    /// <returns>the entries of the two queries of the fs ids that the change took</returns>
    public static (int Fsgid, int Fsuid) AddFileIds(SyscallBatch batch, RestorePlan plan, ScratchArea scratch)
    {
        CredentialsRecord c = plan.Credentials;
        // Left out when it would change nothing: it needs CAP_SETGID even then (see Run).
        if (!Caller.Current.HasGroups(plan.Groups))
        {
            ulong groups = plan.Groups.Length == 0 ? 0 : scratch.Put(MemoryMarshal.AsBytes(plan.Groups.AsSpan()));
            batch.Add("setgroups", SYS_setgroups, (ulong)plan.Groups.Length, groups);
        }
        // setfsuid/setfsgid return the previous id, never an error: ask again (-1 changes nothing) to know.
        batch.AddMayFail("setfsgid", SYS_setfsgid, c.Fsgid);
        batch.AddMayFail("setfsuid", SYS_setfsuid, c.Fsuid);
        return (batch.AddMayFail("setfsgid(-1)", SYS_setfsgid, uint.MaxValue), batch.AddMayFail("setfsuid(-1)", SYS_setfsuid, uint.MaxValue));
    }

    /// <summary>Throws unless the fs ids <see cref="AddFileIds"/> asked for were taken.</summary>
    public static void CheckFileIds(long[] results, (int Fsgid, int Fsuid) queries, int pid, RestorePlan plan)
    {
        CredentialsRecord c = plan.Credentials;
        if (results[queries.Fsgid] != c.Fsgid || results[queries.Fsuid] != c.Fsuid)
            throw new SyscallException($"setfsuid({c.Fsuid})/setfsgid({c.Fsgid})", Errno.EPERM, pid, "the fs ids did not change");
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct CapHeader { public uint Version; public int Pid; }

    [StructLayout(LayoutKind.Sequential)]
    private struct CapData { public uint Effective0, Permitted0, Inheritable0, Effective1, Permitted1, Inheritable1; }

    public static void Run(SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch)
    {
        scratch.Reset();
        var batch = new SyscallBatch(syscalls, scratch); // one ptrace stop for the calls below, in this order
        Action<long[]> finish = Add(batch, syscalls, plan, scratch);
        finish(batch.Run());
    }

    /// <summary>
    /// The calls, added to a batch that runs in the thread <paramref name="syscalls"/> injects into; returns what
    /// comes after the batch (given its results): the securebits, made again alone where the batch's try failed.
    /// </summary>
    public static Action<long[]> Add(SyscallBatch batch, SyscallInjector syscalls, RestorePlan plan, ScratchArea scratch)
    {
        CredentialsRecord c = plan.Credentials;
        // The task inherited the engine's groups and bounding set: calls that would change nothing are
        // left out, since they need CAP_SETGID / CAP_SETPCAP even then (an unprivileged restore has neither).
        Caller engine = Caller.Current;
        if (!engine.HasGroups(plan.Groups))
        {
            ulong groups = plan.Groups.Length == 0 ? 0 : scratch.Put(MemoryMarshal.AsBytes(plan.Groups.AsSpan()));
            batch.Add("setgroups", SYS_setgroups, (ulong)plan.Groups.Length, groups);
        }
        int lastCap = s_lastCapability.Value;
        for (int cap = 0; cap <= lastCap; cap++)
        {
            if ((c.CapBounding & (1ul << cap)) == 0 && (engine.CapBounding & (1ul << cap)) != 0)
                batch.Add($"prctl(PR_CAPBSET_DROP, {cap})", SYS_prctl, PR_CAPBSET_DROP, (ulong)cap);
        }
        // Capabilities are kept across the uid change only when the image has some: otherwise the change
        // from root clears them at once, and the task never holds the engine's capabilities with the
        // recorded user's uid, not even between two injected calls.
        if (c.CapPermitted != 0)
            batch.Add("prctl(PR_SET_KEEPCAPS, 1)", SYS_prctl, PR_SET_KEEPCAPS, 1);
        batch.Add($"setresgid({c.Gid}, {c.Egid}, {c.Sgid})", SYS_setresgid, c.Gid, c.Egid, c.Sgid);
        batch.Add($"setresuid({c.Uid}, {c.Euid}, {c.Suid})", SYS_setresuid, c.Uid, c.Euid, c.Suid);
        batch.AddMayFail("setfsgid", SYS_setfsgid, c.Fsgid); // returns the previous id, never an error
        batch.AddMayFail("setfsuid", SYS_setfsuid, c.Fsuid);
        var header = new CapHeader { Version = LinuxCapabilityVersion3, Pid = 0 };
        var data = new CapData
        {
            Effective0 = (uint)c.CapEffective, Effective1 = (uint)(c.CapEffective >> 32),
            Permitted0 = (uint)c.CapPermitted, Permitted1 = (uint)(c.CapPermitted >> 32),
            Inheritable0 = (uint)c.CapInheritable, Inheritable1 = (uint)(c.CapInheritable >> 32),
        };
        batch.Add("capset", SYS_capset, scratch.PutStruct(header), scratch.PutStruct(data));
        for (int cap = 0; cap <= lastCap; cap++)
        {
            if ((c.CapAmbient & (1ul << cap)) != 0)
                batch.Add($"prctl(PR_CAP_AMBIENT_RAISE, {cap})", SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (ulong)cap, 0, 0);
        }
        // Also clears the keep-caps bit set above unless the image had it.
        int securebits = batch.AddMayFail("prctl(PR_SET_SECUREBITS)", SYS_prctl, PR_SET_SECUREBITS, c.SecureBits);
        return results =>
        {
            long result = results[securebits];
            if (result < 0 && c.SecureBits != 0)
                syscalls.Call("prctl(PR_SET_SECUREBITS)", SYS_prctl, PR_SET_SECUREBITS, c.SecureBits);
            if (result < 0)
                syscalls.Call("prctl(PR_SET_KEEPCAPS, 0)", SYS_prctl, PR_SET_KEEPCAPS, 0);
        };
    }
}
