using System.Runtime.InteropServices;
using Ckpt.Engine.Linux;
using Ckpt.Engine.Tasks;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Restore;

/// <summary>
/// Creates every process of the tree with its pid, its parent, its session and its process group,
/// before any of them gets its memory (docs/RESTORE.md, "Restore of a tree"):
/// 1. the root, by the engine (<see cref="ProcessCreation.CreateStoppedAtExec"/>), and setsid() in it
///    when it led its session;
/// 2. every other process in tree order (a parent before its children), by an injected clone3
///    (set_tid, exit signal SIGCHLD) in its restored parent, so the kernel makes it that parent's
///    child in the parent's session; setsid() in it when it led a session, before it forks its own
///    children (they inherit the session). For a root engine that is all: the child is a copy of its
///    creator, a fresh neutral program that has run nothing, which is where the root is after step 1
///    (an execve of the neutral program in each would give the same at the cost of a new address space);
///    no process ever executes the image's executable (<see cref="NeutralExecutable"/>: a setuid or
///    file-capability program would change its credentials). An unprivileged engine then injects an
///    execve of the image's program (the exe link cannot be set otherwise); a process that shares a descriptor table or
///    fs information with an earlier one is forked sharing it (CLONE_FILES, CLONE_FS; by a sibling with
///    CLONE_PARENT when its parent does not share it) and, sharing a table, not exec'ed (execve would
///    unshare it; <see cref="SharedTables"/>);
/// 3. process groups: every group leader calls setpgid(0, 0), then every member setpgid(0, leader)
///    (a group must exist, in the member's session, before anyone joins it);
/// 4. zombies: each (made in step 2 like the others, but never exec'ed) exits with its recorded
///    status; the engine collects the exit as tracer, which hands the zombie to its parent, and
///    the SIGCHLD this queued for the parent is discarded (the image has the parent's real queue).
/// The root's own session and group, when their leaders are gone and their pids are free, are made by
/// helper processes with those pids that fork the root and then exit (<see cref="LeaderHelpers"/>); when
/// a leader's pid is in use the root joins the session and group the restore runs in. A gone session of
/// processes below the root whose parent is a child subreaper is made by a helper that parent forks
/// (<see cref="SessionHelpers"/>); any other gone group's leader by a helper that the parent of its first
/// member forks before step 3 and that exits after it (<see cref="GroupHelpers"/>). What these cannot make
/// is refused before anything is created (<see cref="Validate"/>).
/// </summary>
public static unsafe class TreeCreation
{
    private const int PTRACE_EVENT_STOP = 128, PTRACE_EVENT_EXEC = 4;
    private const ulong SIGCHLD = 17, SIG_IGN = 1, SIG_DFL = 0;

    /// <summary>Refuses, before anything exists, a tree whose sessions or groups these steps cannot make.</summary>
    public static void Validate(RestorePlan plan)
    {
        var tasks = plan.Image.TaskTable.Where(t => t.Pid == t.Tgid).ToDictionary(t => t.Pid);
        TaskIdsRecord root = plan.Image.TaskTable[0];
        var zombies = plan.Zombies.Select(z => z.Pid).ToHashSet();
        foreach (TaskIdsRecord task in tasks.Values)
        {
            if (task.Pid == root.Pid) continue;
            TaskIdsRecord parent = tasks[task.Ppid]; // the image model checked it is an earlier process
            if (zombies.Contains(parent.Pid))
                throw new RestoreRefusedException($"process {task.Pid}'s parent {parent.Pid} is a zombie, which has no children");
        }
        IReadOnlyDictionary<int, CreationStep> steps = CreationSteps(plan);
        ValidateExitSignals(plan, steps);
        SessionHelpers.Validate(plan, steps);
        // Every other group whose leader is gone is made by a helper (GroupHelpers), or refused there.
        GroupHelpers.Validate(plan);
        // A process made with CLONE_FILES or CLONE_VM is not exec'ed: it keeps its creator's program, which for an
        // unprivileged engine (it execs the image's executables, whose exe link it cannot change) must be its own.
        foreach (ProcessImage process in plan.Processes.Where(p => !steps[p.Pid].Execs))
        {
            ProcessImage creator = plan.Processes.First(p => p.Pid == steps[process.Pid].Creator);
            if (!Caller.Current.IsRoot && creator.ExePath != process.ExePath)
                throw new RestoreRefusedException($"process {process.Pid} shares its descriptor table or memory with process {creator.Pid}, which runs {creator.ExePath}, not {process.ExePath}: an unprivileged restore cannot set the executable of a process it does not exec");
        }
    }

