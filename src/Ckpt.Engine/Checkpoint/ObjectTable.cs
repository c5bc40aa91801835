using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Checkpoint;

/// <summary>
/// linux-cr's objhash on the checkpoint side: hands out objrefs (1, 2, 3 ...; 0 means none), one per
/// kernel object, and writes an object in full on its first use and as an OBJREF record on every
/// later one. Objects are identified by their type and an identity: for the process-wide objects
/// of a thread group (mm, descriptor table, handlers, signal state) the thread group's id, since
/// threads that do not share them are refused.
/// </summary>
public sealed class ObjectTable
{
    private int _last;
    private readonly Dictionary<(ObjectType Type, long Identity), int> _refs = [];
    private readonly HashSet<int> _written = [];

    /// <summary>The memfds and deleted files seen so far, shared by their descriptor and mappings (Memory.UnlinkedFileMappings).</summary>
    public Memory.UnlinkedFileMappings.Registry UnlinkedFiles { get; } = new();

    /// <summary>A fresh objref, for objects that are never looked up by identity (files found by kcmp, shared memory by inode).</summary>
    public int Next() => ++_last;

    /// <summary>The tree's shared anonymous memory objects, by shmem inode (their objrefs come from this table).</summary>
    public Memory.SharedMemoryObjects SharedMemory { get; } = new();

    /// <summary>The objref of an object, handed out on the first ask.</summary>
    public int RefOf(ObjectType type, long identity)
    {
        if (!_refs.TryGetValue((type, identity), out int objRef)) _refs[(type, identity)] = objRef = Next();
        return objRef;
    }

    /// <summary>One use of an object by a task: the object itself the first time, an OBJREF record after.</summary>
    public void WriteUse(ImageWriter writer, ObjectType type, int objRef, Action writeObject)
    {
        if (_written.Add(objRef)) writeObject();
        else writer.Write(new ObjrefRecord { ObjectType = type, ObjRef = objRef });
    }
}
