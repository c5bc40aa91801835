using Ckpt.Engine.Linux;
using Ckpt.Image.Model;
using static Ckpt.Engine.Linux.ProcessCreationNative;

namespace Ckpt.Engine.Restore;

/// <summary>One restored thread: its image and the injector that runs system calls in it.</summary>
public sealed record RestoredThread(ThreadImage Image, SyscallInjector Syscalls)
{
    public int Tid => Image.Tid;
}

/// <summary>
/// linux-cr's ckpt_ctx on the restore side, for one process of the tree: its plan (the tree's plan
/// seen from this process), its threads with their injectors, and its scratch area. The tree's
/// context (<see cref="TreeRestoreContext"/>) holds every task made so far and the step being done.
/// </summary>
public sealed class RestoreContext(RestorePlan plan, TreeRestoreContext tree)
{
    private readonly List<RestoredThread> _threads = [];

    public RestorePlan Plan { get; } = plan;

    public TreeRestoreContext Tree { get; } = tree;

    /// <summary>The threads, the leader first (only the leader until the threads stage).</summary>
    public IReadOnlyList<RestoredThread> Threads => _threads;

    public SyscallInjector Leader => _threads[0].Syscalls;

    public ScratchArea Scratch { get; set; } = null!;

    /// <summary>The memfds and deleted files the memory stage made for mappings a descriptor shares (file objref -> parked descriptor).</summary>
    public IReadOnlyDictionary<int, long> MappedFiles { get; set; } = new Dictionary<int, long>();

    /// <summary>A task exists (created by an injected clone): kill it on failure.</summary>
    public void Created(Tracee tracee) => Tree.Created(tracee);

    public void AddThread(RestoredThread thread) => _threads.Add(thread);
}

/// <summary>
/// The whole restore: the processes in tree order (the root first, a parent before its children),
/// every task made so far (to kill them all on a failure), the file objects already placed in some
/// process (for the others that share them), and the step being done (named in a failure). Stages
/// run one after the other; a stage runs for every process (and a per-thread stage for every
/// thread) before the next starts, so all tasks pass each barrier together.
/// </summary>
public sealed class TreeRestoreContext(RestorePlan plan, Action<string>? phase)
{
    private readonly List<Tracee> _created = [];
    private readonly List<RestoreContext> _processes = [];

    public RestorePlan Plan { get; } = plan;

    public IReadOnlyList<RestoreContext> Processes => _processes;

    /// <summary>
    /// The signals every task the restore made ignores before its signals are restored (SigIgn), read from the
    /// root once (<see cref="LateStateStage"/>): each inherited them from the engine through its creator (SIG_IGN
    /// survives fork and execve, and no creator's actions change before its children exist), so /proc/PID/status
    /// need not be read for each.
    /// </summary>
    public ulong IgnoredSignalsOfNewTasks { get; set; }

    public Dictionary<int, RestoreContext> ByPid { get; } = [];

    /// <summary>File objref -> a process and descriptor that already hold it (see FilesRestore).</summary>
    public Dictionary<int, (int Pid, int Fd)> PlacedFiles { get; } = [];

    /// <summary>Established TCP connections of every process, in repair mode until the tree is ready.</summary>
    public Files.Sockets.TcpConnectionRestore TcpConnections { get; } = new();
    /// <summary>The pseudo-terminal pairs and controlling terminals, made during creation (Files/Terminals).</summary>
    public Files.Terminals.TerminalsRestore Terminals { get; } = new(plan);

    /// <summary>What was being done when a failure happened.</summary>
    public string Step { get; set; } = "create";

    public void Created(Tracee tracee) => _created.Add(tracee);

    /// <summary>A task the engine has already collected as tracer (a zombie handed to its parent): nothing left to kill or wait for.</summary>
    public void Reaped(int pid) => _created.RemoveAll(t => t.Pid == pid);

    /// <summary>
    /// A process whose leader stands at its exec stop (or was just forked): its context, with a scratch area mapped,
    /// or the one at <paramref name="sharedScratch"/> when it shares the address space of a process made before it
    /// (one area for both: the stages use it one process at a time).
    /// </summary>
    /// <param name="inherited">the copy of its creator's scratch area a forked process holds: used when no mapping of the image needs its place</param>
    public RestoreContext AddProcess(ProcessImage image, SyscallInjector leader, ScratchArea? inherited = null, ulong? sharedScratch = null)
    {
        var context = new RestoreContext(Plan.ForProcess(image), this);
        context.AddThread(new RestoredThread(image.Threads[0], leader));
        Step = $"process {image.Pid}: scratch area";
        var imageRanges = image.Memory.Vmas.Select(v => (v.Record.VmStart, v.Record.VmEnd));
        context.Scratch = sharedScratch is ulong address ? ScratchArea.Inherited(leader, address)
            : inherited is not null && !imageRanges.Any(r => inherited.Overlaps(r.VmStart, r.VmEnd)) ? inherited
            : ScratchArea.Map(leader, imageRanges);
        _processes.Add(context);
        ByPid[image.Pid] = context;
        return context;
    }

