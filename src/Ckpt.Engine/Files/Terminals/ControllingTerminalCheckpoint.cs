using System.Text;
using Ckpt.Engine.Checkpoint;
using Ckpt.Engine.Linux;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Files.Terminals;

/// <summary>
/// A process's controlling terminal (/proc/PID/stat tty_nr) and that terminal's foreground process
/// group (tpgid), written as CONTROLLING_TERMINAL after the process's SIGNAL record. A terminal of
/// the tree (a pair whose master a process of the tree holds) needs its session's leader in the tree
/// (it acquires the terminal at restore, and the session's other processes inherit it) and a
/// foreground group of the tree; every process of such a session must have that terminal (one that
/// gave it up with TIOCNOTTY, or was made before its leader took the terminal, cannot be recreated).
/// Any other terminal is outside (the user's): recorded by name, and restored only when asked for.
/// </summary>
public sealed class ControllingTerminalCheckpoint
{
    private readonly ControllingTerminalRecord _record;
    private readonly string _name;

    private ControllingTerminalCheckpoint(ControllingTerminalRecord record, string name) => (_record, _name) = (record, name);

    public static ControllingTerminalCheckpoint? Inspect(int pid, ObjectTable objects, IReadOnlyCollection<int>? treePids)
    {
        ProcStat stat = ProcStat.Read(pid);
        ulong device = (ulong)stat.Field(7);
        if (device == 0) return null;
        int session = (int)stat.Field(6), foreground = (int)Math.Max(0, stat.Field(8));
        IReadOnlyCollection<int> tree = treePids ?? [pid];
        int? index = PseudoTerminals.SlaveIndex(device);
        var (major, minor) = PseudoTerminals.DeviceNumbers(device);
        string name = index is { } n ? $"/dev/pts/{n}" : $"the terminal device {major}:{minor}";
        var record = new ControllingTerminalRecord { Session = session, ForegroundGroup = foreground, Device = device };
        if (index is { } pair && PseudoTerminals.FindMaster(tree, pair) is not null)
        {
            string what = $"process {pid}'s controlling terminal {name} (a pseudo-terminal whose master is being checkpointed)";
            if (!tree.Contains(session))
                throw new CheckpointRefusedException($"{what} belongs to session {session}, whose leader is not being checkpointed: checkpoint the session's leader with it");
            if (foreground != 0 && !tree.Any(p => ProcStat.Read(p).Field(5) == foreground))
                throw new CheckpointRefusedException($"{what} has foreground process group {foreground}, in which no process is being checkpointed");
            record.TerminalObjRef = objects.RefOf(ObjectType.Terminal, pair);
        }
        if (session != pid && tree.Contains(session) && (ulong)ProcStat.Read(session).Field(7) != device)
            throw new CheckpointRefusedException($"process {pid}'s controlling terminal {name} is not the one of its session's leader {session}: a session's processes are restored with their leader's terminal");
        return new ControllingTerminalCheckpoint(record, name);
    }

    /// <summary>A process with no controlling terminal in a session whose leader has one of the tree (TIOCNOTTY): refused.</summary>
    public static void RefuseDetached(int pid, IReadOnlyCollection<int>? treePids)
    {
        ProcStat stat = ProcStat.Read(pid);
        int session = (int)stat.Field(6);
        if (stat.Field(7) != 0 || session == pid || treePids?.Contains(session) != true) return;
        long leaders = ProcStat.Read(session).Field(7);
        if (leaders != 0)
            throw new CheckpointRefusedException($"process {pid} has no controlling terminal, but its session's leader {session} has one: a session's processes are restored with their leader's terminal");
    }

    public void Write(ImageWriter writer)
    {
        byte[] name = Encoding.UTF8.GetBytes(_name);
        writer.Write(_record with { NameLength = (uint)name.Length }, name);
    }
}
