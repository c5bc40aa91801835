namespace Ckpt.Engine.Tests;

/// <summary>
/// Process trees (issue 10): tests/workloads/ckpt_tree.c (a zombie, a process group with a member,
/// a session leader with two groups, an orphan the subreaper root inherited, a child sharing the
/// root's file description, and any number of plain children; each process checks itself), bash
/// starting children, and a lone setsid'd process's session. The engine runs as the real `ckpt`.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class ProcessTreeTests
{
    private const int SIGKILL = 9;
    private const int PlainChildrenFor100 = 89; // the workload's 11 other processes make 100
    // A hundred processes take a few seconds each way on an idle machine of two cores, and many times that on a loaded one.
    private static readonly TimeSpan TreeTimeout = TimeSpan.FromMinutes(5);

    /// <summary>(pid, ppid, pgid, sid, state) of every process of the tree under root; the root's ppid is left out (its parent is whoever restored it).</summary>
    internal static List<string> Tree(int root)
    {
        var lines = new List<string>();
        void Visit(int pid)
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            string state = fields[0] == "Z" ? "Z" : "live";
            lines.Add($"{pid} ppid {(pid == root ? "-" : fields[1])} pgid {fields[2]} sid {fields[3]} {state}");
            if (state == "Z") return;
            foreach (string task in Directory.GetDirectories($"/proc/{pid}/task"))
                foreach (string child in File.ReadAllText($"{task}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries))
                    Visit(int.Parse(child));
        }
        Visit(root);
        lines.Sort(StringComparer.Ordinal);
        return lines;
    }

    private static List<int> Pids(IEnumerable<string> tree) => tree.Select(l => int.Parse(l.Split(' ')[0])).ToList();

    private static void KillAll(IEnumerable<int> pids)
    {
        foreach (int pid in pids) RestoreTestProcesses.TryKill(pid, SIGKILL);
    }

    // READY comes once the groups, the session and the orphan are in place: slow for a hundred processes on a loaded machine.
    private static Target StartTree(int plainChildren) => StartProgram(RestoreWorkloads.Path("ckpt_tree"), readySeconds: 60, plainChildren.ToString());

    [Fact]
    public void A_tree_comes_back_with_every_pid_parent_group_session_and_zombie_and_passes()
    {
        using var target = StartTree(0);
        List<string> before = Tree(target.Pid);
        try
        {
            Assert.Equal(11, before.Count);
            Assert.Single(before, l => l.EndsWith(" Z", StringComparison.Ordinal));
            string image = TempPath("tree.img");
            CkptCheckpoint(target.Pid, image, kill: true);
            RestoreTestProcesses.WaitForExit(target.Pid);
            foreach (int pid in Pids(before)) RestoreTestProcesses.WaitUntilGone(pid);

            Assert.Equal(target.Pid, CkptRestore(image));
            Assert.Equal(before, Tree(target.Pid));
            target.RequirePass();
        }
        finally
        {
            KillAll(Pids(before));
        }
    }

    [Fact]
    public void A_checkpoint_without_kill_leaves_the_tree_running_as_before()
    {
        using var target = StartTree(0);
        List<string> before = Tree(target.Pid);
        try
        {
            string image = TempPath("tree-live.img");
            CkptCheckpoint(target.Pid, image, kill: false);
            Assert.Equal(before, Tree(target.Pid));
            ImageModel model = ReadImage(image).Image!;
            Assert.Equal(11, model.Tree.ProcessCount);
            Assert.Equal(Pids(before).Order(), model.TaskTable.Select(t => t.Pid).Order());
            Assert.Equal(7 << 8, Assert.Single(model.Zombies).ExitStatus);
            target.RequirePass();
        }
        finally
        {
            KillAll(Pids(before));
        }
    }

    [Fact]
    public void A_descendant_that_cannot_be_checkpointed_fails_the_checkpoint_naming_it_and_all_run_on()
    {
        // The first sleep holds a pseudo-terminal master (bash opens /dev/ptmx) whose slave nobody holds: refused.
        using var target = StartProgram("/usr/bin/bash", "-c", "sleep 1000 3<>/dev/ptmx | sleep 1000; true");
        List<string> before = [];
        for (int i = 0; i < 500 && before.Count < 3; i++, Thread.Sleep(10)) before = Tree(target.Pid);
        try
        {
            Assert.Equal(3, before.Count);
            var (code, _, stderr) = RunCkpt(EngineTimeout, "checkpoint", "--pid", target.Pid.ToString(), "--output", TempPath("refused.img"));
            Assert.Equal(6, code);
            int child = Pids(before).Where(p => p != target.Pid).Min();
            Assert.Contains($"descendant {child} ('sleep') of process {target.Pid}", stderr);
            Assert.Contains("fd 3 ", stderr);
            Assert.Contains("pseudo-terminal master", stderr);
            Assert.Equal(before, Tree(target.Pid));
            foreach (int pid in Pids(before))
                Assert.Contains("TracerPid:\t0", File.ReadAllText($"/proc/{pid}/status"));
        }
        finally
        {
            KillAll(Pids(before));
        }
    }

    [Fact]
    public void A_lone_session_leader_comes_back_in_its_own_session_and_survives_the_restoring_shells_group()
    {
        using var target = StartProgram("/usr/bin/sleep", "1000"); // in a session of its own (sid = pgid = pid)
        string image = TempPath("lone.img"), printed = TempPath("restored-pid");
        CkptCheckpoint(target.Pid, image, kill: true);
        RestoreTestProcesses.WaitForExit(target.Pid);
        RestoreTestProcesses.WaitUntilGone(target.Pid);
        // A shell in a session and group of its own restores it, then waits; its group is then killed.
        using var shell = StartProgram("/usr/bin/bash", "-c", $"'{CkptPath()}' restore --input '{image}' > '{printed}'; exec sleep 1000");
        try
        {
            for (int i = 0; i < 3000 && !(File.Exists(printed) && File.ReadAllText(printed).Trim().Length > 0); i++) Thread.Sleep(10);
            Assert.Equal(target.Pid.ToString(), File.ReadAllText(printed).Trim());
            Assert.Equal($"{target.Pid} ppid - pgid {target.Pid} sid {target.Pid} live", Assert.Single(Tree(target.Pid)));
            RestoreTestProcesses.Signal(-shell.Pid, SIGKILL);
            RestoreTestProcesses.WaitForExit(shell.Pid);
            Thread.Sleep(100);
            Assert.True(IsAlive(target.Pid), "the restored process died with the restoring shell's group");
        }
        finally
        {
            RestoreTestProcesses.TryKill(target.Pid, SIGKILL);
        }
    }

    [Fact]
    public void A_bash_script_starting_children_continues_after_kill_and_restore_with_the_same_pids()
    {
        string counts = TempPath("counts.txt");
        using var target = StartProgram("/usr/bin/bash", "-c", $"i=0; while true; do echo $i >> '{counts}'; i=$((i+1)); sleep 0.05; done");
        List<string> before = [];
        try
        {
            WaitForLines(counts, 10);
            before = Tree(target.Pid);
            string image = TempPath("bash.img");
            CkptCheckpoint(target.Pid, image, kill: true);
            RestoreTestProcesses.WaitForExit(target.Pid);
            int atCheckpoint = File.ReadAllLines(counts).Length;
            ImageModel model = ReadImage(image).Image!;
            List<int> imaged = model.TaskTable.Where(t => t.Pid == t.Tgid).Select(t => t.Pid).Order().ToList();
            foreach (int pid in imaged) RestoreTestProcesses.WaitUntilGone(pid);

            Assert.Equal(target.Pid, CkptRestore(image));
            // Every process of the image is back with its pid (a sleep child of 50 ms may have ended since).
            Assert.Contains(target.Pid, Pids(Tree(target.Pid)));
            WaitForLines(counts, atCheckpoint + 20);
            string[] lines = File.ReadAllLines(counts);
            Assert.Equal(Enumerable.Range(0, lines.Length).Select(i => i.ToString()), lines); // no gap, no repeat
            Assert.Equal("bash", File.ReadAllText($"/proc/{target.Pid}/comm").Trim());
        }
        finally
        {
            RestoreTestProcesses.TryKill(target.Pid, SIGKILL);
            KillAll(Pids(before));
        }
    }

    [Fact]
    public void A_tree_of_100_processes_checkpoints_and_restores_10_times_and_passes()
    {
        using var target = StartTree(PlainChildrenFor100);
        List<string> before = Tree(target.Pid);
        try
        {
            Assert.Equal(100, before.Count);
            string image = TempPath("tree100.img");
            for (int cycle = 0; cycle < 10; cycle++)
            {
                File.Delete(image); // the last cycle's image: an existing image is only replaced with --force
                CkptCheckpoint(target.Pid, image, kill: true, what: $"checkpoint {cycle + 1}", timeout: TreeTimeout);
                if (cycle == 0) RestoreTestProcesses.WaitForExit(target.Pid); // our child only the first time
                foreach (int pid in Pids(before)) RestoreTestProcesses.WaitUntilGone(pid);
                Assert.Equal(target.Pid, CkptRestore(image, TreeTimeout));
                Assert.Equal(before, Tree(target.Pid));
            }
            target.RequirePass(seconds: 60);
        }
        finally
        {
            KillAll(Pids(before));
        }
    }

    // The stages after creation work on several processes at once for a tree like this one (nothing shared
    // between its processes: Restore/PtraceRelay). A failure in such a stage (here every process's chdir
    // to the cwd removed since the checkpoint, in "task state") still names the process, the step and the
    // call, and leaves none of the tree's processes behind.
    [Fact]
    public void A_tree_whose_restore_fails_in_a_stage_done_for_several_processes_at_once_leaves_none_of_them()
    {
        string directory = Directory.CreateTempSubdirectory("ckpt-tree-cwd-").FullName;
        using var target = StartProgram("/bin/sh", readySeconds: 60, "-c", $"cd {directory} && exec {RestoreWorkloads.Path("ckpt_tree")} 20");
        List<string> before = Tree(target.Pid);
        try
        {
            Assert.Equal(31, before.Count);
            string image = TempPath("tree-cwd.img");
            CkptCheckpoint(target.Pid, image, kill: true, what: "checkpoint", timeout: TreeTimeout);
            RestoreTestProcesses.WaitForExit(target.Pid);
            foreach (int pid in Pids(before)) RestoreTestProcesses.WaitUntilGone(pid);
            Directory.Delete(directory);

            var (code, _, stderr) = RunCkpt(TreeTimeout, "restore", "--input", image);
            Assert.NotEqual(0, code);
            Assert.Matches(@"process \d+: task state", stderr);
            Assert.Contains($"chdir({directory})", stderr);
            foreach (int pid in Pids(before)) RestoreTestProcesses.WaitUntilGone(pid);
        }
        finally
        {
            KillAll(Pids(before));
            if (Directory.Exists(directory)) Directory.Delete(directory);
        }
    }

    private static void WaitForLines(string path, int count)
    {
        for (int i = 0; i < 3000; i++)
        {
            if (File.Exists(path) && File.ReadAllLines(path).Length >= count) return;
            Thread.Sleep(10);
        }
        Assert.Fail($"{path} never reached {count} lines");
    }
}
