namespace Ckpt.Engine.Tests;

/// <summary>
/// The child-subreaper flag and the parent-death signal (issue 10), with tests/workloads/ckpt_tree.c:
/// its root is a subreaper (it checks the flag itself after a restore, in the ProcessTreeTests too), and
/// its "worker" child has parent-death signal SIGTERM. Saved in the image, set again by the restore, and
/// the restored worker really dies when its restored parent does.
/// </summary>
[Collection(RestoreCollection.Name)]
public sealed class ParentLinksTests
{
    private const int SIGKILL = 9, SIGTERM = 15;

    // The worker prints its TREE line itself; on a loaded machine that can come after the root's READY.
    private static int Worker(Target target)
    {
        for (var waited = System.Diagnostics.Stopwatch.StartNew(); ; Thread.Sleep(20))
        {
            string? line = File.ReadAllLines(target.Log).SingleOrDefault(l => l.StartsWith("TREE ", StringComparison.Ordinal) && l.EndsWith(" worker", StringComparison.Ordinal));
            if (line is not null) return int.Parse(line.Split(' ')[1]);
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(30), $"no TREE line of the worker in {target.Log}");
        }
    }

    [Fact]
    public void The_subreaper_flag_and_the_parent_death_signal_are_in_the_image_and_the_tree_runs_on()
    {
        using var target = StartProgram(RestoreWorkloads.Path("ckpt_tree"), readySeconds: 60, "0");
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        try
        {
            string image = TempPath("links-live.img");
            CkptCheckpoint(target.Pid, image, kill: false);
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));
            ImageModel model = ReadImage(image).Image!;
            Assert.Equal([target.Pid], model.Processes.Where(p => p.ChildSubreaper).Select(p => p.Pid));
            Assert.Equal([(Worker(target), SIGTERM)], model.Processes.SelectMany(p => p.Threads).Where(t => t.ParentDeathSignal != 0).Select(t => (t.Tid, t.ParentDeathSignal)));
            target.RequirePass(); // each process checks its flag and signal are unchanged
        }
        finally
        {
            foreach (string line in before) RestoreTestProcesses.TryKill(int.Parse(line.Split(' ')[0]), SIGKILL);
        }
    }

    [Fact]
    public void A_restored_childs_parent_death_signal_fires_when_its_restored_parent_dies()
    {
        using var target = StartProgram(RestoreWorkloads.Path("ckpt_tree"), readySeconds: 60, "0");
        List<string> before = ProcessTreeTests.Tree(target.Pid);
        int worker = Worker(target);
        try
        {
            string image = TempPath("links.img");
            CkptCheckpoint(target.Pid, image, kill: true);
            RestoreTestProcesses.WaitForExit(target.Pid);
            foreach (string line in before) RestoreTestProcesses.WaitUntilGone(int.Parse(line.Split(' ')[0]));
            Assert.Equal(target.Pid, CkptRestore(image));
            Assert.Equal(before, ProcessTreeTests.Tree(target.Pid));

            RestoreTestProcesses.Signal(target.Pid, SIGKILL);
            for (int i = 0; i < 1000 && IsAlive(worker); i++) Thread.Sleep(10);
            Assert.False(IsAlive(worker), $"worker {worker} outlived its parent: its parent-death signal was not restored");
        }
        finally
        {
            foreach (string line in before) RestoreTestProcesses.TryKill(int.Parse(line.Split(' ')[0]), SIGKILL);
        }
    }
}
