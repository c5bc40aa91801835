using Ckpt.Image.Records;
using static Ckpt.Image.Model.ImageModelReader;

namespace Ckpt.Image.Model;

/// <summary>
/// fs information (cwd, root, umask) shared by several processes (clone with CLONE_FS): the same instance
/// for every sharer. <see cref="DefinedBy"/> is the process whose section has the FS record (the first
/// sharer in section order, which a restore creates first); Offset is that record's.
/// </summary>
public sealed record FsImage(FsRecord Record, int DefinedBy, string Cwd, string Root, long Offset)
{
    public int ObjRef => Record.ObjRef;
}

/// <summary>
/// The optional FS record (or OBJREF {Fs}) of a leader's section, right before TASK_OBJECTS: the first
/// sharer defines the object, every later one refers to it and must have the same cwd, root and umask
/// (the kernel holds one copy); once every process is read, each object must have two sharers at least.
/// </summary>
internal static class SharedFsReader
{
    public static FsImage? Read(ImageReader reader, TaskRecord task, string cwd, string root, ObjectTable objects)
    {
        reader.ThrowIfFailedCheckpoint();
        RecordType? next = reader.PeekType();
        if (next == RecordType.Fs)
        {
            var record = Next<FsRecord>(reader);
            long offset = reader.CurrentRecordOffset;
            if (record.Umask != task.Umask)
                throw Error(reader, RecordType.Fs, $"fs objref {record.ObjRef} has umask 0{Convert.ToString(record.Umask, 8)}, the TASK record of process {task.Pid} 0{Convert.ToString(task.Umask, 8)}");
            var fs = new FsImage(record, task.Pid, cwd, root, offset);
            objects.Define(reader, ObjectType.Fs, record.ObjRef, fs, offset, RecordType.Fs);
            return fs;
        }
        if (next != RecordType.Objref) return null;
        var reference = Next<ObjrefRecord>(reader);
        if (reference.ObjectType != ObjectType.Fs)
            throw Error(reader, RecordType.Objref, $"refers to {reference.ObjectType} {reference.ObjRef} in process {task.Pid}'s section before TASK_OBJECTS, where only an fs object (FS or OBJREF {{Fs}}) may be");
        if (!objects.TryGet(reference.ObjRef, out var known) || known.Value is not FsImage shared)
            throw Error(reader, RecordType.Objref, $"refers to fs objref {reference.ObjRef}, which no earlier FS record defines{(objects.TryGet(reference.ObjRef, out var other) ? $" (it is a {other.Type})" : "")}");
        if (shared.Cwd != cwd || shared.Root != root || shared.Record.Umask != task.Umask)
            throw Error(reader, RecordType.Objref, $"process {task.Pid} shares fs objref {shared.ObjRef} with process {shared.DefinedBy} but has cwd {cwd}, root {root}, umask 0{Convert.ToString(task.Umask, 8)} where that process has {shared.Cwd}, {shared.Root}, 0{Convert.ToString(shared.Record.Umask, 8)} (one fs_struct has one of each)");
        return shared;
    }

    /// <summary>An FS record says the fs information is shared: a second process must use it.</summary>
    public static void RequireSharers(IReadOnlyList<ProcessImage> processes)
    {
        foreach (var users in processes.Where(p => p.SharedFs is not null).GroupBy(p => p.SharedFs!))
        {
            if (users.Count() < 2)
                throw new ImageFormatException(RecordType.Fs, users.Key.Offset, $"fs objref {users.Key.ObjRef} is used by process {users.Key.DefinedBy} only: an FS record is for fs information two or more processes share");
        }
    }
}