    // The signal a process sends its parent when it exits (SIGCHLD after fork; any, or none, after clone: a
    // clone(CLONE_VM) child often has 0) is the clone3 exit_signal it is made with. With CLONE_PARENT the kernel
    // gives the new process its creator's instead, which must then be the recorded one.
    private static void ValidateExitSignals(RestorePlan plan, IReadOnlyDictionary<int, CreationStep> steps)
    {
        const int SIGRTMAX = 64;
        foreach (TaskIdsRecord task in plan.Image.TaskTable.Skip(1).Where(t => t.Pid == t.Tgid))
        {
            int signal = ExitSignalOf(plan, task.Pid);
            if (signal is < 0 or > SIGRTMAX)
                throw new RestoreRefusedException($"process {task.Pid} has exit signal {signal}, which is no signal (0 .. {SIGRTMAX})");
            // A zombie's exit at restore sends its parent that signal, and only SIGCHLD is discarded from its queue.
            if (signal is not (0 or (int)SIGCHLD) && plan.Zombies.Any(z => z.Pid == task.Pid))
                throw new RestoreRefusedException($"zombie {task.Pid} has exit signal {signal}: its exit at restore would queue that signal for its parent {task.Ppid} (only SIGCHLD is discarded)");
            if (steps.TryGetValue(task.Pid, out CreationStep? step) && step.AsSibling && ExitSignalOf(plan, step.Creator) != signal)
                throw new RestoreRefusedException($"process {task.Pid} has exit signal {signal}, but is made by its sibling {step.Creator} with CLONE_PARENT, which gives it the sibling's, {ExitSignalOf(plan, step.Creator)}");
        }
    }

    private static int ExitSignalOf(RestorePlan plan, int pid) =>
        plan.Processes.FirstOrDefault(p => p.Pid == pid)?.Task.ExitSignal ?? plan.Zombies.First(z => z.Pid == pid).Task.ExitSignal;

    /// <summary>Which process forks each one, and with what it shares (<see cref="SharedTables.Plan"/>); refused when the sharing cannot be made.</summary>
    public static IReadOnlyDictionary<int, CreationStep> CreationSteps(RestorePlan plan)
    {
        try { return SharedTables.Plan(SharedTables.MembersOf(plan.Image)); }
        catch (SharingNotCreatableException e) { throw new RestoreRefusedException(e.Message); }
    }

