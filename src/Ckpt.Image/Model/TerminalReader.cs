using Ckpt.Image.Records;

namespace Ckpt.Image.Model;

/// <summary>A pseudo-terminal pair (TERMINAL), the same instance for its master and every slave end.</summary>
public sealed record TerminalImage(TerminalRecord Record, long Offset)
{
    public int ObjRef => Record.TerminalObjRef;

    /// <summary>The output the master had not read (TERMINAL_OUTPUT), empty when none.</summary>
    public byte[] UnreadOutput { get; init; } = [];
}

/// <summary>A process's controlling terminal (CONTROLLING_TERMINAL) and the name it had.</summary>
public sealed record ControllingTerminalImage(ControllingTerminalRecord Record, string Name, long Offset)
{
    /// <summary>A terminal outside the image: the user's terminal, restored only when asked for.</summary>
    public bool Outside => Record.TerminalObjRef == 0;
}

/// <summary>
/// The terminal records (docs/FORMAT.md, "Image order"): the TERMINAL record (or OBJREF to it)
/// after a PtyMaster or PtySlave FILE, the optional CONTROLLING_TERMINAL after a SIGNAL record's
/// timers, and the checks that span the tree: each pair has exactly one master file object, every
/// controlling terminal names a pair of the image (or none, outside), the processes of a session
/// agree on it, its leader is in the image, and its foreground group is a group of that session.
/// </summary>
public static class TerminalReader
{
    private const uint O_ACCMODE = 3, MaxBaud = 4_000_000 * 4;
    private const uint KnownFlags = (uint)(TerminalFlags.Locked | TerminalFlags.PacketMode);

    public static bool IsPairEnd(FileKind kind) => kind is FileKind.PtyMaster or FileKind.PtySlave;

    internal static TerminalImage? ReadOfEnd(ImageReader reader, FileRecord file, string path, Func<int, (ObjectType Type, object Value)?> known, Action<int, TerminalImage, long> define)
    {
        if (file.Kind == FileKind.OutsideTerminal)
        {
            if (path.Length == 0) throw Error(reader, RecordType.File, $"outside terminal file objref {file.ObjRef} has no name");
            return null;
        }
        if (!IsPairEnd(file.Kind)) return null;
        if ((file.OpenFlags & O_ACCMODE) > 2)
            throw Error(reader, RecordType.File, $"terminal file objref {file.ObjRef} has access mode {file.OpenFlags & O_ACCMODE}");
        if (file.Kind == FileKind.PtyMaster ? path is not ("/dev/ptmx" or "/dev/pts/ptmx") : !path.StartsWith("/dev/pts/", StringComparison.Ordinal))
            throw Error(reader, RecordType.File, $"{file.Kind} file objref {file.ObjRef} has path '{path}', which is not a {(file.Kind == FileKind.PtyMaster ? "/dev/ptmx" : "/dev/pts/N")} path");
        reader.ThrowIfFailedCheckpoint();
        if (reader.PeekType() == RecordType.Objref)
        {
            var reference = reader.Read<ObjrefRecord>();
            if (reference.ObjectType != ObjectType.Terminal || known(reference.ObjRef) is not { Type: ObjectType.Terminal } pair)
                throw Error(reader, RecordType.Objref, $"terminal end objref {file.ObjRef} refers to {reference.ObjectType} {reference.ObjRef}, which is no terminal pair defined earlier");
            return (TerminalImage)pair.Value;
        }
        if (reader.PeekType() is { } other && other != RecordType.Terminal)
            throw Error(reader, other, $"found where the TERMINAL record of {file.Kind} file objref {file.ObjRef} belongs");
        var terminal = reader.Read<TerminalRecord>();
        long offset = reader.CurrentRecordOffset;
        if (Problem(terminal) is { } problem)
            throw Error(reader, RecordType.Terminal, $"terminal objref {terminal.TerminalObjRef} (/dev/pts/{terminal.Index}): {problem}");
        var image = new TerminalImage(terminal, offset) { UnreadOutput = ReadOutput(reader, terminal) };
        define(terminal.TerminalObjRef, image, offset);
        return image;
    }

    // The optional TERMINAL_OUTPUT after a TERMINAL record.
    private static byte[] ReadOutput(ImageReader reader, in TerminalRecord pair)
    {
        reader.ThrowIfFailedCheckpoint();
        if (reader.PeekType() != RecordType.TerminalOutput) return [];
        var output = reader.Read<TerminalOutputRecord>();
        if (output.TerminalObjRef != pair.TerminalObjRef)
            throw Error(reader, RecordType.TerminalOutput, $"is for terminal objref {output.TerminalObjRef}, after the TERMINAL record of {pair.TerminalObjRef}");
        if (output.DataLength == 0 || output.DataLength > TerminalOutputRecord.MaximumLength)
            throw Error(reader, RecordType.TerminalOutput, $"terminal objref {pair.TerminalObjRef} (/dev/pts/{pair.Index}) has {output.DataLength} bytes of unread output: from 1 to {TerminalOutputRecord.MaximumLength}");
        return reader.ReadTrailingBytes();
    }

