using System.Collections.Concurrent;
using Ckpt.Engine.Files;
using Ckpt.Engine.Memory;
using Ckpt.Engine.Tasks;

namespace Ckpt.Engine.Restore;

/// <summary>
/// The first step of every process (the "special mappings" stage), one batch (one ptrace stop): close the
/// descriptors it inherited, open the image in it, unmap the neutral program it was made as, and move the
/// vdso and vvar to their recorded places (<see cref="SpecialMappingsRestore"/>).
/// In a tree whose processes share nothing (<see cref="Enabled"/>), a process does it before it forks its
/// first child (<see cref="Forking"/>): the child then inherits the emptied address space, the moved vdso and
/// the image's descriptor, and its own step finds nothing left to do (no batch, no stop) unless its recorded
/// vdso lies elsewhere. In the 100-process benchmark tree that is 99 batches of unmaps and moves saved.
/// </summary>
public sealed class StubTeardown
{
    private readonly TreeRestoreContext _tree;
    private readonly ConcurrentDictionary<int, long> _imageFds = new(); // pid -> the image's descriptor in it
    private readonly HashSet<int> _doneBeforeForking = [];
    private readonly Dictionary<int, int> _inheritedFrom = []; // child -> creator done before forking it

    /// <param name="enabled">every process owns its memory and descriptor table (no CLONE_VM or CLONE_FILES sharer), no
    /// controlling terminal (a descendant's TIOCSCTTY uses descriptors its ancestors keep until then), a root engine (an
    /// unprivileged one executes each process's own program after the fork), no lazy page server</param>
    public StubTeardown(TreeRestoreContext tree, bool enabled)
    {
        _tree = tree;
        Enabled = enabled;
    }

    public bool Enabled { get; }

    /// <summary>The image's descriptor in the process (-1: the task could not open it, its pages go through /proc/PID/mem).</summary>
    public long ImageFd(int pid) => _imageFds[pid];

    /// <summary>Called by <see cref="TreeCreation"/> right before <paramref name="creator"/> forks <paramref name="child"/>.</summary>
    public void Forking(RestoreContext creator, int child)
    {
        if (!Enabled) return;
        int pid = creator.Plan.Pid;
        if (_doneBeforeForking.Add(pid))
        {
            _tree.Step = $"process {pid}: special mappings (before it forks its children)";
            Run(creator);
        }
        _inheritedFrom[child] = pid;
    }

    /// <summary>The stage: for every process not done before it forked (several at once: it touches only its own process).</summary>
    public void Stage(RestoreContext process)
    {
        if (!_doneBeforeForking.Contains(process.Plan.Pid)) Run(process);
    }

    private void Run(RestoreContext p)
    {
        int pid = p.Plan.Pid;
        p.Scratch.Reset();
        var batch = new SyscallBatch(p.Leader, p.Scratch);
        long? inheritedImage = _inheritedFrom.TryGetValue(pid, out int creator) ? _imageFds[creator] : null;
        IReadOnlyCollection<long> kept = _tree.Terminals.KeptIn(pid);
        if (inheritedImage is long fd && fd >= 0) kept = [.. kept, fd];
        // A descriptor table or fs information shared by processes (CLONE_FILES, CLONE_FS) is restored once,
        // by its first sharer in tree order; the others were forked sharing it (TreeCreation, Tasks/SharedTables).
        if (SharedTables.RestoresFileTable(p.Plan.Image, p.Plan.Process)) FilesRestore.AddClosesOfInherited(batch, pid, kept);
        // An address space shared by processes (CLONE_VM) is restored once, by its first sharer in tree order: the
        // memory stages skip the others, which were forked sharing it (TreeCreation, Tasks/SharedTables).
        if (!SharedTables.RestoresMemory(p.Plan.Image, p.Plan.Process))
        {
            // Its first sharer's stage, before this one, moved the vdso where the injected syscall instruction is.
            RestoreContext owner = _tree.Processes.First(q => ReferenceEquals(q.Plan.Process.Memory, p.Plan.Process.Memory));
            p.Leader.RelocateSyscall((long)(owner.Leader.SyscallAddress - p.Leader.SyscallAddress));
            batch.Run();
            return;
        }
        // The descriptor is the lowest free one after the closes; the special mappings' calls come after
        // (Run adds them and runs the batch).
        int imageOpen = inheritedImage is null ? PageWriter.AddImageOpen(batch, p.Plan, p.Scratch) : -1;
        long[] results = SpecialMappingsRestore.Run(p.Leader, p.Plan, p.Scratch, batch);
        _imageFds[pid] = inheritedImage ?? PageWriter.ImageFdFrom(results[imageOpen], pid, p.Plan);
    }
}