    /// <summary>Steps 1-4; every task made is added to <paramref name="tree"/> at once (killed on a failure).</summary>
    /// <param name="stubs">told before a process forks a child: it may empty its address space first, for its children to inherit</param>
    public static void CreateAll(TreeRestoreContext tree, bool reparentToCaller, StubTeardown stubs)
    {
        RestorePlan plan = tree.Plan;
        ProcessImage rootImage = plan.Processes[0];
        tree.Step = $"process {rootImage.Pid}: create";
        using var neutral = NeutralExecutable.Create();
        // Root never executes the image's program (its setuid bits or file capabilities would apply);
        // an unprivileged engine must (the task cannot change its exe link), and UnprivilegedMode.CheckCreated
        // then refuses a program whose exec changed the credentials.
        string ProgramFor(ProcessImage image) => Caller.Current.IsRoot ? neutral.Path : image.ExePath;
        // The root's session and group, when their leaders are gone, are made by helpers that fork it.
        var helpers = LeaderHelpers.Create(tree, LeaderHelpers.For(plan), ProgramFor(rootImage), reparentToCaller);
        SyscallInjector rootLeader;
        if (helpers.Count == 0)
        {
            ProcessCreation.CreateStoppedAtExec(rootImage.Pid, ProgramFor(rootImage), reparentToCaller);
            var rootTracee = Tracee.Adopt(rootImage.Pid);
            tree.Created(rootTracee);
            rootLeader = SyscallInjector.AtExecStop(rootTracee);
        }
        else
        {
            var (helper, helperScratch) = helpers[^1];
            tree.Step = $"process {rootImage.Pid}: create (forked by helper {helper.Pid})";
            SyscallInjector forked = Fork(tree, helper, helperScratch, rootImage.Pid);
            tree.Step = $"process {rootImage.Pid}: execve of the neutral program";
            rootLeader = Exec(forked, helperScratch.Address, ProgramFor(rootImage));
        }
        RestoreContext root = tree.AddProcess(rootImage, rootLeader);
        if (rootImage.Task.Sid == rootImage.Pid) root.Leader.Call("setsid (the root led its session)", SYS_setsid);
        ParentLinks.SetChildSubreaper(root.Leader, rootImage);
        tree.Step = $"process {rootImage.Pid}: pseudo-terminal pairs";
        tree.Terminals.CreatePairs(root);
        tree.Terminals.AcquireControllingTerminal(root.Leader, rootImage.Pid);
        LeaderHelpers.ExitAll(tree, helpers);
        // The processes it forks inherit the batch routine with its scratch area (ScratchArea.InheritedBy).
        if (plan.Processes.Count > 1) new SyscallBatch(root.Leader, root.Scratch).EnsureRoutine();

        var made = new Dictionary<int, SyscallInjector> { [rootImage.Pid] = root.Leader };
        var zombies = new List<(ZombieImage Zombie, SyscallInjector Injector, RestoreContext Parent)>();
        IReadOnlyDictionary<int, CreationStep> steps = CreationSteps(plan);
        var sessionHelpers = new SessionHelpers();
        var forkedEarly = new Dictionary<int, SyscallInjector>(); // by ForkChildren, with an earlier sibling
        foreach (TaskIdsRecord ids in plan.Image.TaskTable.Skip(1).Where(t => t.Pid == t.Tgid))
        {
            // A zombie shares nothing: its parent forks it.
            CreationStep step = steps.TryGetValue(ids.Pid, out CreationStep? known) ? known : new CreationStep(ids.Pid, ids.Ppid, false, false, false);
            RestoreContext parent = tree.ByPid[ids.Ppid];
            RestoreContext creator = tree.ByPid[step.Creator];
            // A process in a session whose leader is gone is forked by that session's helper (its parent's child).
            bool byHelper = SessionHelpers.Forks(plan, ids);
            if (!byHelper) stubs.Forking(creator, ids.Pid);
            var (forker, forkerScratch) = byHelper ? sessionHelpers.HelperFor(tree, parent, ids.Sid) : (creator.Leader, creator.Scratch);
            tree.Step = $"process {ids.Pid}: create (forked by {forker.Pid}{Describe(step)})";
            if (!forkedEarly.Remove(ids.Pid, out SyscallInjector? child))
            {
                List<int> siblings = byHelper || !IsPlainFork(plan, steps, ids) ? [] : PlainChildren(plan, steps, creator.Plan.Pid, after: ids.Pid);
                if (siblings.Count == 0) child = Fork(tree, forker, forkerScratch, ids.Pid, CloneFlags(step), (ulong)ExitSignalOf(plan, ids.Pid));
                else
                {
                    foreach (int sibling in siblings) stubs.Forking(creator, sibling);
                    var children = ForkChildren(tree, creator, [ids.Pid, .. siblings]);
                    child = children[ids.Pid];
                    foreach (int sibling in siblings) forkedEarly[sibling] = children[sibling];
                }
            }
            if (ids.Sid == ids.Pid) child.Call("setsid (the process led its session)", SYS_setsid);
            tree.Terminals.AcquireControllingTerminal(child, ids.Pid); // before it forks: its session's processes inherit it
            if (plan.Zombies.FirstOrDefault(z => z.Pid == ids.Pid) is { } zombie)
            {
                zombies.Add((zombie, child, parent));
                made[ids.Pid] = child;
                continue;
            }
            ProcessImage image = plan.Processes.First(p => p.Pid == ids.Pid);
            tree.Step = $"process {ids.Pid}: execve of the neutral program";
            // execve would unshare the descriptor table: a process sharing one stays a copy of its creator's program.
            // One sharing the address space uses the scratch area of the process that restores it (the same memory).
            ulong? scratchOfMemory = step.SharesVm ? tree.Processes.First(p => ReferenceEquals(p.Plan.Process.Memory, image.Memory)).Scratch.Address : null;
            RestoreContext restored = ExecsAfterFork(step) ? tree.AddProcess(image, Exec(child, forkerScratch.Address, ProgramFor(image)))
                : tree.AddProcess(image, child, forkerScratch.InheritedBy(child), scratchOfMemory);
            ParentLinks.SetChildSubreaper(restored.Leader, image);
            made[ids.Pid] = restored.Leader;
        }

        var groupHelpers = new GroupHelpers();
        groupHelpers.CreateAll(tree);
        tree.Step = "process groups";
        SetGroups(plan, made);
        groupHelpers.ExitAll(tree);
        tree.Step = "foreground process groups";
        tree.Terminals.SetForegroundGroups(tree);
        sessionHelpers.ExitAll(tree); // their children go back to their parents, the subreapers
        foreach (var (zombie, injector, parent) in zombies)
        {
            tree.Step = $"zombie {zombie.Pid}: exit with status 0x{zombie.ExitStatus:x}";
            Exit(injector, zombie.ExitStatus);
            tree.Reaped(injector.Pid);
        }
        foreach (RestoreContext parent in zombies.Select(z => z.Parent).Distinct())
            DiscardSigchld(parent);
    }

