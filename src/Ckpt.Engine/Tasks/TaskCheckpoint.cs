using System.Globalization;
using System.Text;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// The task's identity and credentials from /proc/PID/{stat,status,personality,cwd,root,exe},
/// and the refusals that depend on them (seccomp, threads that share too little).
/// </summary>
public static class TaskCheckpoint
{
    /// <summary>
    /// Refuses what the image cannot describe yet, before anything is written: threads that do not
    /// share the leader's descriptor table, fs information or
    /// credentials (possible with clone() flags or unshare(), not with pthreads).
    /// </summary>
    public static void Refuse(int pid, IReadOnlyDictionary<int, ProcStatus> statuses)
    {
        ProcStatus status = statuses[pid];
        foreach (var (tid, thread) in statuses)
        {
            // Seccomp and the rest of the per-thread kernel state: Checkpoint/Audit/ThreadStateAudit.
            if (tid == pid) continue;
            // Set per task, restored once for the process: a thread with its own would be lost.
            string personality = ProcText.ReadAllText($"/proc/{pid}/task/{tid}/personality").Trim(), leaderPersonality = ProcText.ReadAllText($"/proc/{pid}/personality").Trim();
            if (personality != leaderPersonality)
                throw new CheckpointRefusedException($"thread {tid} of process {pid} has its own personality ({personality}, the leader's {leaderPersonality}): per-thread personalities are not checkpointed");
            RefuseUnshared(pid, tid, Native.KCMP_FILES, "descriptor table");
            RefuseUnshared(pid, tid, Native.KCMP_FS, "fs information (cwd, root, umask)");
            foreach (string key in CredentialKeys)
            {
                if (thread.Text(key) != status.Text(key))
                    throw new CheckpointRefusedException($"thread {tid} of process {pid} has its own credentials ({key} {thread.Text(key)}, the leader's {status.Text(key)}): per-thread credentials are not checkpointed");
            }
        }
    }

    private static readonly string[] CredentialKeys = ["Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"];

    private static void RefuseUnshared(int pid, int tid, int kcmpType, string what)
    {
        int order = Native.kcmp(pid, tid, kcmpType, 0, 0);
        if (order < 0) throw new SyscallException("kcmp", Native.LastErrno, tid, $"comparing the {what} of threads {pid} and {tid}");
        if (order != 0)
            throw new CheckpointRefusedException($"thread {tid} of process {pid} has its own {what} (clone without CLONE_FILES/CLONE_FS, or unshare): not supported until process trees are");
    }

    /// <summary>The task table entry of a thread of the process.</summary>
    public static unsafe TaskIdsRecord Ids(int tid, int tgid, ProcStat stat)
    {
        var ids = new TaskIdsRecord
        {
            Pid = tid, Tgid = tgid, Ppid = (int)stat.Field(4), Pgid = (int)stat.Field(5), Sid = (int)stat.Field(6), NamespaceLevels = 1,
        };
        ids.NamespacePids[0] = tid;
        return ids;
    }

    /// <summary>The TASK record of a thread (pid = its tid) of process tgid.</summary>
    /// <param name="dumpable">prctl(PR_GET_DUMPABLE) of the process (per mm: the same for every thread)</param>
    public static unsafe TaskRecord Task(int pid, ProcStatus status, ProcStat stat, int threadCount, int dumpable)
    {
        var task = new TaskRecord
        {
            Pid = pid,
            Tgid = (int)status.Number("Tgid"),
            Ppid = (int)stat.Field(4),
            Pgid = (int)stat.Field(5),
            Sid = (int)stat.Field(6),
            ExitSignal = (int)stat.Field(38),
            Personality = uint.Parse(ProcText.ReadAllText($"/proc/{pid}/personality").Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture),
            Umask = status.OctalNumber("Umask"),
            NoNewPrivileges = (int)status.Number("NoNewPrivs"),
            SeccompMode = (int)status.Number("Seccomp"),
            ThreadCount = threadCount,
            Dumpable = dumpable + 1, // 0 means "not recorded" (TaskRecord.Dumpable)
            StartTimeTicks = stat.UnsignedField(22),
        };
        byte[] comm = Encoding.UTF8.GetBytes(stat.Comm);
        for (int i = 0; i < Math.Min(comm.Length, 15); i++) task.Comm[i] = comm[i];
        return task;
    }

    public static CredentialsRecord Credentials(ProcStatus status, uint secureBits, out uint[] groups)
    {
        uint[] uid = status.Numbers("Uid"), gid = status.Numbers("Gid");
        groups = status.Numbers("Groups");
        return new CredentialsRecord
        {
            Uid = uid[0], Euid = uid[1], Suid = uid[2], Fsuid = uid[3],
            Gid = gid[0], Egid = gid[1], Sgid = gid[2], Fsgid = gid[3],
            CapInheritable = status.HexNumber("CapInh"), CapPermitted = status.HexNumber("CapPrm"),
            CapEffective = status.HexNumber("CapEff"), CapBounding = status.HexNumber("CapBnd"),
            CapAmbient = status.HexNumber("CapAmb"), SecureBits = secureBits, GroupCount = groups.Length,
        };
    }

    /// <summary>The TASK record of a zombie: its ids, exit signal and name (it has no threads, memory or files left).</summary>
    public static unsafe TaskRecord ZombieTask(int pid, ProcStat stat)
    {
        var task = new TaskRecord
        {
            Pid = pid, Tgid = pid, Ppid = (int)stat.Field(4), Pgid = (int)stat.Field(5), Sid = (int)stat.Field(6),
            ExitSignal = (int)stat.Field(38), ThreadCount = 0, // a zombie has no fs information (umask) left
            StartTimeTicks = stat.UnsignedField(22),
        };
        byte[] comm = Encoding.UTF8.GetBytes(stat.Comm);
        for (int i = 0; i < Math.Min(comm.Length, 15); i++) task.Comm[i] = comm[i];
        return task;
    }

    /// <summary>A thread group leader's TASK, its three path strings, credentials and supplementary groups, in image order.</summary>
    public static void WriteLeader(ImageWriter writer, int pid, ProcStatus status, ProcStat stat, uint secureBits, int threadCount, int dumpable)
    {
        writer.Write(Task(pid, status, stat, threadCount, dumpable));
        writer.WriteString(Link(pid, "cwd"));
        writer.WriteString(Link(pid, "root"));
        writer.WriteString(Link(pid, "exe"));
        writer.Write(Credentials(status, secureBits, out uint[] groups));
        if (groups.Length > 0)
        {
            byte[] bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(groups.AsSpan()).ToArray();
            writer.Write(new GroupInfoRecord { GroupCount = groups.Length, ByteLength = (uint)bytes.Length }, bytes);
        }
    }

    private static string Link(int pid, string name) =>
        new FileInfo($"/proc/{pid}/{name}").LinkTarget ?? throw new IOException($"/proc/{pid}/{name} is not a link");
}
