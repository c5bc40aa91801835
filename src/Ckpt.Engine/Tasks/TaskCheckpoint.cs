using System.Globalization;
using System.Text;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Tasks;

/// <summary>
/// The task's identity and credentials from /proc/PID/{stat,status,personality,cwd,root,exe},
/// and the refusals that depend on them (threads, children, seccomp).
/// </summary>
public static class TaskCheckpoint
{
    public static void Refuse(int pid, ProcStatus status)
    {
        long threads = status.Number("Threads");
        if (threads != 1)
            throw new CheckpointRefusedException($"process {pid} has {threads} threads: only single-threaded processes are checkpointed");
        string children = File.ReadAllText($"/proc/{pid}/task/{pid}/children").Trim();
        if (children.Length > 0)
            throw new CheckpointRefusedException($"process {pid} has child processes ({children}): process trees are not checkpointed");
        long seccomp = status.Number("Seccomp");
        if (seccomp != 0)
            throw new CheckpointRefusedException($"process {pid} runs under seccomp (mode {seccomp}{(seccomp == 2 ? ", filter" : "")}), which restore cannot rebuild");
    }

    public static unsafe TaskRecord Task(int pid, ProcStatus status, ProcStat stat)
    {
        var task = new TaskRecord
        {
            Pid = pid,
            Tgid = (int)status.Number("Tgid"),
            Ppid = (int)stat.Field(4),
            Pgid = (int)stat.Field(5),
            Sid = (int)stat.Field(6),
            ExitSignal = (int)stat.Field(38),
            Personality = uint.Parse(File.ReadAllText($"/proc/{pid}/personality").Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture),
            Umask = status.OctalNumber("Umask"),
            NoNewPrivileges = (int)status.Number("NoNewPrivs"),
            SeccompMode = (int)status.Number("Seccomp"),
            ThreadCount = (int)status.Number("Threads"),
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

    /// <summary>Task, its three path strings, credentials and supplementary groups, in image order.</summary>
    public static void Write(ImageWriter writer, int pid, ProcStatus status, ProcStat stat, uint secureBits)
    {
        writer.Write(Task(pid, status, stat));
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