    // A root engine forks every process from its fresh neutral creator and leaves it at that: the copy is
    // what an execve of the neutral program would give (the same program, nothing run of it, every signal
    // blocked, the engine's credentials), without a new address space and a program load per process
    // (docs/benchmarks.md). An unprivileged engine executes the image's program (its exe link cannot be
    // changed afterwards), unless the process shares its creator's descriptor table (execve would unshare it).
    private static bool ExecsAfterFork(CreationStep step) => step.Execs && !Caller.Current.IsRoot;

    private const ulong CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800, CLONE_PARENT = 0x8000;

    private static ulong CloneFlags(CreationStep step) =>
        (step.SharesFiles ? CLONE_FILES : 0) | (step.SharesFs ? CLONE_FS : 0) | (step.AsSibling ? CLONE_PARENT : 0) |
        (step.SharesVm ? CLONE_VM : 0) | (step.SharesSighand ? CLONE_SIGHAND : 0);

    private static string Describe(CreationStep step) =>
        (step.AsSibling ? ", a sibling, with CLONE_PARENT" : "") + (step.SharesFiles ? ", sharing its descriptor table" : "") + (step.SharesFs ? ", sharing its fs information" : "") +
        (step.SharesVm ? ", sharing its memory" : "") + (step.SharesSighand ? ", sharing its signal handlers" : "");

    // An injected clone3 in the parent (or, with CLONE_PARENT, in a sibling): a copy of it as it is now (a
    // fresh program with the engine's scratch area), stopped by PTRACE_O_TRACEFORK before its first instruction.
    internal static SyscallInjector Fork(TreeRestoreContext tree, SyscallInjector parent, ScratchArea scratch, int pid, ulong flags = 0, ulong exitSignal = SIGCHLD)
    {
        scratch.Reset();
        // clone3 refuses an exit signal with CLONE_PARENT (EINVAL): the child then gets its creator's (validated equal).
        if ((flags & CLONE_PARENT) != 0) exitSignal = 0;
        var arguments = new CloneArgs { Flags = flags, ExitSignal = exitSignal, SetTid = scratch.PutStruct(pid), SetTidSize = 1 };
        long result = parent.CallRaw(SYS_clone3, scratch.PutStruct(arguments), (ulong)sizeof(CloneArgs));
        if (result == -Errno.EEXIST) throw new PidInUseException(pid, ProcessNames.CommOf(pid));
        if (result < 0) throw new SyscallException($"clone3(set_tid {pid})", (int)-result, parent.Pid, "injected into the restored parent");
        var tracee = Tracee.Adopt((int)result);
        tree.Created(tracee);
        int status = tracee.WaitForStop($"creation of process {pid}");
        if (WaitStatus.PtraceEvent(status) != PTRACE_EVENT_STOP)
            throw new InvalidOperationException($"new process {pid} {WaitStatus.Describe(status)} instead of its first ptrace stop");
        return SyscallInjector.ForNewThread(tracee, parent.SyscallAddress);
    }

    // A child its parent forks with nothing shared and no helper (most children): its later plain siblings
    // can be forked in the same batch.
    private static bool IsPlainFork(RestorePlan plan, IReadOnlyDictionary<int, CreationStep> steps, TaskIdsRecord ids) =>
        !SessionHelpers.Forks(plan, ids) && (!steps.TryGetValue(ids.Pid, out CreationStep? step) || (step.Creator == ids.Ppid && CloneFlags(step) == 0));