    private static string? Problem(in TerminalRecord t)
    {
        if (t.TerminalObjRef <= 0) return "the objref is not positive";
        if (t.Index < 0) return $"index {t.Index} is negative";
        if (((uint)t.Flags & ~KnownFlags) != 0) return $"flags 0x{(uint)t.Flags:x} hold unknown bits";
        if (t.LineDiscipline != 0) return $"line discipline {t.LineDiscipline} is not N_TTY (0), the only one restored";
        if (t.InputSpeed > MaxBaud || t.OutputSpeed > MaxBaud) return $"speeds {t.InputSpeed}/{t.OutputSpeed} are beyond any terminal's";
        if ((t.SlaveMode & ~0x1ffu) != 0) return $"slave mode 0{Convert.ToString(t.SlaveMode, 8)} is more than permission bits";
        return null;
    }

    /// <summary>The optional CONTROLLING_TERMINAL after the timers of a SIGNAL record.</summary>
    internal static ControllingTerminalImage? ReadControlling(ImageReader reader, int signalObjRef)
    {
        reader.ThrowIfFailedCheckpoint();
        if (reader.PeekType() != RecordType.ControllingTerminal) return null;
        var record = reader.Read<ControllingTerminalRecord>();
        long offset = reader.CurrentRecordOffset;
        string name = reader.ReadTrailingString();
        if (record.TerminalObjRef < 0 || record.Session <= 0 || record.ForegroundGroup < 0 || record.Device == 0 || name.Length == 0)
            throw Error(reader, RecordType.ControllingTerminal, $"signal objref {signalObjRef}: terminal objref {record.TerminalObjRef}, session {record.Session}, foreground group {record.ForegroundGroup}, device 0x{record.Device:x}, name '{name}' is not a controlling terminal");
        return new ControllingTerminalImage(record, name, offset);
    }

    /// <summary>Once every process is read: pairs, their masters, and each session's controlling terminal.</summary>
    internal static void CheckTree(IReadOnlyList<ProcessImage> processes)
    {
        var masters = new Dictionary<int, FileImage>();
        var pairs = new Dictionary<int, TerminalImage>();
        foreach (FileImage file in processes.SelectMany(p => p.FileTable.Files.Values).Distinct())
        {
            if (file.Terminal is not { } pair) continue;
            pairs[pair.ObjRef] = pair;
            if (file.Record.Kind == FileKind.PtyMaster && !masters.TryAdd(pair.ObjRef, file) && !ReferenceEquals(masters[pair.ObjRef], file))
                throw new ImageFormatException(RecordType.Terminal, pair.Offset, $"terminal objref {pair.ObjRef} has two master file objects ({masters[pair.ObjRef].Record.ObjRef} and {file.Record.ObjRef}): a pair has one");
        }
        foreach (TerminalImage pair in pairs.Values.Where(p => !masters.ContainsKey(p.ObjRef)))
            throw new ImageFormatException(RecordType.Terminal, pair.Offset, $"terminal objref {pair.ObjRef} (/dev/pts/{pair.Record.Index}) has slave ends but no master in any descriptor table");

        var byPid = processes.ToDictionary(p => p.Pid);
        foreach (ProcessImage process in processes)
        {
            ControllingTerminalImage? mine = process.Signal.ControllingTerminal;
            if (mine is null) continue;
            ControllingTerminalRecord record = mine.Record;
            string what = $"process {process.Pid}'s controlling terminal {mine.Name}";
            if (record.Session != process.Task.Sid)
                throw new ImageFormatException(RecordType.ControllingTerminal, mine.Offset, $"{what} is recorded for session {record.Session}, the process is in session {process.Task.Sid}");
            if (!mine.Outside && !pairs.ContainsKey(record.TerminalObjRef))
                throw new ImageFormatException(RecordType.ControllingTerminal, mine.Offset, $"{what} names terminal objref {record.TerminalObjRef}, which is no terminal pair of the image");
            if (!mine.Outside && !(byPid.TryGetValue(record.Session, out ProcessImage? leader) && leader.Signal.ControllingTerminal?.Record.TerminalObjRef == record.TerminalObjRef))
                throw new ImageFormatException(RecordType.ControllingTerminal, mine.Offset, $"{what} is a terminal of the image, but the leader of session {record.Session} is not in the image with the same controlling terminal");
            if (record.ForegroundGroup != 0 && !mine.Outside && !processes.Any(p => p.Task.Pgid == record.ForegroundGroup && p.Task.Sid == record.Session))
                throw new ImageFormatException(RecordType.ControllingTerminal, mine.Offset, $"{what} has foreground group {record.ForegroundGroup}, which is no process group of session {record.Session} in the image");
        }
        foreach (ProcessImage process in processes)
        {
            // Every process of a session whose leader has a terminal of the image inherited it.
            if (!byPid.TryGetValue(process.Task.Sid, out ProcessImage? leader) || leader.Signal.ControllingTerminal is not { Outside: false } leaders) continue;
            if (process.Signal.ControllingTerminal?.Record.TerminalObjRef != leaders.Record.TerminalObjRef)
                throw new ImageFormatException(RecordType.ControllingTerminal, leaders.Offset, $"process {process.Pid} is in session {process.Task.Sid}, whose controlling terminal is {leaders.Name}, but does not record it");
        }
    }

    private static ImageFormatException Error(ImageReader reader, RecordType type, string message) =>
        new(type, reader.CurrentRecordOffset, message);
}
