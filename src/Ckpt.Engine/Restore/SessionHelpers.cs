using Ckpt.Engine.Linux;
using Ckpt.Engine.Tasks;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Restore;

/// <summary>
/// A session whose leader is gone, for processes below the root (the root's own is <see cref="LeaderHelpers"/>):
/// R, a child subreaper, forks C; C calls setsid() and forks D; C exits. D's parent is R (the kernel reparented
/// it to the subreaper) and its session is C's. The restore makes it the same way: R forks a helper with pid C
/// (injected clone3 with set_tid), which calls setsid() and forks D (and every other process of that session
/// whose parent is R), and once every process of the tree exists the helper exits: the kernel hands its
/// children to R, the subreaper, as it did at checkpoint time, and R reaps the helper (an injected
/// wait4(C, WNOHANG); its SIGCHLD is discarded, the image has R's real queue). Where the parent could not be
/// kept that way (the parent is not a child subreaper, so the orphans would go elsewhere; the session's
/// processes have different parents; the leader's pid is in use; a process that shares a descriptor table
/// or fs information or memory, or a zombie, would be forked by the helper) the tree is refused by name
/// (<see cref="Validate"/>).
/// </summary>
public sealed class SessionHelpers
{
    private readonly Dictionary<int, (SyscallInjector Helper, RestoreContext Parent)> _made = [];

    /// <summary>Gone session leader -> the parent of the processes its helper forks (a child subreaper in the image).</summary>
    public static Dictionary<int, int> Sessions(RestorePlan plan)
    {
        var leaders = plan.Image.TaskTable.Where(t => t.Pid == t.Tgid).ToDictionary(t => t.Pid);
        var sessions = new Dictionary<int, int>();
        foreach (TaskIdsRecord task in leaders.Values.Where(t => t.Pid != plan.Image.RootPid))
        {
            if (task.Sid == task.Pid || task.Sid == leaders[task.Ppid].Sid) continue;
            sessions.TryAdd(task.Sid, task.Ppid);
        }
        return sessions;
    }

    /// <summary>Refuses, before anything exists, a gone session these helpers cannot make (named).</summary>
    public static void Validate(RestorePlan plan, IReadOnlyDictionary<int, CreationStep> steps)
    {
        var leaders = plan.Image.TaskTable.Where(t => t.Pid == t.Tgid).ToDictionary(t => t.Pid);
        var zombies = plan.Zombies.Select(z => z.Pid).ToHashSet();
        foreach (var (session, parent) in Sessions(plan))
        {
            string what = $"session {session}, whose leader is gone";
            ProcessImage? reaper = plan.Processes.FirstOrDefault(p => p.Pid == parent);
            if (reaper is null || !reaper.ChildSubreaper)
                throw new RestoreRefusedException($"process {parent} has children in {what}, but is not a child subreaper: a helper leading that session would leave them to another reaper when it exits");
            if (leaders.ContainsKey(session))
                throw new RestoreRefusedException($"{what} is led by process {session} of the image, which is not the parent of its members");
            if (Directory.Exists($"/proc/{session}"))
                throw new PidInUseException(session, ProcessNames.CommOf(session));
            foreach (TaskIdsRecord task in leaders.Values.Where(t => t.Pid != plan.Image.RootPid && t.Sid == session && leaders[t.Ppid].Sid != session))
            {
                if (task.Ppid != parent)
                    throw new RestoreRefusedException($"the processes of {what} have different parents ({parent} and {task.Ppid}): one helper with pid {session} cannot fork them all");
                if (zombies.Contains(task.Pid))
                    throw new RestoreRefusedException($"zombie {task.Pid} is in {what}: it would be the helper's zombie, not its parent's");
                if (steps.TryGetValue(task.Pid, out CreationStep? step) && (step.SharesFiles || step.SharesFs || step.SharesVm))
                    throw new RestoreRefusedException($"process {task.Pid} is in {what} and shares its descriptor table, fs information or memory: the helper cannot fork it sharing them");
            }
        }
    }

    /// <summary>Whether the process is forked by a session helper (its session is neither its own nor its parent's).</summary>
    public static bool Forks(RestorePlan plan, TaskIdsRecord task) =>
        task.Pid != plan.Image.RootPid && task.Sid != task.Pid && task.Sid != plan.Image.TaskTable.First(t => t.Pid == task.Ppid).Sid;

    /// <summary>The helper for the task's session, forked by the task's parent and made a session leader on first use.</summary>
    public (SyscallInjector Helper, ScratchArea Scratch) HelperFor(TreeRestoreContext tree, RestoreContext parent, int session)
    {
        if (!_made.TryGetValue(session, out var made))
        {
            tree.Step = $"helper {session}: create (the session {session}, whose leader is gone), forked by {parent.Plan.Pid}";
            SyscallInjector helper = TreeCreation.Fork(tree, parent.Leader, parent.Scratch, session);
            helper.Call($"setsid in helper {session}", SYS_setsid);
            _made[session] = made = (helper, parent);
        }
        return (made.Helper, ScratchArea.Inherited(made.Helper, parent.Scratch.Address));
    }

    /// <summary>Every helper exits; its children go to its parent (a subreaper), which reaps it.</summary>
    public void ExitAll(TreeRestoreContext tree)
    {
        foreach (var (session, (helper, parent)) in _made)
        {
            tree.Step = $"helper {session}: exit";
            TreeCreation.Exit(helper, 0);
            tree.Reaped(helper.Pid);
            TreeCreation.ReapHelper(parent, session);
        }
    }
}
