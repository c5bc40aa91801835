namespace Ckpt.Engine.Tests;

/// <summary>
/// A process group whose leader is gone, below the root (issue 10), with tests/workloads/ckpt_job_group.c: the
/// root S, a shell, started a job: L led a new group, M1 and M2 joined it (M1's child G is in it too), and L
/// exited and was reaped. Restored, S forks a helper with pid L that makes the group, the members join it and
/// the helper exits and is reaped by S: the members are S's children in group L again, pid L is free, and
/// S's kill(-L) reaches the whole job. A group whose leader left it for another group (pid L is then a
/// process of the tree) is refused by name before anything is created.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class GroupHelperTests
{
    private const int SIGKILL = 9;

    private static int JobOf(Target target) =>
        int.Parse(File.ReadAllLines(target.Log).Single(l => l.StartsWith("JOB ", StringComparison.Ordinal)).Split(' ')[1]);

    [Fact]
    public void A_job_whose_group_leader_exited_comes_back_in_that_group_and_the_helper_is_gone()
    {
        using var target = Start("ckpt_job_group");
        int job = JobOf(target);
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            Assert.Equal(4, before.Count);
            Assert.Equal(3, before.Count(l => l.Contains($" pgid {job} ", StringComparison.Ordinal)));
            Assert.False(Directory.Exists($"/proc/{job}"));
            string image = TempPath("job-group.img");
            CkptCheckpoint(target.Pid, image, kill: true);
            RestoreTestProcesses.WaitForExit(target.Pid);
            foreach (string line in before) RestoreTestProcesses.WaitUntilGone(int.Parse(line.Split(' ')[0]));

            Assert.Equal(target.Pid, CkptRestore(image));
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            Assert.False(Directory.Exists($"/proc/{job}")); // the helper exited and S reaped it
            target.RequirePass(seconds: 30); // kill(-L) reaches every member; S has no child left but M1 and M2
        }
        finally
        {
            foreach (string line in before) RestoreTestProcesses.TryKill(int.Parse(line.Split(' ')[0]), SIGKILL);
        }
    }

    [Fact]
    public void A_checkpoint_without_kill_leaves_the_job_running_in_its_group()
    {
        using var target = Start("ckpt_job_group");
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            CkptCheckpoint(target.Pid, TempPath("job-group-live.img"), kill: false);
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            target.RequirePass(seconds: 30);
        }
        finally
        {
            foreach (string line in before) RestoreTestProcesses.TryKill(int.Parse(line.Split(' ')[0]), SIGKILL);
        }
    }

    [Fact]
    public void A_group_whose_leader_left_it_is_refused_by_name_before_anything_is_created()
    {
        using var target = Start("ckpt_job_group", "leader-leaves-group");
        int job = JobOf(target);
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            Assert.Contains(before, l => l.StartsWith($"{job} ppid {target.Pid} ", StringComparison.Ordinal) && !l.Contains($" pgid {job} ", StringComparison.Ordinal));
            string image = TempPath("job-group-left.img");
            CkptCheckpoint(target.Pid, image, kill: true);
            RestoreTestProcesses.WaitForExit(target.Pid);
            foreach (string line in before) RestoreTestProcesses.WaitUntilGone(int.Parse(line.Split(' ')[0]));

            var (code, _, stderr) = RunCkpt(EngineTimeout, "restore", "--input", image);
            Assert.Equal(6, code);
            Assert.Contains($"is in process group {job}, whose leader is gone", stderr);
            Assert.Contains($"process {job} of the image, which made that group, has left it", stderr);
            foreach (string line in before) Assert.False(Directory.Exists($"/proc/{line.Split(' ')[0]}"), $"{line} exists after the refused restore");
        }
        finally
        {
            foreach (string line in before) RestoreTestProcesses.TryKill(int.Parse(line.Split(' ')[0]), SIGKILL);
        }
    }
}
