using Ckpt.Engine.Checkpoint.Audit;
using Ckpt.Engine.Files;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Memory;
using Ckpt.Engine.Signals;
using Ckpt.Engine.Tasks;
using Ckpt.Image;
using Ckpt.Image.Records;

namespace Ckpt.Engine.Checkpoint;

/// <summary>One process of the tree as the image holds it: its task table entries and its sections.</summary>
public interface ICheckpointedProcess
{
    int Pid { get; }

    /// <summary>Its entries of the task table: the leader, then its threads.</summary>
    IReadOnlyList<TaskIdsRecord> Ids { get; }

    /// <summary>Its sections, one per task, in the order of <see cref="Ids"/>.</summary>
    void Write(ImageWriter writer, ObjectTable objects, Action<string, long, long> progress);
}

/// <summary>
/// A live process of the tree: everything it needs is inspected (and refused) in <see cref="Inspect"/>,
/// before anything is written, then its sections are written: per thread a TASK, the process-wide
/// objects on first use (by the leader) or as OBJREFs, and the thread's own records.
/// </summary>
public sealed class ProcessCheckpoint : ICheckpointedProcess
{
    private readonly ThreadGroupFreeze _freeze;
    private readonly Dictionary<int, ProcStatus> _statuses;
    private readonly List<int> _tids;
    private readonly FilesCheckpoint? _files; // null: a later sharer of a table an earlier process writes
    private int _fsObjRef; // non-zero: fs information shared with other processes of the tree (an FS record or OBJREF)
    private readonly InjectedTaskState _injected;
    private readonly List<ThreadCheckpoint> _threads;
    private readonly MemoryCheckpoint? _memory; // null: a later sharer of an address space an earlier process writes
    private readonly ProcStat _stat;
    private readonly TaskObjectsRecord _uses;
    private readonly List<PosixTimerRecord> _timers;
    private Files.Terminals.ControllingTerminalCheckpoint? _terminal;

    private ProcessCheckpoint(ThreadGroupFreeze freeze, Dictionary<int, ProcStatus> statuses, List<int> tids, FilesCheckpoint? files,
        InjectedTaskState injected, List<ThreadCheckpoint> threads, MemoryCheckpoint? memory, ProcStat stat, TaskObjectsRecord uses,
        List<PosixTimerRecord> timers, int stopSignal, Dictionary<int, bool> childStopsCollected)
    {
        (_freeze, _statuses, _tids, _files, _injected, _threads, _memory, _stat, _uses, _timers) = (freeze, statuses, tids, files, injected, threads, memory, stat, uses, timers);
        (StopSignal, ChildStopsCollected) = (stopSignal, childStopsCollected);
        Ids = tids.Select(tid => TaskCheckpoint.Ids(tid, freeze.Pid, stat)).ToList();
    }

    public int Pid => _freeze.Pid;

    public IReadOnlyList<TaskIdsRecord> Ids { get; }

    public long TotalPages => _memory?.TotalPages ?? 0;

    /// <summary>The job-control stop signal the process is in (0: it runs); see <see cref="JobControl"/>.</summary>
    public int StopSignal { get; }

    /// <summary>Its stopped children (pid -> whether it had collected the stop report with wait(WUNTRACED)).</summary>
    public IReadOnlyDictionary<int, bool> ChildStopsCollected { get; }

    /// <summary>Set once every process is inspected: its parent (in the tree) had collected its stop report.</summary>
    public bool StopReportCollected { get; set; }