    private static List<int> PlainChildren(RestorePlan plan, IReadOnlyDictionary<int, CreationStep> steps, int parent, int after) =>
        plan.Image.TaskTable.Where(t => t.Pid == t.Tgid).SkipWhile(t => t.Pid != after).Skip(1)
            .Where(t => t.Ppid == parent && IsPlainFork(plan, steps, t)).Select(t => t.Pid).ToList();

    // Plain children of one parent in one batch: a clone3 each (each stops the parent at its fork event; the
    // batch goes on). Every child made is adopted before a failure is reported, so that a failed restore
    // kills it too. A child is a copy of its parent inside the batch routine, stopped before its first instruction.
    private static Dictionary<int, SyscallInjector> ForkChildren(TreeRestoreContext tree, RestoreContext parent, List<int> pids)
    {
        ScratchArea scratch = parent.Scratch;
        scratch.Reset();
        var batch = new SyscallBatch(parent.Leader, scratch);
        foreach (int pid in pids)
        {
            var arguments = new CloneArgs { ExitSignal = (ulong)ExitSignalOf(tree.Plan, pid), SetTid = scratch.PutStruct(pid), SetTidSize = 1 };
            batch.AddMayFail($"clone3(set_tid {pid})", SYS_clone3, scratch.PutStruct(arguments), (ulong)sizeof(CloneArgs));
        }
        long[] results = batch.Run();
        var made = new Dictionary<int, SyscallInjector>();
        for (int i = 0; i < pids.Count; i++)
        {
            if (results[i] <= 0) continue;
            var tracee = Tracee.Adopt((int)results[i]);
            tree.Created(tracee);
            int status = tracee.WaitForStop($"creation of process {pids[i]}");
            if (WaitStatus.PtraceEvent(status) != PTRACE_EVENT_STOP)
                throw new InvalidOperationException($"new process {pids[i]} {WaitStatus.Describe(status)} instead of its first ptrace stop");
            made[pids[i]] = SyscallInjector.ForNewThread(tracee, parent.Leader.SyscallAddress);
        }
        for (int i = 0; i < pids.Count; i++)
        {
            if (results[i] == -Errno.EEXIST) throw new PidInUseException(pids[i], ProcessNames.CommOf(pids[i]));
            if (results[i] < 0) throw new SyscallException($"clone3(set_tid {pids[i]})", (int)-results[i], parent.Plan.Pid, "injected into the restored parent");
            if (results[i] != pids[i]) throw new InvalidOperationException($"clone3(set_tid {pids[i]}) in process {parent.Plan.Pid} made process {results[i]}");
        }
        return made;
    }

