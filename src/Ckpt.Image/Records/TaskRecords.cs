namespace Ckpt.Image.Records;

/// <summary>The process tree: how many tasks follow (one, for now).</summary>
[ImageRecord(RecordType.Tree)]
public partial struct TreeRecord
{
    public int TaskCount;
    public int Reserved;
}

/// <summary>
/// One task. Followed by three StringRecords: cwd, root, exe path.
/// </summary>
[ImageRecord(RecordType.Task)]
public unsafe partial struct TaskRecord
{
    public int Pid;
    public int Tgid;
    public int Ppid;
    public int Pgid;
    public int Sid;
    public int ExitSignal;
    public uint Personality;
    public uint Umask;
    public int NoNewPrivileges;
    public int SeccompMode;              // 0: disabled (anything else is refused)
    public int ThreadCount;
    public int Reserved;
    public ulong StartTimeTicks;         // /proc/PID/stat field 22, for the record
    public fixed byte Comm[16];
}

/// <summary>Which shared objects the task uses (objrefs of earlier records).</summary>
[ImageRecord(RecordType.TaskObjects)]
public partial struct TaskObjectsRecord
{
    public int MmObjRef;
    public int FileTableObjRef;
    public int SignalHandlersObjRef;
    public int Reserved;
}

/// <summary>Real, effective, saved and fs ids and the capability sets of a task.</summary>
[ImageRecord(RecordType.Credentials)]
public partial struct CredentialsRecord
{
    public uint Uid, Euid, Suid, Fsuid;
    public uint Gid, Egid, Sgid, Fsgid;
    public ulong CapInheritable;
    public ulong CapPermitted;
    public ulong CapEffective;
    public ulong CapBounding;
    public ulong CapAmbient;
    public uint SecureBits;
    public int GroupCount;               // a GroupInfoRecord follows when > 0
}

/// <summary>Supplementary groups: GroupCount u32 gids as trailing bytes.</summary>
[ImageRecord(RecordType.GroupInfo)]
public partial struct GroupInfoRecord
{
    public int GroupCount;
    [TrailingBytes] public uint ByteLength;
}