    /// <param name="stoppedChildren">its children (in the tree) stopped by job control, whose stop reports it is probed for</param>
    /// <param name="parentInTree">its parent, when that is a live process of the tree written before it (pages still shared are stored once)</param>
    /// <param name="sharing">the descriptor tables and fs information processes of the tree share (<see cref="TreeSharing"/>)</param>
    /// <summary>
    /// Everything of the process but what is read by injection (<see cref="InjectedReads"/>), which the tree's
    /// processes make together (<see cref="Inspection.Reading"/>); <see cref="Inspection.Complete"/> then captures
    /// the threads. Object references are taken here, in tree order, as the image numbers them.
    /// </summary>
    /// <param name="memoryPrefetch">where the process's memory was read ahead, on another thread (null: read here)</param>
    public static Inspection Inspect(ThreadGroupFreeze freeze, ObjectTable objects, FileDescriptions descriptions, IReadOnlyList<int> stoppedChildren, int? parentInTree = null,
        TreeObjectsSharing? sharing = null, Memory.MemoryPrefetch? memoryPrefetch = null)
    {
        sharing ??= TreeObjectsSharing.None;
        int pid = freeze.Pid;
        if (ProcStat.IsZombie(pid) == true)
            throw new CheckpointRefusedException($"the main thread of process {pid} has exited while other threads run on: not supported");
        List<int> tids = freeze.Tracees.Select(t => t.Pid).ToList();
        // Read once per thread while frozen: for the refusals now and the TASK records later.
        Dictionary<int, ProcStatus> statuses;
        int stopSignal;
        using (CheckpointProfile.Measure("inspect/status and audit while frozen"))
        {
            statuses = tids.ToDictionary(tid => tid, ProcStatus.Read);
            TaskCheckpoint.Refuse(pid, statuses);
            KernelStateAudit.WhileFrozen(pid, statuses);
            stopSignal = JobControl.StopSignalOf(freeze);
        }
        var uses = new TaskObjectsRecord
        {
            MmObjRef = objects.RefOf(ObjectType.Mm, sharing.VmOwner(pid)), FileTableObjRef = objects.RefOf(ObjectType.FileTable, sharing.FileTableOwner(pid)),
            SignalHandlersObjRef = objects.RefOf(ObjectType.SignalHandlers, sharing.SighandOwner(pid)), SignalObjRef = objects.RefOf(ObjectType.Signal, pid),
        };
        FilesCheckpoint? files;
        Files.Terminals.ControllingTerminalCheckpoint? terminal;
        List<PosixTimerRecord> timers;
        using (CheckpointProfile.Measure("inspect/descriptors, terminal, timers"))
        {
            // A table shared with an earlier process of the tree (CLONE_FILES) was inspected, and is written, with it.
            files = sharing.FileTableOwner(pid) == pid ? FilesCheckpoint.Inspect(pid, objects, descriptions) : null;
            terminal = Files.Terminals.ControllingTerminalCheckpoint.Inspect(pid, objects, descriptions.TreePids);
            if (terminal is null) Files.Terminals.ControllingTerminalCheckpoint.RefuseDetached(pid, descriptions.TreePids);
            timers = PosixTimers.Inspect(pid, tids.Count);
        }
        // Mappings are audited here too: before anything is injected. An address space shared with an
        // earlier process of the tree (CLONE_VM) was inspected, and is written, with it.
        MemoryCheckpoint? memory = null;
        MemoryReading? memoryRead = null;
        using (CheckpointProfile.Measure("inspect/memory"))
        {
            if (sharing.VmOwner(pid) == pid)
            {
                memoryRead = memoryPrefetch?.Take(pid) ?? MemoryCheckpoint.Read(pid, parentInTree);
                memory = MemoryCheckpoint.Inspect(memoryRead, objects);
            }
        }
        ulong syscallAddress;
        List<MapsEntry> maps;
        using (CheckpointProfile.Measure("inspect/rseq and syscall instruction"))
        {
            // Before anything is injected into any thread (see RseqCriticalSection).
            foreach (Tracee tracee in freeze.Tracees) RseqCriticalSection.MoveToAbort(tracee);
            // The mappings the memory's smaps listed, frozen since (a process sharing another's address space reads them).
            maps = memoryRead?.Vmas.Select(v => v.Map).ToList() ?? ProcMaps.Read(pid);
            syscallAddress = RemoteSyscall.FindSyscallInstruction(pid, maps);
        }
        int fsObjRef = sharing.SharesFs(pid) ? objects.RefOf(ObjectType.Fs, sharing.FsOwner(pid)) : 0;
        // A process sharing the address space of an earlier one of the tree reads without a routine of its own.
        var reading = new InjectedReads.Reading(freeze, syscallAddress, maps, statuses, timers, stoppedChildren, mayMapRoutine: sharing.VmOwner(pid) == pid);
        return new Inspection(reading, reads =>
        {
            List<ThreadCheckpoint> threads;
            using (CheckpointProfile.Measure("inspect/threads"))
                threads = freeze.Tracees.Select(t => ThreadCheckpoint.Capture(t, pid, reads.Threads[t.Pid])).ToList();
            return new ProcessCheckpoint(freeze, statuses, tids, files, reads.Process, threads, memory, ProcStat.Read(pid), uses, reads.Timers, stopSignal, reads.ChildStops)
            {
                _terminal = terminal, _fsObjRef = fsObjRef,
            };
        });
    }