    // execve injected into the new child (its arguments in its copy of the parent's scratch area):
    // the kernel reports PTRACE_EVENT_EXEC (PTRACE_O_TRACEEXEC), and from there the child is restored
    // exactly as the root is.
    private static SyscallInjector Exec(SyscallInjector child, ulong scratchAddress, string path)
    {
        ScratchArea scratch = ScratchArea.Inherited(child, scratchAddress);
        ulong pathAddress = scratch.PutString(path);
        ulong argv = scratch.PutStruct(new ArgumentVector { First = pathAddress });
        ulong envp = scratch.PutStruct(new ArgumentVector());
        Tracee tracee = child.Tracee;
        UserRegisters registers = child.GetRegisters();
        registers.Rip = child.SyscallAddress;
        registers.Rax = SYS_execve;
        registers.OrigRax = ulong.MaxValue;
        (registers.Rdi, registers.Rsi, registers.Rdx) = (pathAddress, argv, envp);
        tracee.SetRegisters(registers);
        tracee.ResumeToSyscallStop($"entry of execve {path}");
        int status = tracee.ResumeToNextStop($"execve {path}");
        if (WaitStatus.PtraceEvent(status) == PTRACE_EVENT_EXEC) return SyscallInjector.AtExecStop(tracee);
        long result = Tracee.IsSyscallStop(status) ? (long)tracee.GetRegisters().Rax : 0;
        if (result < 0) throw new SyscallException($"execve {path}", (int)-result, child.Pid, "injected into the new process");
        throw new InvalidOperationException($"process {child.Pid}: {WaitStatus.Describe(status)} instead of the exec stop of {path}");
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct ArgumentVector
    {
        public ulong First, End;
    }

    // Leaders first, then members: setpgid(0, pgid) joins a group only once it exists. A process
    // that is already where it belongs (a session leader, a child created in its parent's group) is
    // left alone; the root's group when the root did not lead it is the one the restore runs in.
    private static void SetGroups(RestorePlan plan, Dictionary<int, SyscallInjector> made)
    {
        TaskIdsRecord root = plan.Image.TaskTable[0];
        int rootGroupNow = (int)ProcStat.Read(root.Pid).Field(5);
        var processes = plan.Image.TaskTable.Where(t => t.Pid == t.Tgid).ToList();
        foreach (TaskIdsRecord task in processes.Where(t => t.Pgid == t.Pid).Concat(processes.Where(t => t.Pgid != t.Pid)))
        {
            int target = task.Pgid == root.Pgid && root.Pgid != root.Pid ? rootGroupNow : task.Pgid;
            if (ProcStat.Read(task.Pid).Field(5) == target) continue;
            made[task.Pid].Call($"setpgid(0, {target}) of process {task.Pid}", SYS_setpgid, 0, (ulong)target);
        }
    }

    // A zombie-to-be exits with its recorded status: exit_group for an exit code; for a signal, the
    // signal sent with every signal unblocked (exec has not run: its actions are the defaults) and
    // passed on at its delivery stop. The tracer's wait then hands it to its parent as a zombie.
    internal static void Exit(SyscallInjector zombie, int exitStatus)
    {
        Tracee tracee = zombie.Tracee;
        int signal = exitStatus & 0x7f;
        if (signal == 0)
        {
            UserRegisters registers = zombie.GetRegisters();
            registers.Rip = zombie.SyscallAddress;
            registers.Rax = SYS_exit_group;
            registers.OrigRax = ulong.MaxValue;
            registers.Rdi = (ulong)((exitStatus >> 8) & 0xff);
            tracee.SetRegisters(registers);
            tracee.Continue();
        }
        else
        {
            tracee.SetSignalMask(0);
            if (ProcessCreationNative.kill(zombie.Pid, signal) != 0)
                throw new SyscallException($"kill({signal})", Marshal.GetLastPInvokeError(), zombie.Pid, "ending a zombie with its recorded signal");
            tracee.Continue();
        }
        while (true)
        {
            int status = ProcessCreation.WaitForStop(zombie.Pid);
            if (!WaitStatus.Stopped(status)) break;
            tracee.Continue(WaitStatus.PtraceEvent(status) == 0 ? WaitStatus.StopSignal(status) : 0);
        }
        tracee.MarkReleased();
    }

    // A helper (SessionHelpers, GroupHelpers) has exited: its parent reaps it, and the SIGCHLD it got is discarded.
    internal static void ReapHelper(RestoreContext parent, int helper)
    {
        const ulong WNOHANG = 1, WALL = 0x40000000;
        long reaped = parent.Leader.Call($"wait4({helper}) of the helper in its parent {parent.Plan.Pid}", SYS_wait4, (ulong)helper, 0, WNOHANG | WALL, 0);
        if (reaped != helper)
            throw new InvalidOperationException($"process {parent.Plan.Pid}: wait4 for the helper {helper} returned {reaped}");
        DiscardSigchld(parent);
    }

    // The parent was sent SIGCHLD by its zombies' exits; it is blocked (the new process blocks every
    // signal until its release), so it waits in the queue: setting SIGCHLD to SIG_IGN discards it
    // (POSIX), and SIG_DFL puts the action back before the signals stage sets the recorded one.
    internal static void DiscardSigchld(RestoreContext parent)
    {
        ScratchArea scratch = parent.Scratch;
        scratch.Reset();
        ulong ignore = scratch.PutStruct(new KernelSigaction { Handler = SIG_IGN });
        ulong byDefault = scratch.PutStruct(new KernelSigaction { Handler = SIG_DFL });
        parent.Leader.Call("rt_sigaction(SIGCHLD, SIG_IGN)", SYS_rt_sigaction, SIGCHLD, ignore, 0, 8);
        parent.Leader.Call("rt_sigaction(SIGCHLD, SIG_DFL)", SYS_rt_sigaction, SIGCHLD, byDefault, 0, 8);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct KernelSigaction
    {
        public ulong Handler, Flags, Restorer, Mask;
    }
}
