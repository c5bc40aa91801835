using Ckpt.Engine.Linux;
using Ckpt.Engine.Tasks;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Restore;

/// <summary>
/// A process group whose leader is gone, for processes below the root (the root's own is
/// <see cref="LeaderHelpers"/>, a gone session's own group <see cref="SessionHelpers"/>): a shell S forks
/// L, which calls setpgid(0, 0), and M, which joins L's group; L exits and S reaps it, so M lives in group
/// L with no process L. A group is made only by its leader's setpgid(0, 0) (a member's setpgid can join
/// an existing group only), so the restore does what CRIU does: once every process exists, the parent of
/// the group's first member (in tree order) forks a helper with pid L (injected clone3 with set_tid; a
/// child of a process of the group's session is in that session), which calls setpgid(0, 0); the groups
/// stage then puts the members in group L as usual (setpgid(0, L)); the helper exits (collected by the
/// engine as tracer) and its parent reaps it (an injected wait4(L, WNOHANG); the SIGCHLD this queued is
/// discarded, the image has the parent's real queue). Nothing of the helper remains and pid L is free
/// again, as it was at checkpoint time. Refused by name before anything exists (<see cref="Validate"/>):
/// pid L in use, L a process of the image (which left its group), a first member's parent in another session.
/// </summary>
public sealed class GroupHelpers
{
    private readonly List<(SyscallInjector Helper, RestoreContext Parent)> _made = [];

    /// <summary>Gone group leader -> the process that forks its helper (the parent of the group's first member below the root).</summary>
    public static Dictionary<int, int> Groups(RestorePlan plan)
    {
        var tasks = plan.Image.TaskTable.Where(t => t.Pid == t.Tgid).ToList();
        var byPid = tasks.ToDictionary(t => t.Pid);
        TaskIdsRecord root = tasks[0];
        var helperSessions = SessionHelpers.Sessions(plan).Keys.ToHashSet();
        var groups = new Dictionary<int, int>();
        foreach (TaskIdsRecord task in tasks.Skip(1))
        {
            if (task.Pgid == task.Pid) continue;
            bool rootsForeignGroup = task.Pgid == root.Pgid && root.Pgid != root.Pid && task.Sid == root.Sid;
            bool helpersGroup = helperSessions.Contains(task.Sid) && task.Pgid == task.Sid;
            bool leaderInImage = byPid.TryGetValue(task.Pgid, out TaskIdsRecord leader) && leader.Pgid == leader.Pid && leader.Sid == task.Sid;
            if (!leaderInImage && !rootsForeignGroup && !helpersGroup) groups.TryAdd(task.Pgid, task.Ppid);
        }
        return groups;
    }

    /// <summary>Refuses, before anything exists, a gone group these helpers cannot make (named).</summary>
    public static void Validate(RestorePlan plan)
    {
        var tasks = plan.Image.TaskTable.Where(t => t.Pid == t.Tgid).ToDictionary(t => t.Pid);
        foreach (var (group, forker) in Groups(plan))
        {
            TaskIdsRecord member = tasks.Values.First(t => t.Pid != plan.Image.RootPid && t.Pgid == group);
            string what = $"process {member.Pid} is in process group {group}, whose leader is gone (in session {member.Sid})";
            if (tasks.ContainsKey(group))
                throw new RestoreRefusedException($"{what}: process {group} of the image, which made that group, has left it (a group is made only by its leader)");
            if (tasks[forker].Sid != member.Sid)
                throw new RestoreRefusedException($"{what}: its parent {forker} is in session {tasks[forker].Sid}, so a helper it forks to make the group would be in the wrong session");
            if (Directory.Exists($"/proc/{group}"))
                throw new PidInUseException(group, ProcessNames.CommOf(group));
        }
    }

    /// <summary>Every helper, forked by its group's first member's parent (every process exists), leading its group.</summary>
    public void CreateAll(TreeRestoreContext tree)
    {
        foreach (var (group, forker) in Groups(tree.Plan))
        {
            RestoreContext parent = tree.ByPid[forker];
            tree.Step = $"helper {group}: create (the process group {group}, whose leader is gone), forked by {forker}";
            SyscallInjector helper = TreeCreation.Fork(tree, parent.Leader, parent.Scratch, group);
            helper.Call($"setpgid(0, 0) in helper {group}", SYS_setpgid, 0, 0);
            _made.Add((helper, parent));
        }
    }

    /// <summary>Every helper exits once its members have joined its group; its parent reaps it.</summary>
    public void ExitAll(TreeRestoreContext tree)
    {
        foreach (var (helper, parent) in _made)
        {
            tree.Step = $"helper {helper.Pid}: exit";
            TreeCreation.Exit(helper, 0);
            tree.Reaped(helper.Pid);
            TreeCreation.ReapHelper(parent, helper.Pid);
        }
    }
}