    public void Report(string name) => phase?.Invoke(name);

    /// <summary>
    /// The processes' stages touch nothing of one another's (no shared descriptor table, fs information
    /// or shared memory, no lazy page server): a stage marked concurrent may then work on several
    /// processes at once (<see cref="PtraceRelay"/>). Otherwise every stage goes one process after the other.
    /// </summary>
    public bool Independent { get; set; }

    /// <summary>
    /// Processes worked on at once by a concurrent stage: enough to keep both cores busy while most wait for their task
    /// (16 restored the 100-process tree 5-12% faster than 8 in interleaved runs, docs/benchmarks.md).
    /// </summary>
    private const int ConcurrentProcesses = 16;

    /// <summary>
    /// A step done once per process, in tree order; reported as a progress phase when <paramref name="reported"/>.
    /// <paramref name="concurrent"/>: the step of one process uses nothing of another's, so for an
    /// <see cref="Independent"/> tree several processes do it at once, each after its parent's when
    /// <paramref name="afterParent"/> (the memory a child copies from its parent). The stage still ends for
    /// every process before the next starts.
    /// </summary>
    public void Stage(string name, Action<RestoreContext> action, bool reported = false, bool concurrent = false, bool afterParent = false)
    {
        if (reported) phase?.Invoke(name);
        using var timing = StageProfile.Measure(name);
        if (concurrent && Independent && _processes.Count > 1)
        {
            RunConcurrently(name, action, afterParent);
            return;
        }
        foreach (RestoreContext process in _processes)
        {
            Step = StepOf(process, name);
            RunNamingItsStep(process, () => action(process));
        }
    }

    private string StepOf(RestoreContext process, string name) => _processes.Count == 1 ? name : $"process {process.Plan.Pid}: {name}";

    // A step that failed inside a stage doing several (StepFailedException) becomes the step named.
    private void RunNamingItsStep(RestoreContext process, Action action)
    {
        try { action(); }
        catch (StepFailedException e)
        {
            Step = e.Thread is { } tid ? $"thread {tid}: {e.Step}" : StepOf(process, e.Step);
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException!);
        }
    }

    /// <summary>A step done for every thread of every process, each leader first, before anything after it (several processes at once: see <see cref="Stage"/>).</summary>
    public void EachThread(string name, Action<RestoreContext, RestoredThread> action, bool reported = false, bool concurrent = false)
    {
        if (reported) phase?.Invoke(name);
        using var timing = StageProfile.Measure(name);
        if (concurrent && Independent && _processes.Count > 1)
        {
            RunConcurrently(name, process => { foreach (RestoredThread thread in process.Threads) action(process, thread); }, afterParent: false);
            return;
        }
        foreach (RestoreContext process in _processes)
        {
            foreach (RestoredThread thread in process.Threads)
            {
                Step = $"thread {thread.Tid}: {name}";
                RunNamingItsStep(process, () => action(process, thread));
            }
        }
    }

    private void RunConcurrently(string name, Action<RestoreContext> action, bool afterParent)
    {
        Step = name;
        var indexOf = new Dictionary<int, int>();
        for (int i = 0; i < _processes.Count; i++) indexOf[_processes[i].Plan.Pid] = i;
        // Tree order puts a parent first; a later "parent" (never, in a validated image) is not waited for.
        int Parent(int i) => afterParent && indexOf.TryGetValue(_processes[i].Plan.Task.Ppid, out int parent) && parent < i ? parent : -1;
        try
        {
            PtraceRelay.RunConcurrently(_processes, ConcurrentProcesses, action, Parent);
        }
        catch (ConcurrentItemException e)
        {
            Exception failure = e.InnerException!;
            if (failure is StepFailedException inStep) (name, failure) = (inStep.Step, inStep.InnerException!);
            Step = $"process {_processes[e.Index].Plan.Pid}: {name}";
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
    }

    /// <summary>
    /// SIGKILL to every task made; as their tracer we are told of each death, and collect them
    /// newest first (threads before their leader, children before their parent: the kernel reports
    /// a leader's exit only after its threads'). Their parents, dead too, leave them to init (or
    /// to us as subreaper).
    /// </summary>
    public void KillAll()
    {
        foreach (Tracee tracee in _created) kill(tracee.Pid, SIGKILL);
        foreach (Tracee tracee in Enumerable.Reverse(_created))
        {
            try { ProcessCreation.WaitForStop(tracee.Pid); }
            catch (SyscallException) { }
        }
    }
}
