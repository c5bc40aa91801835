namespace Ckpt.Image.Records;

/// <summary>
/// The process tree: TaskCount TASK_IDS records follow (the task table, leaders before their
/// threads), then one section per task in the same order.
/// </summary>
[ImageRecord(RecordType.Tree)]
public partial struct TreeRecord
{
    public int TaskCount;                // every thread of every process
    public int ProcessCount;             // thread groups
}

/// <summary>
/// One entry of the task table: who the task is and where it sits in the tree, so a restore
/// can plan every task before reading any section. NamespacePids[0..NamespaceLevels) is the
/// task's pid in each pid namespace from the outermost one the checkpoint saw inwards.
/// </summary>
[ImageRecord(RecordType.TaskIds)]
public unsafe partial struct TaskIdsRecord
{
    public const int MaxNamespaceLevels = 4;

    public int Pid;                      // thread id (= Tgid for a thread group leader)
    public int Tgid;
    public int Ppid;
    public int Pgid;
    public int Sid;
    public int NamespaceLevels;          // 1: the pid namespace the checkpoint ran in
    public fixed int NamespacePids[4];
}

/// <summary>
/// Starts the section of one task. A thread group leader (Pid = Tgid) is followed by the
/// process-wide STRINGs cwd, root, exe path and its CREDENTIALS (shared by all its threads);
/// every task then has TASK_OBJECTS and the thread records.
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
    public int Dumpable;                 // prctl(PR_GET_DUMPABLE) + 1: 1 not dumpable, 2 dumpable, 3 root-only
                                         // (suid_dumpable 2); 0: not recorded (an image written before this field,
                                         // which was Reserved): the restore leaves what the exec made
    public ulong StartTimeTicks;         // /proc/PID/stat field 22, for the record
    public fixed byte Comm[16];
}

/// <summary>
/// Which shared objects the task uses. Each follows in this order, written in full on its
/// first use (MM, FILE_TABLE, SIGNAL_HANDLERS, SIGNAL with the objref given here) or as an
/// OBJREF record when an earlier task already wrote it.
/// </summary>
[ImageRecord(RecordType.TaskObjects)]
public partial struct TaskObjectsRecord
{
    public int MmObjRef;
    public int FileTableObjRef;
    public int SignalHandlersObjRef;
    public int SignalObjRef;
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

/// <summary>
/// The whole section of a zombie after its TASK record (ThreadCount 0): a process that has exited
/// and whose parent has not reaped it yet. It has no memory, files or threads; the restore creates
/// it as a child of its parent and lets it exit with this status, so the parent's wait reports it.
/// </summary>
[ImageRecord(RecordType.Zombie)]
public partial struct ZombieRecord
{
    public int Pid;
    public int ExitStatus;               // the wait status (/proc/PID/stat field 52): exit code << 8, or the
                                         // terminating signal (| 0x80 when it dumped core)
}

/// <summary>
/// A process that was stopped by job control (SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU; state T in /proc) at
/// checkpoint time. Optional: it ends the section of the process's leader (after its thread records), and
/// only a stopped process has one. The restore stops the process again with the same signal, so it stays
/// stopped until a SIGCONT, and its parent's wait(WUNTRACED) reports the stop if and only if it had not
/// collected it yet.
/// </summary>
[ImageRecord(RecordType.JobControlStop)]
public partial struct JobControlStopRecord
{
    public const int SIGSTOP = 19, SIGTSTP = 20, SIGTTIN = 21, SIGTTOU = 22;

    public int Pid;                      // the process (thread group leader) stopped
    public int StopSignal;               // SIGSTOP 19, SIGTSTP 20, SIGTTIN 21 or SIGTTOU 22
    public int ReportCollected;          // 1: its parent, a process of the tree, had already collected the stop with
                                         // wait(WUNTRACED) (a waitid WNOWAIT probe in the parent found no report);
                                         // 0: the report was still there for the parent, or the parent is outside the
                                         // tree (the root's: after the restore its parent is whoever restored it)
    public int Reserved;                 // 0
}

/// <summary>
/// A process that is a child subreaper (prctl PR_SET_CHILD_SUBREAPER): its orphaned descendants are
/// reparented to it rather than to init. Optional, after JOB_CONTROL_STOP (if any) at the end of the
/// section of the process's leader; only a subreaper has one. The restore sets the flag as soon as the
/// process exists, before any process of the tree can be orphaned.
/// </summary>
[ImageRecord(RecordType.ChildSubreaper)]
public partial struct ChildSubreaperRecord
{
    public int Pid;                      // the process (thread group leader)
    public int Reserved;                 // 0
}

/// <summary>
/// A task's parent-death signal (prctl PR_SET_PDEATHSIG; per thread): the signal it gets when the thread
/// that created it exits. Optional, last in the task's section; only a task with a signal set has one.
/// The restore sets it after the credentials (a change of credentials clears it) and once every process
/// is under its restored parent, so that nothing the restore does can fire it. After a restore the parent
/// thread is the parent process's leader (the restore forks every child from it), and the root's parent is
/// whoever restored it.
/// </summary>
[ImageRecord(RecordType.ParentDeathSignal)]
public partial struct ParentDeathSignalRecord
{
    public int Tid;                      // the task (thread)
    public int Signal;                   // 1..64
}

/// <summary>
/// fs information (the kernel's fs_struct: cwd, root and umask) that several processes of the tree share
/// (clone with CLONE_FS and not CLONE_THREAD; linux-cr's fs objref). Optional, in a thread group leader's
/// section right before TASK_OBJECTS (after CREDENTIALS and GROUPINFO), and only in the sections of
/// processes that share one: the first of them (in section order) writes this record, defining the objref;
/// every later one writes an OBJREF {Fs, objref} in its place. The values themselves stay where every
/// process has them (the STRINGs cwd and root, TASK.Umask): the sharers' must be equal, since the kernel
/// holds one copy. A restore creates the later sharers with CLONE_FS and sets cwd and umask once.
/// </summary>
[ImageRecord(RecordType.Fs)]
public partial struct FsRecord
{
    public int ObjRef;                   // the fs object (ObjectType.Fs), in the one objref namespace of the image
    public uint Umask;                   // the shared umask: equal to TASK.Umask of every sharer
}