    /// <summary>A process inspected up to its injected reads: <see cref="Complete"/> once <see cref="InjectedReads.ReadAll"/> made them.</summary>
    public sealed class Inspection(InjectedReads.Reading reading, Func<InjectedReads, ProcessCheckpoint> complete)
    {
        public InjectedReads.Reading Reading => reading;

        public ProcessCheckpoint Complete() => complete(reading.Result ?? throw new InvalidOperationException($"process {reading.Pid}: its injected reads were not made"));
    }

    /// <summary>The xsave layout of the first thread, for the image header.</summary>
    public ThreadCheckpoint FirstThread => _threads[0];

    public void Write(ImageWriter writer, ObjectTable objects, Action<string, long, long> progress)
    {
        int pid = Pid;
        for (int i = 0; i < _threads.Count; i++)
        {
            int tid = _tids[i];
            if (tid == pid)
            {
                TaskCheckpoint.WriteLeader(writer, pid, _statuses[pid], _stat, _injected.SecureBits, _tids.Count, _injected.Dumpable);
                if (_fsObjRef != 0)
                    objects.WriteUse(writer, ObjectType.Fs, _fsObjRef, () => writer.Write(new FsRecord { ObjRef = _fsObjRef, Umask = _statuses[pid].OctalNumber("Umask") }));
            }
            else writer.Write(TaskCheckpoint.Task(tid, _statuses[tid], ProcStat.Read(tid), _tids.Count, _injected.Dumpable));
            writer.Write(_uses);
            objects.WriteUse(writer, ObjectType.Mm, _uses.MmObjRef, () =>
            {
                using var step = CheckpointProfile.Measure("write/memory");
                long total = _memory!.TotalPages;
                progress("pages", 0, total);
                _memory.Write(writer, _uses.MmObjRef, _stat, _injected.Brk, objects.SharedMemory, done => progress("pages", done, total));
                Membarrier.Write(writer, _uses.MmObjRef, _injected.Membarrier);
            });
            objects.WriteUse(writer, ObjectType.FileTable, _uses.FileTableObjRef, () =>
            {
                progress("files", 0, 0);
                _files!.Write(writer, _uses.FileTableObjRef);
            });
            objects.WriteUse(writer, ObjectType.SignalHandlers, _uses.SignalHandlersObjRef, () =>
            {
                progress("signals", 0, 0);
                SignalsCheckpoint.WriteHandlers(writer, _injected, _uses.SignalHandlersObjRef);
            });
            objects.WriteUse(writer, ObjectType.Signal, _uses.SignalObjRef, () =>
            {
                SignalsCheckpoint.WriteSignal(writer, _freeze.Leader, _injected, _uses.SignalObjRef, _timers);
                _terminal?.Write(writer); // signal_struct's tty
            });
            using (CheckpointProfile.Measure("write/threads")) _threads[i].Write(writer);
            if (tid == pid && StopSignal != 0) writer.Write(JobControl.Record(pid, StopSignal, StopReportCollected));
            if (tid == pid && _injected.ChildSubreaper) writer.Write(new ChildSubreaperRecord { Pid = pid });
            if (_threads[i].ParentDeathSignal != 0) writer.Write(new ParentDeathSignalRecord { Tid = tid, Signal = _threads[i].ParentDeathSignal });
        }
    }
}

/// <summary>
/// A zombie of the tree: its ids from /proc/PID/stat (which a zombie still has), a TASK record with no
/// threads, and its exit status (ZOMBIE).
/// </summary>
public sealed class ZombieCheckpoint : ICheckpointedProcess
{
    private readonly ProcStat _stat;

    private ZombieCheckpoint(int pid, ProcStat stat)
    {
        (Pid, _stat) = (pid, stat);
        Ids = [TaskCheckpoint.Ids(pid, pid, stat)];
    }

    public int Pid { get; }

    public IReadOnlyList<TaskIdsRecord> Ids { get; }

    public int ExitStatus => (int)_stat.Field(52);

    public static ZombieCheckpoint Inspect(int pid) => new(pid, ProcStat.Read(pid));

    public void Write(ImageWriter writer, ObjectTable objects, Action<string, long, long> progress)
    {
        writer.Write(TaskCheckpoint.ZombieTask(Pid, _stat));
        writer.Write(new ZombieRecord { Pid = Pid, ExitStatus = ExitStatus });
    }
}
