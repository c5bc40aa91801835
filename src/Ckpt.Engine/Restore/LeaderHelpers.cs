using Ckpt.Engine.Linux;
using Ckpt.Image.Model;
using Ckpt.Image.Records;
using static Ckpt.Engine.Linux.SyscallNumbers;

namespace Ckpt.Engine.Restore;

/// <summary>
/// The root's session and process group when their leaders are gone (a daemon that did fork, setsid,
/// fork, and whose session leader exited; a pipeline's member whose group leader exited), as linux-cr
/// and CRIU restore them: a temporary helper process is created with the dead leader's pid (the
/// engine's clone3 with set_tid), calls setsid() (a session helper, which leads the group of the same
/// id too) or setpgid(0, 0) (a group helper, forked by the session helper when there is one, else made
/// in the session the restore runs in), and forks the root (an injected clone3 with set_tid), which so
/// starts in that session and group; the root's children inherit them from it. Once the root has
/// executed the neutral program the helpers exit (exit_group(0), collected by the engine as their
/// tracer) and are reaped by their parent (init, or the engine's subreaper with --wait), and the root is
/// reparented as a root always is: nothing of the helpers remains, and their pids are free again, as
/// they were at checkpoint time. A leader's pid that is in use at restore time (the shell the process
/// ran under is still there) gets no helper: the root then joins the session and group the restore runs
/// in, as it does when it did not lead them. Processes below the root whose session or group leader is
/// gone are refused (<see cref="TreeCreation.Validate"/>).
/// </summary>
public static class LeaderHelpers
{
    /// <summary>The helpers the root needs: (pid, whether it makes a session) in creation order, empty when none.</summary>
    public static List<(int Pid, bool Session)> For(RestorePlan plan)
    {
        TaskIdsRecord root = plan.Image.TaskTable[0];
        var inImage = plan.Image.TaskTable.Select(t => t.Pid).ToHashSet();
        bool Free(int pid) => pid > 0 && !inImage.Contains(pid) && !Directory.Exists($"/proc/{pid}");
        var helpers = new List<(int, bool)>();
        // A root whose controlling terminal was the user's joins the session and group the restore runs
        // in (--shell-terminal, TerminalsRestore): a helper's session would leave it without a terminal,
        // a helper's group outside the terminal's foreground group.
        if (plan.Processes[0].Signal.ControllingTerminal is { Outside: true }) return [];
        bool session = root.Sid != root.Pid && Free(root.Sid);
        if (session) helpers.Add((root.Sid, true));
        if (root.Pgid != root.Pid && !(session && root.Pgid == root.Sid) && Free(root.Pgid))
            helpers.Add((root.Pgid, false));
        return helpers;
    }

    /// <summary>
    /// Creates the helpers, the first by the engine, each next one forked by the one before; returns the
    /// last one, which forks the root (see <see cref="TreeCreation"/>), and its scratch area.
    /// </summary>
    public static List<(SyscallInjector Helper, ScratchArea Scratch)> Create(TreeRestoreContext tree, List<(int Pid, bool Session)> helpers, string program, bool reparentToCaller)
    {
        var made = new List<(SyscallInjector, ScratchArea)>();
        foreach (var (pid, session) in helpers)
        {
            tree.Step = $"helper {pid}: create (the {(session ? "session" : "process group")} {pid}, whose leader is gone)";
            SyscallInjector helper;
            if (made.Count == 0)
            {
                ProcessCreation.CreateStoppedAtExec(pid, program, reparentToCaller);
                var tracee = Tracee.Adopt(pid);
                tree.Created(tracee);
                helper = SyscallInjector.AtExecStop(tracee);
            }
            else
            {
                var (parent, parentScratch) = made[^1];
                helper = TreeCreation.Fork(tree, parent, parentScratch, pid);
            }
            ScratchArea scratch = made.Count == 0 ? ScratchArea.Map(helper, []) : ScratchArea.Inherited(helper, made[^1].Item2.Address);
            if (session) helper.Call($"setsid in helper {pid}", SYS_setsid);
            else helper.Call($"setpgid(0, 0) in helper {pid}", SYS_setpgid, 0, 0);
            made.Add((helper, scratch));
        }
        return made;
    }

    /// <summary>Every helper exits (the last made first); the engine collects each exit as tracer, its parent reaps it.</summary>
    public static void ExitAll(TreeRestoreContext tree, List<(SyscallInjector Helper, ScratchArea Scratch)> made)
    {
        foreach (var (helper, _) in Enumerable.Reverse(made))
        {
            tree.Step = $"helper {helper.Pid}: exit";
            TreeCreation.Exit(helper, 0);
            tree.Reaped(helper.Pid);
        }
    }
}
