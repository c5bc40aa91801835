namespace Ckpt.Engine.Tests;

/// <summary>
/// Pipes between processes of a checkpointed tree (issue 10): tests/workloads/ckpt_pipe_tree.c (a
/// parent writing counters to its child, 7200 bytes in flight), a real shell pipeline, and a pipe
/// whose other end is outside what is checkpointed (refused). The engine runs as the real `ckpt`.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class PipeTreeTests
{
    private const int SIGKILL = 9;

    private static List<int> Pids(IEnumerable<string> tree) => tree.Select(l => int.Parse(l.Split(' ')[0])).ToList();

    private static List<int> Pids(int root) => Pids(ProcessTreeTests.Tree(root));

    private static void KillAll(IEnumerable<int> pids)
    {
        foreach (int pid in pids) RestoreTestProcesses.TryKill(pid, SIGKILL);
    }

    /// <summary>The bytes in flight of every pipe of the image (each pipe once).</summary>
    private static List<int> BufferedBytes(ImageModel model) =>
        model.Processes.SelectMany(p => p.FileTable.Files.Values).Where(f => f.Pipe is not null)
            .Select(f => f.Pipe!).DistinctBy(p => p.Record.PipeObjRef).Select(p => p.Data.Length).ToList();

    [Fact]
    public void A_pipe_from_a_parent_to_its_child_comes_back_with_its_bytes_in_flight_and_nothing_lost_or_twice()
    {
        using var target = StartProgram(RestoreWorkloads.Path("ckpt_pipe_tree"));
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            Assert.Equal(2, before.Count);
            string image = TempPath("pipe-tree.img");
            CkptCheckpoint(target.Pid, image, kill: true);
            RestoreTestProcesses.WaitForExit(target.Pid);
            foreach (int pid in Pids(before).Where(p => p != target.Pid)) RestoreTestProcesses.WaitUntilGone(pid);
            RestoreTestProcesses.WaitUntilGone(target.Pid);

            ImageModel model = ReadImage(image).Image!;
            Assert.Equal([900 * 8], BufferedBytes(model)); // one pipe, written once, whichever process holds which end
            Assert.Equal(target.Pid, CkptRestore(image));
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            target.RequirePass(seconds: 30); // the child checks records 100 .. 2999 arrive once each, in order
        }
        finally
        {
            KillAll(Pids(before));
        }
    }

    [Fact]
    public void A_shell_pipeline_continues_after_kill_and_restore_with_the_same_pids_and_no_line_lost_or_twice()
    {
        string lines = TempPath("pipeline.txt");
        // seq fills the pipe (64 KiB in flight) and blocks; the loop (a subshell) reads a line at a time.
        using var target = StartProgram("/usr/bin/bash", "-c", $"seq 1 100000000 | while read l; do echo $l >> '{lines}'; sleep 0.02; done");
        List<int> before = [];
        try
        {
            WaitForLines(lines, 10);
            before = Pids(target.Pid);
            int seq = before.Single(p => File.ReadAllText($"/proc/{p}/comm").Trim() == "seq");
            // The loop is the shell's bash child; it forks a bash of its own for each sleep, briefly, before the exec.
            int loop = before.Single(p => p != target.Pid && File.ReadAllText($"/proc/{p}/comm").Trim() == "bash" && ParentOf(p) == target.Pid);
            string image = TempPath("pipeline.img");
            CkptCheckpoint(target.Pid, image, kill: true);
            RestoreTestProcesses.WaitForExit(target.Pid);
            int atCheckpoint = File.ReadAllLines(lines).Length;
            ImageModel model = ReadImage(image).Image!;
            Assert.Contains(BufferedBytes(model), n => n > 0);
            foreach (int pid in model.TaskTable.Where(t => t.Pid == t.Tgid).Select(t => t.Pid)) RestoreTestProcesses.WaitUntilGone(pid);

            Assert.Equal(target.Pid, CkptRestore(image));
            WaitForLines(lines, atCheckpoint + 20);
            Assert.Equal("seq", File.ReadAllText($"/proc/{seq}/comm").Trim());
            Assert.Equal("bash", File.ReadAllText($"/proc/{loop}/comm").Trim());
            string[] got = File.ReadAllLines(lines);
            Assert.Equal(Enumerable.Range(1, got.Length).Select(i => i.ToString()), got); // no gap, no repeat
        }
        finally
        {
            RestoreTestProcesses.TryKill(target.Pid, SIGKILL);
            KillAll(before);
        }
    }

    [Fact]
    public void A_shell_pipeline_that_keeps_forking_checkpoints_every_time_while_it_runs_and_loses_no_line()
    {
        // The loop forks a child for each sleep, which closes and duplicates descriptors before its exec,
        // and the pipe's bytes move while the tree runs: the audit before the freeze sees both changing.
        // Each checkpoint must succeed anyway (the frozen tree is what is saved) and leave the tree as it was.
        string lines = TempPath("pipeline.txt");
        using var target = StartProgram("/usr/bin/bash", "-c", $"seq 1 100000000 | while read l; do echo $l >> '{lines}'; sleep 0.005; done");
        List<int> before = [];
        try
        {
            WaitForLines(lines, 10);
            before = Pids(target.Pid);
            string image = TempPath("pipeline.img");
            for (int i = 0; i < 25; i++)
            {
                var (exitCode, _, stderr) = RunCkpt(TimeSpan.FromSeconds(60), "checkpoint", "--pid", target.Pid.ToString(), "--output", image, "--force");
                Assert.True(exitCode == 0, $"checkpoint {i + 1} of 25 failed: {stderr}");
            }
            int afterCheckpoints = File.ReadAllLines(lines).Length;
            WaitForLines(lines, afterCheckpoints + 20);
            string[] got = File.ReadAllLines(lines);
            Assert.Equal(Enumerable.Range(1, got.Length).Select(i => i.ToString()), got); // no gap, no repeat
        }
        finally
        {
            RestoreTestProcesses.TryKill(target.Pid, SIGKILL);
            KillAll(before);
        }
    }

    [Fact]
    public void A_pipe_end_whose_other_end_is_outside_the_checkpointed_tree_is_refused_naming_it_and_all_run_on()
    {
        using var target = StartProgram("/usr/bin/bash", "-c", "sleep 1000 | sleep 1000; true");
        List<int> before = [];
        for (int i = 0; i < 500 && before.Count < 3; i++, Thread.Sleep(10)) before = Pids(target.Pid);
        try
        {
            Assert.Equal(3, before.Count);
            int writer = before.Where(p => p != target.Pid).Min(); // the left sleep: its stdout is the pipe
            var (code, _, stderr) = RunCkpt(EngineTimeout, "checkpoint", "--pid", writer.ToString(), "--output", TempPath("refused.img"));
            Assert.Equal(6, code);
            Assert.Contains($"fd 1 of process {writer}", stderr);
            Assert.Contains("write end of a pipe whose read end is held by no process being checkpointed", stderr);
            Assert.Equal(before, Pids(target.Pid));
            Assert.Contains("TracerPid:\t0", File.ReadAllText($"/proc/{writer}/status"));
        }
        finally
        {
            KillAll(before);
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

    // The ppid field of /proc/PID/stat (after the command name, which may hold spaces and parentheses).
    private static int ParentOf(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
    }
}
